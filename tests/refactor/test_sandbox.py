"""Generated tests run with real pytest in a sandboxed copy of a small project: counts from the JUnit report,
failures named, import errors, a hang cut by the timeout, no network, and the user's files untouched."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from pyserver.refactor.sandbox import run_tests

MODULE = """import math


def circle_area(radius):
    return math.pi * radius * radius


def clamp(x, lo, hi):
    return max(lo, min(x, hi))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geometry.py").write_text("# on disk: older than the editor's text\n")
    (tmp_path / "pkg" / "helpers.py").write_text("SCALE = 2\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]\n")
    return tmp_path


def run(project: Path, tests: str, timeout_s: float = 30.0) -> object:
    module = project / "pkg" / "geometry.py"
    return run_tests(project, module, MODULE, "test_geometry.py", tests, timeout_s=timeout_s)


def test_counts_passes_and_names_failures(project: Path) -> None:
    tests = (
        "from geometry import circle_area, clamp\nfrom helpers import SCALE\n\n\n"
        "def test_area():\n    assert round(circle_area(1), 5) == 3.14159\n\n\n"
        "def test_clamp():\n    assert clamp(5, 0, SCALE) == 2\n\n\n"
        "def test_wrong():\n    assert clamp(-1, 0, 3) == -1\n"
    )
    r = run(project, tests)
    assert (r.collected, r.passed, r.error) == (3, 2, "")  # type: ignore[attr-defined]
    assert r.failed[0].startswith("test_wrong: assert 0 == -1")  # type: ignore[attr-defined]
    assert r.summary().startswith("3 tests, 2 pass; failed: test_wrong")  # type: ignore[attr-defined]
    assert not (project / "pkg" / "test_geometry.py").exists()  # the user's folder is untouched
    assert (project / "pkg" / "geometry.py").read_text().startswith("# on disk")


def test_import_error_is_reported(project: Path) -> None:
    r = run(project, "from geometry import no_such_function\n\n\ndef test_x():\n    assert no_such_function()\n")
    assert r.collected == 0 and "do not import" in r.error and "no_such_function" in r.error  # type: ignore[attr-defined]


def test_a_hanging_test_is_killed(project: Path) -> None:
    r = run(project, "import time\n\n\ndef test_forever():\n    time.sleep(600)\n", timeout_s=3)
    assert "did not finish within 3 s" in r.error and r.seconds == 3  # type: ignore[attr-defined]


def test_no_network(project: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[object] = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    tests = (
        "import os, socket\n\n\n"
        "def test_sandboxed():\n    assert os.environ['RYZANSTEIN_SANDBOX'] == '1'\n"
        "    import resource\n    assert resource.getrlimit(resource.RLIMIT_AS)[0] == 4 << 30\n\n\n"
        f"def test_connect():\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    )
    r = run(project, tests)
    server.close()
    assert r.passed == 1 and r.failed and "network access is disabled" in r.failed[0]  # type: ignore[attr-defined]
    assert not accepted


def test_shipped_model_writes_tests_that_were_run(project: Path) -> None:
    """The real model, best of three, judged by real pytest: what it reports is what pytest says of the kept file
    when run again."""
    from functools import partial

    from pyserver.engine import Model
    from pyserver.models import default_model_path
    from pyserver.refactor.write_tests import WrittenTests, write_tests
    from pyserver.refactor.writer import LocalWriter

    module = project / "pkg" / "geometry.py"
    runner = partial(run_tests, project, module, MODULE, "test_geometry.py")
    session = LocalWriter(Model.load(default_model_path()).session())
    result = write_tests(session, MODULE, 5, "geometry.py", 128, lambda: False, runner)
    if isinstance(result, str):  # none of the candidates imported and ran: nothing to keep
        assert result.startswith("no usable tests (")
        return
    assert isinstance(result, WrittenTests) and result.file.text.startswith("from geometry import circle_area\n")
    again = runner(result.file.text)
    assert (again.collected, again.passed) == (result.run.collected, result.run.passed)
    assert result.report().startswith(f"test_geometry.py: {again.collected} test")
