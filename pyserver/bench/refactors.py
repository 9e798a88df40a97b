"""`python -m pyserver bench refactors`: how often each palette refactor of a model is worth offering, measured on
functions nobody here wrote (the held-out files of the Python standard library, never trained on).

For each function that has a docstring of five words or more, the docstring is taken out and the model asked to
write one (Add Docstring) and to explain the function (Explain Selection). Such an answer is *useful* when it passes
the refactor's own verification and shares at least MIN_SHARED content words with the author's docstring that are
not already in the function's name or parameters (a docstring that only restates the signature tells the reader
nothing). Rewrite Selection is asked to rename a local variable of the function (an instruction whose right answer
is known): useful when the edit passes verification and the function then equals the original with the name
changed (compared as syntax trees). Write Tests runs its candidates with pytest against the real module (imported
by its standard-library import path): useful when it offers a file, that is when at least one new test passes.
The rate of useful answers per task is what the capability gate reads (models/registry.json, `weak_tasks`): below
GATE_RATE, the task is refused for that model with an offer of a larger one."""

from __future__ import annotations

import ast
import re
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine import Model
from pyserver.models import default_model_path
from pyserver.refactor import TextEdit
from pyserver.refactor.docstring import docstring_edit
from pyserver.refactor.explain import explain, explanation_problem
from pyserver.refactor.rewrite import rewrite_edit
from pyserver.refactor.sandbox import run_tests
from pyserver.refactor.verify import applied
from pyserver.refactor.write_tests import WrittenTests, write_tests
from pyserver.refactor.writer import LocalWriter
from pyserver.tiers.capability import GATE_RATE

MIN_SHARED = 2
PER_FILE = 2  # functions taken from one file: the sample spans many modules
STOP_WORDS = frozenset(
    "the this that with from into when then than there their they them have been were will would should could "
    "return returns returned value values given which what where while each also only more most other some such "
    "used uses using function method argument arguments object objects none true false must does done make".split()
)


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # the file with the function's docstring taken out
    line: int  # 1-based line of the `def`
    function: str  # the function's source, docstring taken out
    reference: str  # the author's docstring


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in STOP_WORDS}


def useful(answer: str, case: Case) -> bool:
    """Shares MIN_SHARED content words with the reference that the signature does not already hold."""
    header = case.function.split("\n")[0]
    known = content_words(" ".join(re.split(r"[_\W]+", header)))
    return len((content_words(answer) & content_words(case.reference)) - known) >= MIN_SHARED


def cases(n: int) -> list[Case]:
    out: list[Case] = []
    for f in source_files("eval"):
        try:
            tree = ast.parse(f.text)
        except SyntaxError:
            continue
        lines = f.text.split("\n")
        taken = 0
        for node in ast.walk(tree):
            if taken == PER_FILE:
                break
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            first = node.body[0]
            if not doc or len(doc.split()) < 5 or len(node.body) < 2 or node.decorator_list:
                continue
            if (node.end_lineno or 0) - node.lineno > 40:
                continue
            a, b = first.lineno - 1, first.end_lineno or first.lineno
            stripped = lines[:a] + lines[b:]
            function = "\n".join(lines[node.lineno - 1 : a] + lines[b : (node.end_lineno or b)])
            out.append(Case(f"{f.rel}:{node.name}", "\n".join(stripped), node.lineno, function, doc))
            taken += 1
            if len(out) >= n:
                return out
    return out


def _docstring(model: Model, case: Case) -> tuple[bool, bool, str]:
    edit = docstring_edit(LocalWriter(model.session()), case.source, case.line, 96, lambda: False)
    if not isinstance(edit, TextEdit):
        return False, False, str(edit)
    return True, useful(edit.new_text, case), edit.new_text.strip()


def _explain(model: Model, case: Case) -> tuple[bool, bool, str]:
    text = explain(LocalWriter(model.session()), case.function, 96, lambda: False) or ""
    if explanation_problem(text):
        return False, False, text
    return True, useful(text, case), text


