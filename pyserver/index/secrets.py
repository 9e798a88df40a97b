"""Secret-shaped strings, found and redacted before text enters the index (chunks, full text, embeddings and their
signatures) or a prompt. One home for the rules: detect-secrets' (Yelp, PyPI `detect-secrets`), not a list of our
own; secret_rules.py holds a copy of them (importing the package opens a socket), checked against it by the tests.

- Its token plugins (AWS, GitHub, GitLab, Stripe, Slack, OpenAI, PyPI, npm, JWT, private keys, URL passwords and the
  rest): their regexes, applied per line as detect-secrets applies them. A private key is redacted whole, from its
  BEGIN line to its END line, not just the header the plugin matches.
- Its keyword plugin (`password = "..."`, `api_key: ...`), with the patterns it uses for the file's type (YAML and
  config files need no quotes around the value, code does; with no file name, quotes are required), and the
  heuristics detect-secrets filters keyword hits with (templated values, `$VARS`, indirect references such as
  `password = get_password()`, UUIDs, ids, sequences, values without a letter).
- Left out, because they flag ordinary code: the high-entropy string plugins (hashes, test vectors, base64 data)
  and the public-IP plugin.

Each secret becomes `«redacted:KIND»`, KIND a slug of the plugin's secret type (`aws-access-key`, `github-token`,
`stripe-access-key`, `secret-keyword`, `private-key`, ...); the newlines of a multi-line secret are kept after the
marker, so line numbers do not move. redact() is idempotent.

Speed (~30 MB/s on a megabyte of Python): a pattern that starts with a literal (`AKIA`, `ghp_`, `BEGIN RSA`) runs
over the whole text at once; the others (keywords, URLs, patterns that start with a class or a lookbehind) run only
on the lines where a cheap search finds their hint, a word or a literal-led piece of the pattern that every match
holds. `python -m pyserver.index.secrets FILE...` prints what it finds, and MB/s.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyserver.index import secret_rules

MARKER = "«redacted:{kind}»"
MARKER_RE = re.compile(r"«redacted:[a-z0-9-]+»")
MAX_KEY_BLOCK = 64 * 1024  # how far the END line of a private key is looked for
# A keyword's value shorter than this is a flag ('MODULE_PWD_STATE': 'yes'), not a secret: our one filter beyond
# detect-secrets' own.
MIN_KEYWORD_VALUE = 4

# A private key's body, when no END line comes: base64, PEM headers (Proc-Type: ...), PuTTY's fields.
_KEY_BODY_LINE = re.compile(r"[ \t]*[A-Za-z0-9+/=:,\- \t]+\r?$")
_KEY_END = re.compile(r"-----END[A-Z0-9 ]*-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----")


@dataclass(frozen=True)
class Secret:
    start: int  # offsets into the text
    end: int
    kind: str  # e.g. "aws-access-key"
    value: str  # the matched text (what is redacted)


# Lower-case words found in any case, or a case-sensitive pattern (one that starts with a literal, so fast).
_Hint = tuple[str, ...] | re.Pattern[str]


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    group: int | None  # the secret's group; None: every non-empty group, or the whole match if it has none
    whole: bool  # the whole match, widened over the token's characters (the groups, if any, are only its prefix)
    hint: _Hint | None  # a rule is tried only on the lines where its hint is found (None: over the whole text)
    keyword: bool = False  # a keyword-plugin rule: detect-secrets' false-positive filters apply


def _slug(secret_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")


# What a plugin's patterns cannot match without, on the same line, for the plugins whose patterns are slow over a
# whole text (those that start with a class or a lookbehind rather than a literal): the keyword names all hold one
# of _CREDENTIAL (`api_key`, `passwd`, `pwd`, `contraseña`, ...), as do the key-name forms of the Cloudant, IBM and
# SoftLayer patterns, whose other forms are URLs. Hints only choose the lines a rule is tried on: test_secrets
# checks that the result is what trying every rule on every line gives.
_CREDENTIAL = ("key", "pw", "pass", "token", "secret", "contrase")
_HINTS: dict[str, _Hint] = {
    "AWSKeyDetector": ("aws",),  # (its key-id pattern runs over the text: see _unhinted)
    "ArtifactoryDetector": re.compile(r"AKC|AP[\dA-F]"),
    "BasicAuthDetector": ("://",),
    "CloudantDetector": (*_CREDENTIAL, "://"),
    "DiscordBotTokenDetector": re.compile(r"\.[a-zA-Z\d_-]{6}\."),
    "IbmCloudIamDetector": _CREDENTIAL,
    "IbmCosHmacDetector": ("secret",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authtoken",),
    "SlackDetector": ("xox", "hooks.slack.com"),
    "SoftlayerDetector": (*_CREDENTIAL, "://"),
    "StripeDetector": re.compile(r"k_live_"),
    "TelegramBotTokenDetector": re.compile(r":[0-9A-Za-z_-]{35}"),
    "KeywordDetector": _CREDENTIAL,
}


# Plugins whose groups capture only the token's prefix (`ghp`, `glpat`): the whole match is the secret.
_WHOLE_MATCH = frozenset({"GitHubTokenDetector", "GitLabTokenDetector"})
# A token matched whole goes on over these (a Stripe key longer than the pattern's 24 characters, a JWT's signature,
# which the plugin's lazy pattern leaves out).
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=]*")


def _unhinted(cls_name: str, pattern: re.Pattern[str]) -> bool:
    """AWS's key-id pattern starts with a literal: fast over the whole text, and its hint (`aws`) would miss a bare
    AKIA... key."""
    return cls_name == "AWSKeyDetector" and pattern.pattern.startswith("(?:A3T")


@cache
def _token_rules() -> tuple[_Rule, ...]:
    rules = []
    for plugin in secret_rules.PLUGINS:
        for pattern in plugin.denylist:
            # MULTILINE: `^` and `$` mean a line's ends, as they do for detect-secrets, which scans line by line.
            compiled = re.compile(pattern.pattern, pattern.flags | re.MULTILINE)
            hint = None if _unhinted(plugin.name, pattern) else _HINTS.get(plugin.name)
            whole = plugin.name in _WHOLE_MATCH or compiled.groups == 0
            rules.append(_Rule(_slug(plugin.secret_type), compiled, None, whole, hint))
    return tuple(rules)


@cache
def _keyword_rules(filetype: secret_rules.FileType) -> tuple[_Rule, ...]:
    kind = _slug(secret_rules.KEYWORD_SECRET_TYPE)
    table = secret_rules.keyword_table(filetype)
    return tuple(_Rule(kind, p, g, False, _HINTS["KeywordDetector"], keyword=True) for p, g in table.items())


def _rules(filename: str | None) -> tuple[_Rule, ...]:
    ftype = secret_rules.file_type(Path(filename).suffix.lower()) if filename else secret_rules.FileType.OTHER
    return _token_rules() + _keyword_rules(ftype)


def _keyword_false_positive(value: str, line: str) -> bool:
    """detect-secrets' default filters for a keyword hit (filters.heuristic), in its order."""
    h = secret_rules
    return (
        len(value) < MIN_KEYWORD_VALUE
        or h.is_sequential_string(value)
        or h.is_potential_uuid(value)
        or h.is_likely_id_string(value, line)
        or h.is_templated_secret(value)
        or h.is_prefixed_with_dollar_sign(value)
        or h.is_indirect_reference(line)
        or h.is_not_alphanumeric_string(value)
        or MARKER_RE.search(value) is not None  # redacted already
    )


