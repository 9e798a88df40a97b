"""pyserver/_native.pyi against the compiled module. mypy's stubtest checks names and kinds both ways (nothing in
one that the other lacks, a property where there is a property); it cannot see a compiled function's parameters,
so the pybind11 signatures (each docstring's first line) are compared with the stub's: names, order, defaults,
and the scalar types."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyserver import _native

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "pyserver" / "_native.pyi"

# pybind11's spelling of a scalar parameter -> the stub's.
SCALARS = {
    "str": "str",
    "bool": "bool",
    "typing.SupportsInt | typing.SupportsIndex": "int",
    "typing.SupportsFloat | typing.SupportsIndex": "float",
}


def test_stubtest_agrees() -> None:
    pytest.importorskip("mypy.stubtest")
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--concise", "pyserver._native"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # A pybind11 class has pybind11's metaclass, which a stub has no way to name.
    errors = [line for line in run.stdout.splitlines() if line.strip() and not line.endswith("metaclass differs")]
    assert not errors and not run.stderr.strip(), "\n".join(errors) + run.stderr


def stub_functions() -> Iterator[tuple[str, ast.FunctionDef]]:
    """Every function and method of the stub by qualified name; properties (decorated) left out."""
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.decorator_list:
                    yield f"{node.name}.{item.name}", item


def runtime_signature(qualname: str) -> ast.arguments:
    obj: object = _native
    for part in qualname.split("."):
        obj = getattr(obj, part)
    first = (obj.__doc__ or "").lstrip().splitlines()[0]
    name = qualname.split(".")[-1]
    assert first.startswith(name + "("), f"{qualname}: no pybind11 signature in its docstring: {first!r}"
    try:
        fn = ast.parse(f"def {first}: ...").body[0]
    except SyntaxError as exc:  # e.g. a C++ type pybind11 could not name: register the class before using it
        raise AssertionError(f"{qualname}: unparseable pybind11 signature {first!r}") from exc
    assert isinstance(fn, ast.FunctionDef)
    return fn.args


NO_DEFAULT = object()


def params(args: ast.arguments) -> list[tuple[str, str | None, object]]:
    """(name, annotation, default) of every parameter but self, NO_DEFAULT where there is none."""
    plain = [a for a in args.posonlyargs + args.args if a.arg != "self"]
    defaults = [NO_DEFAULT] * (len(plain) - len(args.defaults)) + [ast.literal_eval(d) for d in args.defaults]
    return [(a.arg, ast.unparse(a.annotation) if a.annotation else None, d) for a, d in zip(plain, defaults)]


STUBBED = dict(stub_functions())


@pytest.mark.parametrize("qualname", sorted(STUBBED))
def test_signature_matches_the_binding(qualname: str) -> None:
    stub = params(STUBBED[qualname].args)
    runtime = params(runtime_signature(qualname))
    assert [(n, d) for n, _, d in stub] == [(n, d) for n, _, d in runtime], f"{qualname}: names or defaults differ"
    for (name, stub_type, _), (_, runtime_type, _) in zip(stub, runtime):
        if runtime_type in SCALARS:
            assert stub_type == SCALARS[runtime_type], f"{qualname}({name}): {stub_type} in the stub, {runtime_type}"


def test_every_binding_has_a_signature_checked() -> None:
    module_functions = {
        n
        for n in dir(_native)
        if not n.startswith("_") and callable(getattr(_native, n)) and not isinstance(getattr(_native, n), type)
    }
    methods = {
        f"{c}.{m}"
        for c in dir(_native)
        if isinstance(getattr(_native, c), type)
        for m, v in vars(getattr(_native, c)).items()
        if (m == "__init__" or not m.startswith("_")) and not isinstance(v, property)
    }
    assert module_functions | methods == set(STUBBED)
