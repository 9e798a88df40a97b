"""Runs a candidate test file with pytest in a temporary copy of the workspace, so that generated tests are judged
by running them (the founding plan's verifiable reward) without touching the user's files.

The copy holds the workspace's Python sources and small text files (never .git, virtual environments, caches or
large files), with the unsaved text of the document under test. pytest runs in a child process with:
- a wall-clock timeout: the whole process group is killed when it expires;
- a scrubbed environment: HOME and the temp dir inside the copy, no proxies or credentials, and
  `RYZANSTEIN_SANDBOX=1` for code that wants to know;
- no network: a `sitecustomize` in the copy refuses every socket connection that is not a Unix socket, and on
  Linux the child also runs in a new network namespace when unprivileged user namespaces allow it;
- limits on memory and file size (`resource`, set by that `sitecustomize`).
The counts come from pytest's JUnit XML report, not from its console text."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_S = 30.0
MAX_COPY_BYTES = 50 * 2**20  # the workspace copy: beyond this, only the files next to the module are copied
MAX_FILE_BYTES = 1 * 2**20
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", "env", ".tox", ".nox", "build"}
COPY_SUFFIXES = {".py", ".pyi", ".cfg", ".toml", ".ini", ".json", ".txt", ".csv", ".yaml", ".yml", ".md"}
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "PYTHONHASHSEED")

# Loaded by every Python process in the sandbox (the copy's root is on PYTHONPATH): limits on memory and file size,
# and no network connections. (The limits are set here, not in a preexec_fn: a child forked from a process with
# threads can deadlock in Python code before it execs, as it did in the editor.)
SITECUSTOMIZE = """\
import resource
import socket

for _what, _value in ((resource.RLIMIT_AS, 4 << 30), (resource.RLIMIT_FSIZE, 256 << 20)):
    try:
        resource.setrlimit(_what, (_value, _value))
    except (ValueError, OSError):
        pass

_connect = socket.socket.connect


def _refuse(self, address, *args):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect(self, address, *args)
    raise OSError("network access is disabled in the Ryzanstein test sandbox")