def _spans(rule: _Rule, m: re.Match[str]) -> list[tuple[int, int]]:
    if rule.group is not None:
        return [m.span(rule.group)] if m.group(rule.group) else []
    if not rule.whole:  # detect-secrets reports each non-empty group (re.findall's tuples); the outermost suffice
        spans: list[tuple[int, int]] = []
        groups = [m.span(i) for i in range(1, m.re.groups + 1) if m.group(i)]
        for a, b in sorted(groups, key=lambda s: (s[0], -s[1])):
            if not spans or a >= spans[-1][1]:
                spans.append((a, b))
        return spans
    a, b = m.span()
    text = m.string
    while a < b and text[a] in " \t\r\n\"'=:":  # the delimiters some patterns match around the token
        a += 1
    while b > a and text[b - 1] in " \t\r\n\"'":
        b -= 1
    tail = _TOKEN_TAIL.match(text, b)
    return [(a, tail.end() if tail else b)]


def _folded(text: str) -> str:
    """The text in lower case, offsets kept, for finding hint words as the case-insensitive patterns would: str.lower
    (fast), unless it changes the length (a rare character such as U+0130 lowers to two), then per character.
    U+017F (long s) matches `s` under re.IGNORECASE but does not lower to it."""
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low.replace("\u017f", "s") if "\u017f" in low else low


def _line_at(text: str, pos: int) -> tuple[int, int]:
    """(start, end) of the line holding pos, its newline left out."""
    end = text.find("\n", pos)
    return text.rfind("\n", 0, pos) + 1, len(text) if end < 0 else end


def _lines_with(hint: _Hint, text: str, folded: str) -> list[tuple[int, int]]:
    """The lines where the hint is found, in order."""
    found: set[tuple[int, int]] = set()
    if isinstance(hint, tuple):
        for w in hint:
            pos = folded.find(w)
            while pos >= 0:
                line = _line_at(text, pos)
                found.add(line)
                pos = folded.find(w, line[1] + 1)  # on to the next line
    else:
        for m in hint.finditer(text):
            found.add(_line_at(text, m.start()))
    return sorted(found)


