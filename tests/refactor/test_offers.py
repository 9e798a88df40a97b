"""Nothing unverified is offered: a written test file imports the module by its real import path and is offered
only when one of its new tests passes; Update Docstring never replaces a docstring with one the verifier scores
lower. (Writers here are fakes that say what a model might; the checks are what is under test.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pyserver.engine.sampling import SamplerConfig
from pyserver.refactor import TextEdit
from pyserver.refactor.docstring import docstring_edit
from pyserver.refactor.imports import module_import
from pyserver.refactor.sandbox import PytestRun
from pyserver.refactor.verify import docstring_score
from pyserver.refactor.write_tests import WrittenTests, write_tests


class Says:
    """A writer that answers with the given texts in turn."""

    name = "fake"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def write(
        self,
        prefix: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str | None:
        return self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]


def never() -> bool:
    return False


SCHEDULE = """import time


def every(interval=1):
    return interval * 60


class Scheduler:
    def idle(self, now):
        return max(0, now - time.time())
"""


def test_the_import_path_of_packages_modules_and_src_layouts(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for f in ("pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/core.py", "top.py"):
        (tmp_path / f).write_text("")
    (tmp_path / "src" / "lib2").mkdir(parents=True)
    (tmp_path / "src" / "lib2" / "__init__.py").write_text("")
    (tmp_path / "src" / "lib2" / "m.py").write_text("")
    init = module_import(tmp_path / "pkg" / "__init__.py")
    assert (init.dotted, init.root, init.test_file) == ("pkg", tmp_path, tmp_path / "test_pkg.py")
    core = module_import(tmp_path / "pkg" / "sub" / "core.py")
    assert (core.dotted, core.root, core.test_file) == ("pkg.sub.core", tmp_path, tmp_path / "pkg/sub/test_core.py")
    assert module_import(tmp_path / "top.py").dotted == "top"
    m = module_import(tmp_path / "src" / "lib2" / "m.py")
    assert (m.dotted, m.root) == ("lib2.m", tmp_path / "src")


def test_tests_import_the_module_by_its_import_path() -> None:
    runs: list[str] = []
    out = write_tests(
        Says("assert every(2) == 120\n"),
        SCHEDULE,
        5,
        "__init__.py",
        32,
        never,
        lambda text: runs.append(text) or PytestRun(collected=1, passed=1, passed_names=["test_every"]),
        import_path="schedule",
    )
    assert isinstance(out, WrittenTests)
    assert out.file.name == "test_schedule.py"
    assert out.file.text.startswith("from schedule import every\n")
    # a method: its class is imported
    method = write_tests(
        Says("assert Scheduler().idle(0) == 0\n"),
        SCHEDULE,
        10,
        "__init__.py",
        32,
        never,
        lambda text: PytestRun(collected=1, passed=1, passed_names=["test_idle"]),
        import_path="schedule",
    )
    assert isinstance(method, WrittenTests) and method.file.text.startswith("from schedule import Scheduler\n")
    # the model importing the file's name instead of the module is refused before anything runs
    wrong = write_tests(
        Says("from __init__ import every\n    assert every(2) == 120\n"),
        SCHEDULE,
        5,
        "__init__.py",
        32,
        never,
        lambda text: runs.append("ran") or PytestRun(collected=1, passed=1, passed_names=["test_every"]),
        import_path="schedule",
        candidates=1,
    )
    assert isinstance(wrong, str) and "__init__" in wrong and "schedule" in wrong


def test_tests_are_offered_only_when_one_of_theirs_passes() -> None:
    failing = PytestRun(collected=1, passed=0, failed=["test_every: assert 60 == 120"])
    out = write_tests(Says("assert every(2) == 121\n"), SCHEDULE, 5, "sched.py", 32, never, lambda t: failing)
    assert isinstance(out, str) and "no test passed" in out and "0 of 1" in out
    # passes of tests already in the file do not count: only the new ones'
    old = PytestRun(collected=2, passed=1, failed=["test_every: x"], passed_names=["test_old"])
    out = write_tests(
        Says("assert every(2) == 121\n"),
        SCHEDULE,
        5,
        "sched.py",
        32,
        never,
        lambda t: old,
        existing="def test_old():\n    assert True\n",
    )
    assert isinstance(out, str) and "no test passed" in out


ADD = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b
'''


def test_the_docstring_score_prefers_what_the_code_says() -> None:
    code = "def add(a, b):\n    return a + b\n"
    right = docstring_score("Return the sum of a and b.", code)
    assert docstring_score("Open the file and read the configuration.", code) < right
    assert docstring_score("def add(a, b): return a + b", code) == 0.0  # code, not prose
    assert docstring_score("Add a and b and return their sum.", code) >= right


def test_update_never_offers_a_docstring_scored_lower_than_the_one_there() -> None:
    worse = docstring_edit(Says("Open the file and read the configuration."), ADD, 1, 32, never, mode="update")
    assert isinstance(worse, str) and "scores lower" in worse
    better = docstring_edit(Says("Add a and b and return their sum."), ADD, 1, 32, never, mode="update")
    assert isinstance(better, TextEdit) and "their sum" in better.new_text
