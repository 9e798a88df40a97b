"""`python -m pyserver bench refactors`: how often a model's docstrings and explanations are worth showing, measured
on functions nobody here wrote (the held-out files of the Python standard library, never trained on).

For each function that has a docstring of five words or more, the docstring is taken out and the model asked to
write one (Add Docstring) and to explain the function (Explain Selection). An answer is *useful* when it passes the
refactor's own verification and shares at least MIN_SHARED content words with the author's docstring that are not
already in the function's name or parameters (a docstring that only restates the signature tells the reader
nothing). The rate of useful answers per task is what the capability gate reads (models/registry.json,
`weak_tasks`): below GATE_RATE, the task is refused for that model with an offer of a larger one."""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine import Model
from pyserver.models import default_model_path
from pyserver.refactor import TextEdit
from pyserver.refactor.docstring import docstring_edit
from pyserver.refactor.explain import explain, explanation_problem
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


def run_refactor_bench(model_path: Path | None = None, n: int = 80, examples: int = 3) -> dict[str, Any]:
    path = model_path or default_model_path()
    if path is None:
        raise FileNotFoundError("no model given and no shipped model found in models/")
    model = Model.load(path)
    picked = cases(n)
    report: dict[str, Any] = {"model": path.name, "functions": len(picked), "min_shared_words": MIN_SHARED}
    for task, fn in (("docstring", _docstring), ("explain", _explain)):
        t0 = time.perf_counter()
        results = [(c, *fn(model, c)) for c in picked]
        verified = sum(r[1] for r in results)
        good = sum(r[2] for r in results)
        rate = good / len(results) if results else 0.0
        report[task] = {
            "verified_rate": round(verified / max(1, len(results)), 3),
            "useful_rate": round(rate, 3),
            "gated": rate < GATE_RATE,
            "seconds": round(time.perf_counter() - t0, 1),
            "examples": [
                {"function": c.name, "reference": c.reference.split("\n")[0], "answer": a[:160]}
                for c, _, _, a in results[:examples]
            ],
        }
    return report