socket.socket.connect = _refuse
socket.socket.connect_ex = lambda self, address: _refuse(self, address) or 0
socket.create_connection = lambda *a, **k: _refuse(socket.socket(), a[0] if a else None)
"""


@dataclass
class PytestRun:
    """What pytest said about one candidate."""

    collected: int = 0
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # "test_name: first line of the failure"
    passed_names: list[str] = field(default_factory=list)  # the tests that passed
    error: str = ""  # the file did not import or collect, pytest is missing, or the run timed out
    seconds: float = 0.0

    @property
    def score(self) -> tuple[int, int, int]:
        """Higher is better: tests passed, then tests that at least ran, then fewer failures."""
        return (self.passed, self.collected if not self.error else -1, -len(self.failed))

    def summary(self) -> str:
        if self.error:
            return self.error
        s = f"{self.collected} test{'s' if self.collected != 1 else ''}, {self.passed} pass"
        if self.failed:
            s += f"; failed: {self.failed[0]}" + (f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else "")
        return s


def _workspace_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk does not follow symlinked folders
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        for name in filenames:
            p = Path(dirpath, name)
            if p.suffix in COPY_SUFFIXES and not p.is_symlink():
                yield p


def copy_workspace(root: Path, module: Path, dest: Path) -> None:
    """The workspace's small source files into dest (or, past the size cap, the module's own folder)."""
    total = 0
    picked: list[Path] = []
    for p in _workspace_files(root):
        try:
            size = p.stat().st_size
        except OSError:
            continue
        if size <= MAX_FILE_BYTES:
            picked.append(p)
            total += size
        if total > MAX_COPY_BYTES:
            picked = [q for q in module.parent.iterdir() if q.is_file() and q.suffix in COPY_SUFFIXES]
            root = module.parent
            break
    for p in picked:
        target = dest / p.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)


def _unshare_prefix() -> list[str]:
    """`unshare -rn` when this machine lets an unprivileged user make a network namespace (checked once)."""
    global _UNSHARE
    if _UNSHARE is None:
        tool = shutil.which("unshare")
        ok = False
        if tool and sys.platform.startswith("linux"):
            try:
                ok = subprocess.run([tool, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
        _UNSHARE = [tool, "-rn"] if ok and tool else []
    return _UNSHARE


_UNSHARE: list[str] | None = None


def _environment(root: Path, import_root: Path | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    home = root / ".sandbox-home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        TMPDIR=str(home),
        # the copy's root (sitecustomize) and the folder the module's import path starts from (a src layout's src/)
        PYTHONPATH=os.pathsep.join(dict.fromkeys([str(root), str(import_root or root)])),
        PYTHONDONTWRITEBYTECODE="1",
        RYZANSTEIN_SANDBOX="1",
        NO_PROXY="*",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
    )
    return env


def run_tests(
    workspace: Path,
    module: Path,
    module_text: str,
    test_name: str,
    test_text: str,
    python: str = sys.executable,
    timeout_s: float = TIMEOUT_S,
    test_dir: Path | None = None,
    import_root: Path | None = None,
) -> PytestRun:
    """Runs `test_text`, written as `test_name` beside `module` (whose text is `module_text`; or in `test_dir`), in
    a copy of `workspace`; module must lie inside workspace. `import_root`: the folder the module's import path
    starts from (imports.py), put on the path."""
    import time

    with tempfile.TemporaryDirectory(prefix="ryzanstein-tests-") as tmp:
        root = Path(tmp)
        copy_workspace(workspace, module, root)
        rel = module.relative_to(workspace) if module.is_relative_to(workspace) else Path(module.name)
        if not (root / rel).parent.exists():
            rel = Path(module.name)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(module_text, encoding="utf-8")
        where = (root / rel).parent
        if test_dir is not None and test_dir.is_relative_to(workspace):
            where = root / test_dir.relative_to(workspace)
        test_path = where / test_name
        imports_from = (
            root / import_root.relative_to(workspace) if import_root and import_root.is_relative_to(workspace) else root
        )
        test_path.write_text(test_text, encoding="utf-8")
        (root / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        report = root / ".sandbox-report.xml"
        cmd = [
            *_unshare_prefix(),
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(root),
            f"--junitxml={report}",
            "--import-mode=importlib",
            str(test_path),
        ]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=test_path.parent,
            env=_environment(root, imports_from),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills pytest and whatever it started
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return PytestRun(error=f"the tests did not finish within {timeout_s:.0f} s", seconds=timeout_s)
        run = _read_report(report, out.decode("utf-8", "replace"), proc.returncode)
        run.seconds = time.monotonic() - t0
        return run


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def _read_report(report: Path, output: str, returncode: int) -> PytestRun:
    if "No module named pytest" in output:
        return PytestRun(error="pytest is not installed for the Python that runs the tests")
    try:
        suite = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return PytestRun(error=f"pytest failed (exit {returncode}): {_last_line(output)}")
    run = PytestRun()
    import_errors: list[str] = []
    for case in suite.iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if case.get("classname", "") == "":  # pytest's record of a module that failed to collect
            if bad is not None:
                import_errors.append(_error_line(bad.text or bad.get("message") or ""))
            continue
        run.collected += 1
        if bad is None and case.find("skipped") is None:
            run.passed += 1
            run.passed_names.append(case.get("name", "?"))
        elif bad is not None:
            run.failed.append(f"{case.get('name', '?')}: {_error_line(bad.get('message') or bad.text or '')}")
    if import_errors:
        run.error = f"the tests do not import: {import_errors[0]}"
    elif run.collected == 0:
        run.error = "pytest found no tests in the file"
    return run


def _error_line(text: str) -> str:
    """The line pytest marks with `E` (the exception), else the first line."""
    marked = [ln[1:].strip() for ln in text.split("\n") if ln.startswith("E ")]
    return (marked[-1] if marked else _first_line(text))[:200]


def _first_line(text: str) -> str:
    line = text.strip().split("\n")[0] if text.strip() else "(no message)"
    return line[:200]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().split("\n") if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"