def _local_name(case: Case) -> str | None:
    """A variable the function assigns (not a parameter), to be renamed; None when it has none."""
    try:
        tree = ast.parse(textwrap.dedent(case.function))
    except SyntaxError:
        return None
    fn = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    params = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
    stored = [n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return next((v for v in stored if v not in params and len(v) > 1), None)


def _renamed(source: str, old: str, new: str) -> str:
    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            return ast.copy_location(ast.Name(new if node.id == old else node.id, node.ctx), node)

    return ast.dump(Rename().visit(ast.parse(source)))


def _rewrite(model: Model, case: Case) -> tuple[bool, bool, str]:
    name = _local_name(case)
    if name is None:
        return False, False, "(no local variable)"
    start = case.source.index(case.function.split("\n")[0])
    end = start + len(case.function)
    if case.source[start:end] != case.function:  # (the docstring's lines were inside the function's span)
        return False, False, "(function not contiguous)"
    new = f"{name}_renamed"
    edit = rewrite_edit(
        LocalWriter(model.session()), case.source, start, end, f"rename the variable {name} to {new}", 256, never
    )
    if not isinstance(edit, TextEdit):
        return False, False, str(edit)
    after = applied(case.source, edit)
    try:
        ok = ast.dump(ast.parse(after)) == _renamed(case.source, name, new)
    except SyntaxError:
        ok = False
    return True, ok, edit.new_text.strip()[:160]


def never() -> bool:
    return False


def _tests(model: Model, case: Case, workspace: Path) -> tuple[bool, bool, str]:
    """Write Tests on the function, its candidates run against the standard-library module itself."""
    rel = case.name.split(":")[0]
    dotted = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    module = workspace / "bench_module.py"  # (never imported: the tests import the real module by `dotted`)
    runner = partial(run_tests, workspace, module, case.source, "test_bench.py", timeout_s=20.0)
    out = write_tests(
        LocalWriter(model.session()), case.source, case.line, module.name, 192, never, runner, import_path=dotted
    )
    if not isinstance(out, WrittenTests):
        return False, False, str(out)
    return True, True, out.report()


def run_refactor_bench(
    model_path: Path | None = None, n: int = 80, examples: int = 3, tests_n: int = 24
) -> dict[str, Any]:
    path = model_path or default_model_path()
    if path is None:
        raise FileNotFoundError("no model given and no shipped model found in models/")
    model = Model.load(path)
    picked = cases(n)
    report: dict[str, Any] = {"model": path.name, "functions": len(picked), "min_shared_words": MIN_SHARED}
    with tempfile.TemporaryDirectory(prefix="ryz-bench-tests-") as tmp:
        tasks: list[tuple[str, Callable[[Model, Case], tuple[bool, bool, str]], list[Case]]] = [
            ("docstring", _docstring, picked),
            ("explain", _explain, picked),
            ("rewrite", _rewrite, [c for c in picked if _local_name(c) is not None]),
            ("tests", lambda m, c: _tests(m, c, Path(tmp)), picked[:tests_n]),
        ]
        for task, fn, some in tasks:
            _measure(report, task, fn, some, model, examples)
    return report


def _measure(
    report: dict[str, Any],
    task: str,
    fn: Callable[[Model, Case], tuple[bool, bool, str]],
    picked: list[Case],
    model: Model,
    examples: int,
) -> None:
    t0 = time.perf_counter()
    results = [(c, *fn(model, c)) for c in picked]
    verified = sum(r[1] for r in results)
    good = sum(r[2] for r in results)
    rate = good / len(results) if results else 0.0
    report[task] = {
        "cases": len(results),
        "verified_rate": round(verified / max(1, len(results)), 3),
        "useful_rate": round(rate, 3),
        "gated": rate < GATE_RATE,
        "seconds": round(time.perf_counter() - t0, 1),
        "examples": [
            {"function": c.name, "reference": c.reference.split("\n")[0], "answer": a[:160]}
            for c, _, _, a in results[:examples]
        ],
    }
