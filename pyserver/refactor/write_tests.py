"""Write tests for the function at the cursor into test_<module>.py beside the file: several candidates (the first
greedy, the others sampled), each run with pytest in a sandboxed copy of the workspace (sandbox.py); the best one
is kept: the most tests passing, else the most that at least import and run. An existing test file is extended at
its end, never overwritten or prepended to."""

from __future__ import annotations

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

    def report(self) -> str:
        kept = f"the best of {self.candidates} candidates" if self.candidates > 1 else "the tests"
        return f"{self.file.name}: {self.run.summary()} ({kept})"


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
) -> WrittenTests | str | None:
    """The kept tests, a reason there are none, or None when stopped. `existing`: the test file's current text."""
    fn = function_at(text, line)
    if fn is None:
        return "no function at the cursor (or the file does not parse)"
    module = PurePosixPath(file_name).stem
    head = f"from {module} import {fn.name}\n\n\ndef {test_name_for(fn.name, existing or '')}():\n    "
    best: tuple[str, PytestRun] | None = None
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
        if problem:
            problems.append(problem)
            continue
        result = runner(whole)
        if best is None or result.score > best[1].score:
            best = (tests, result)
        if result.collected and result.passed == result.collected:
            break  # every test passes: no need to sample more
    if best is None or best[1].error:
        why = best[1].error if best else (problems[0] if problems else "the model produced no test")
        return f"no usable tests ({why}; {len(seen)} candidate{'s' if len(seen) != 1 else ''} tried)"
    return WrittenTests(
        NewFile(f"test_{module}.py", _joined(existing, best[0])), existing is not None, best[1], len(seen)
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
