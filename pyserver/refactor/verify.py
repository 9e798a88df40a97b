"""What a refactor's output must be before anything is written: code that parses, a function that keeps its name
and signature, and text that is not degenerate (empty, the same line over and over, code where prose belongs, a
copy of what was there). Each check returns the reason it fails, or None; the command then says why and writes
nothing."""

from __future__ import annotations

import ast
import re

from pyserver.index.chunking import syntax_error
from pyserver.refactor import TextEdit

CODE_IN_PROSE = re.compile(r"^\s*(def |class |import |from \S+ import |return\b|if .*:\s*$|for .*:\s*$)|[{};]\s*$")


def applied(text: str, edit: TextEdit) -> str:
    return text[: edit.start] + edit.new_text + text[edit.end :]


def parses(source: str, what: str = "the result") -> str | None:
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return f"{what} does not parse (line {exc.lineno}: {exc.msg})"
    return None


def parses_as(source: str, language: str | None, what: str = "the result") -> str | None:
    """`parses` for Python (its own parser, `ast`), tree-sitter's grammar for the index's other languages; None when
    it parses or when there is no grammar for the language."""
    if language is None:
        return None
    if language == "python":
        return parses(source, what)
    where = syntax_error(source, language)
    return f"{what} does not parse ({where})" if where else None


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return f"{type(fn).__name__} {fn.name}({ast.unparse(fn.args)}) -> {ast.unparse(fn.returns) if fn.returns else ''}"


def _functions(source: str) -> list[str]:
    return sorted(
        _signature(n) for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    )


def keeps_signatures(before: str, after: str) -> str | None:
    """Every function keeps its name and signature (a docstring or a rewrite inside one must not touch them)."""
    lost = sorted(set(_functions(before)) - set(_functions(after)))
    return f"it would change {lost[0].split('(')[0].split(' ', 1)[1]}'s signature" if lost else None


def degenerate(text: str, original: str = "") -> str | None:
    lines = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    if not lines:
        return "the model produced nothing"
    if len(lines) >= 3 and len(set(lines)) <= len(lines) // 3:
        return "the model repeated itself"
    if original and text.strip() == original.strip():
        return "the model gave back the code unchanged"
    return None


def repeats_phrase(text: str, words: int, times: int) -> bool:
    """Some run of `words` words occurs `times` times or more (case aside): a model looping in prose."""
    w = [x.lower() for x in re.findall(r"[A-Za-z]{2,}", text)]
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(w) - words + 1):
        gram = tuple(w[i : i + words])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= times:
            return True
    return False


def docstring_problem(body: str, function_name: str) -> str | None:
    """A docstring's text: prose about the function, not code, not just its name, not a loop."""
    bad = degenerate(body)
    if bad:
        return bad
    if repeats_phrase(body, 5, 3):
        return "the model repeated itself"
    words = re.findall(r"[A-Za-z]{2,}", body)
    if len(words) < 3:
        return "the model's docstring says nothing"
    if any(CODE_IN_PROSE.search(ln) for ln in body.split("\n")) or "(self" in body or '"""' in body:
        return "the model wrote code instead of a docstring"
    if body.strip().rstrip(".").lower() == function_name.lower():
        return "the model's docstring is only the function's name"
    return None


def tests_problem(source: str) -> str | None:
    bad = parses(source, "the tests")
    if bad:
        return bad
    tests = [
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")
    ]
    if not tests:
        return "the model wrote no test function"
    if not any(isinstance(n, ast.Assert) for t in tests for n in ast.walk(t)):
        return "the model's tests assert nothing"
    return None


# Words that say nothing about a particular function (a docstring's score counts the others).
PLAIN_WORDS = frozenset(
    "the this that with from into when then than there their they them have been were will would should could "
    "return returns returned given which what where while each also only more most other some such used uses using "
    "function method argument arguments object objects value values none true false must does done make and for "
    "are not its one all any can may".split()
)


def _word_parts(code: str) -> set[str]:
    """The words a function's code holds: identifiers split at `_` and case changes, and the words of its strings
    and comments, lower-cased."""
    words: set[str] = set()
    for ident in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code):
        for part in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", ident):
            words.add(part.lower())
    return words


def docstring_score(doc: str, function_source: str) -> float:
    """How much of what a docstring says the function's own code backs: 0 when it fails `docstring_problem`; else
    (its words the code holds + its parameters named) / (its words + 1), where its words are those of three letters
    or more beyond PLAIN_WORDS and a word the code holds matches a part of an identifier, a string or a comment
    (the same first five letters will do: "configuration" and "config"). A docstring about other things scores
    lower than one about this code; Update Docstring offers a new one only if it scores no lower than the old."""
    try:
        fn = next(
            n for n in ast.walk(ast.parse(function_source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        )
    except (SyntaxError, StopIteration):
        return 0.0
    if docstring_problem(doc, fn.name):
        return 0.0
    body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    code = fn.name + " " + " ".join(ast.unparse(n) for n in body) + " " + " ".join(re.findall(r"#.*", function_source))
    parts = _word_parts(code)
    stems = {p[:5] for p in parts if len(p) >= 5}
    said = [w.lower() for w in re.findall(r"[A-Za-z]+", doc)]
    words = [w for w in said if len(w) >= 3 and w not in PLAIN_WORDS]
    held = sum(w in parts or (len(w) >= 5 and w[:5] in stems) for w in words)
    params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)} - {"self", "cls"}
    named = len(params & set(said) | params & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", doc)))
    return round((held + named) / (len(words) + 1), 3)