def _all_lines(text: str) -> list[tuple[int, int]]:
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    return [(a, b - 1) for a, b in zip(starts, starts[1:])] + [(starts[-1], len(text))]


def _raw_hits(text: str, rules: Sequence[_Rule], use_hints: bool = True) -> list[Secret]:
    """Every rule's hits. use_hints=False tries the hinted rules on every line (the reference for the hints)."""
    folded: str | None = None
    lines_of: dict[object, list[tuple[int, int]]] = {}
    hits: list[Secret] = []
    for rule in rules:
        if rule.hint is None:
            for m in rule.pattern.finditer(text):
                hits.extend(Secret(a, b, rule.kind, text[a:b]) for a, b in _spans(rule, m))
            continue
        key: object = rule.hint if use_hints else None
        if key not in lines_of:
            if use_hints:
                folded = _folded(text) if folded is None else folded
                lines_of[key] = _lines_with(rule.hint, text, folded)
            else:
                lines_of[key] = _all_lines(text)
        for a, b in lines_of[key]:
            line = text[a:b]
            # A keyword rule reports its first match on the line (detect-secrets' analyze_string uses search()).
            if rule.keyword:
                first = rule.pattern.search(line)
                found = [first] if first is not None else []
            else:
                found = list(rule.pattern.finditer(line))
            for m in found:
                for s, e in _spans(rule, m):
                    value = line[s:e]
                    if rule.keyword and _keyword_false_positive(value, line):
                        continue
                    hits.append(Secret(a + s, a + e, rule.kind, value))
    return hits


def _whole_key(text: str, hit: Secret) -> Secret:
    """A private key's header widened to the whole block: back to the BEGIN line's dashes, on to its END line, or,
    with none near, to the end of the lines that look like a key's body."""
    start = hit.start
    while start > 0 and (text[start - 1] == "-" or (text[start - 1] == " " and text[start - 2 : start - 1] == "-")):
        start -= 1  # the dashes before BEGIN (and SSH2's "---- BEGIN")
    end_m = _KEY_END.search(text, hit.end, hit.end + MAX_KEY_BLOCK)
    if end_m is not None:
        end = end_m.end()
    else:
        end = text.find("\n", hit.end)
        end = len(text) if end < 0 else end
        while end < len(text):
            nxt = text.find("\n", end + 1)
            nxt = len(text) if nxt < 0 else nxt
            line = text[end + 1 : nxt]
            if not line.strip() or not _KEY_BODY_LINE.match(line):
                break
            end = nxt
    return Secret(start, end, hit.kind, text[start:end])


def find_secrets(text: str, filename: str | None = None) -> list[Secret]:
    """The secrets in the text, in order, overlapping hits merged (the first one's kind kept). `filename` (any
    path; only its suffix is used) picks the keyword patterns for the file's type."""
    return _merge(text, _raw_hits(text, _rules(filename)))


def _merge(text: str, hits: list[Secret]) -> list[Secret]:
    hits = [_whole_key(text, h) if h.kind == "private-key" else h for h in hits]
    hits.sort(key=lambda h: (h.start, -h.end))
    out: list[Secret] = []
    for h in hits:
        if h.start == h.end:
            continue
        if out and h.start < out[-1].end:
            last = out[-1]
            if h.end > last.end:
                out[-1] = Secret(last.start, h.end, last.kind, text[last.start : h.end])
            continue
        out.append(h)
    return out


def marker(kind: str) -> str:
    return MARKER.format(kind=kind)


def redact(text: str, filename: str | None = None) -> str:
    """The text with each secret replaced by `«redacted:KIND»` (and the newlines it spanned)."""
    found = find_secrets(text, filename)
    if not found:
        return text
    parts: list[str] = []
    pos = 0
    for s in found:
        parts.append(text[pos : s.start])
        parts.append(marker(s.kind) + "\n" * text.count("\n", s.start, s.end))
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)


def main(argv: list[str]) -> int:
    """What the rules find in files, and how fast: `python -m pyserver.index.secrets FILE...`."""
    total_bytes, total_s, count = 0, 0.0, 0
    find_secrets("", "warm.py")  # compiles the rules outside the timing
    for name in argv:
        text = Path(name).read_text(encoding="utf-8", errors="replace")
        t0 = time.perf_counter()
        found = find_secrets(text, name)
        total_s += time.perf_counter() - t0
        total_bytes += len(text.encode("utf-8", errors="surrogatepass"))
        count += len(found)
        for s in found:
            line = text.count("\n", 0, s.start) + 1
            print(f"{name}:{line}: {s.kind}: {s.value[:60]!r}")
    mb = total_bytes / 1e6
    print(f"{count} secrets in {len(argv)} files, {mb:.2f} MB in {total_s:.3f} s: {mb / max(total_s, 1e-9):.1f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
