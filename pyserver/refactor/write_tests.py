"""Write tests for the function at the cursor into test_<module>.py beside the file: several candidates (the first
greedy, the others sampled), each run with pytest in a sandboxed copy of the workspace (sandbox.py); the best one
is kept: the most new tests passing. Nothing is offered unless at least one of the new tests passes, and the tests
import the module by its real import path (imports.py: `from schedule import every` for schedule/__init__.py, never
`from __init__ import ...`); a method is tested through its class. An existing test file is extended at its end,
never overwritten or prepended to."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from pyserver.completion.filters.block_end import block_end
from pyserver.completion.filters.context import CursorContext
from pyserver.engine.sampling import SamplerConfig
from pyserver.refactor import NewFile
from pyserver.refactor.common import FunctionSpan, function_at
from pyserver.refactor.sandbox import PytestRun
from pyserver.refactor.verify import tests_problem
from pyserver.refactor.writer import Writer

CANDIDATES = 3
SAMPLED = SamplerConfig(temperature=0.7, top_p=0.95)

# Runs a whole test file's text with pytest (sandbox.run_tests with the workspace bound).
Runner = Callable[[str], PytestRun]


@dataclass(frozen=True)
class WrittenTests:
    file: NewFile  # the test file's whole text: the existing text (if any) with the new tests at its end
    appended: bool
    run: PytestRun
    candidates: int

    new_tests: int = 0
    new_passed: int = 0

    def report(self) -> str:
        kept = f"the best of {self.candidates} candidates" if self.candidates > 1 else "the tests"
        new = f"; {self.new_passed} of the {self.new_tests} new pass" if self.appended else ""
        return f"{self.file.name}: {self.run.summary()}{new} ({kept})"


def _test_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")
    ]


def wrong_import(tests: str, dotted: str, file_stem: str) -> str | None:
    """Why the tests do not import the module by its import path (they import the file's name instead), or None."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name != dotted and (name == file_stem or name == "__init__" or name.endswith(".__init__")):
                return f"the tests import {name!r}, not the module's import path {dotted!r}"
    return None


def _top_level_name(text: str, fn: FunctionSpan) -> str:
    """What a test imports to reach fn: the function itself, or the top-level class that holds it."""
    for node in ast.parse(text).body:
        if node.lineno <= fn.node.lineno <= (node.end_lineno or node.lineno) and isinstance(node, ast.ClassDef):
            return node.name
    return fn.name


def test_name_for(function: str, existing: str) -> str:
    """test_<function>, numbered when the test file already has one of that name."""
    name, n = f"test_{function}", 2
    while re.search(rf"^def {re.escape(name)}\(", existing, re.M):
        name, n = f"test_{function}_{n}", n + 1
    return name


def write_tests(
    writer: Writer,
    text: str,
    line: int,
    file_name: str,
    max_tokens: int,
    should_stop: Callable[[], bool],
    runner: Runner,
    context: str = "",
    existing: str | None = None,
    candidates: int = CANDIDATES,
    import_path: str | None = None,
) -> WrittenTests | str | None:
    """The kept tests, a reason there are none, or None when stopped. `existing`: the test file's current text.
    `import_path`: the module's dotted import path (imports.py); else the file's name."""
    fn = function_at(text, line)
    if fn is None:
        return "no function at the cursor (or the file does not parse)"
    stem = PurePosixPath(file_name).stem
    dotted = import_path or stem
    module = dotted.rsplit(".", 1)[-1]
    head = (
        f"from {dotted} import {_top_level_name(text, fn)}\n\n\ndef {test_name_for(fn.name, existing or '')}():\n    "
    )
    best: tuple[str, PytestRun, int, int] | None = None  # (tests, run, new tests, new tests passing)
    problems: list[str] = []
    seen: set[str] = set()
    for i in range(candidates):
        sampler = None if i == 0 else dataclasses.replace(SAMPLED, seed=i)
        body = _candidate(writer, text, fn, module, head, max_tokens, should_stop, context, sampler)
        if body is None:
            return None
        if body in seen:
            continue
        seen.add(body)
        tests = head + body + "\n"
        whole = _joined(existing, tests)
        problem = "the model produced no test" if not body.strip() else tests_problem(whole)
        problem = problem or wrong_import(tests, dotted, stem)
        if problem:
            problems.append(problem)
            continue
        result = runner(whole)
        names = _test_names(tests)
        passing = sum(n in result.passed_names for n in names) if result.passed_names else 0
        if not result.passed_names and existing is None:
            passing = result.passed  # (a runner that does not name its tests: every test is a new one)
        if best is None or (passing, result.score) > (best[3], best[1].score):
            best = (tests, result, len(names), passing)
        if names and passing == len(names) and not result.error:
            break  # every new test passes: no need to sample more
    tried = f"{len(seen)} candidate{'s' if len(seen) != 1 else ''} tried"
    if best is None or best[1].error:
        why = best[1].error if best else (problems[0] if problems else "the model produced no test")
        return f"no usable tests ({why}; {tried})"
    if best[3] == 0:
        failed = f": {best[1].failed[0]}" if best[1].failed else ""
        return f"no usable tests (no test passed: 0 of {best[2]} pass{failed}; {tried})"
    return WrittenTests(
        NewFile(f"test_{module}.py", _joined(existing, best[0])),
        existing is not None,
        best[1],
        len(seen),
        best[2],
        best[3],
    )


def _joined(existing: str | None, tests: str) -> str:
    if not existing:
        return tests
    return existing.rstrip("\n") + "\n\n\n" + tests


def _candidate(
    writer: Writer,
    text: str,
    fn: FunctionSpan,
    module: str,
    head: str,
    max_tokens: int,
    should_stop: Callable[[], bool],
    context: str,
    sampler: SamplerConfig | None,
) -> str | None:
    source = "\n".join(text.split("\n")[fn.node.lineno - 1 : fn.node.end_lineno])
    prompt = f"{context}# {module}.py\n{source}\n\n\n# test_{module}.py\n{head}"
    out = writer.write(prompt, None, max_tokens, ["\n\n\n"], should_stop, sampler)
    if out is None:
        return None
    return block_end(out, CursorContext(head, "")).rstrip()
