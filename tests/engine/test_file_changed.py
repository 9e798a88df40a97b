"""A model file that changes underneath a loaded model must not crash the process.

The loaders read with plain reads into memory the engine owns (no memory map): nothing the model uses after load
lives in the file, so truncating it (which would turn every later touch of a mapped page into SIGBUS) has no
effect. The runs are in a subprocess, since a SIGBUS would kill the test runner itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pyserver.engine import ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.safetensors_file import SafetensorsFile
from tests.support.builders import random_model, write_gguf, write_safetensors_dir

# Loads the model, truncates (or rewrites) every file it came from, then generates: exit 0 and "ok" when nothing
# the model uses points into the file.
CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pyserver.engine import Model
    from pyserver.engine.generate import generate

    path = Path(sys.argv[1])
    model = Model.load(path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    for f in files:
        if sys.argv[2] == "truncate":
            os.truncate(f, 0)
        else:
            f.write_bytes(b"\\xff" * 64)
    session = model.session(128)
    prompt = model.tokenizer.encode("def add(a, b):\\n")
    result = generate(session, prompt, max_tokens=8)
    session.truncate(0)
    assert len(result.tokens) > 0 or result.stop_reason == "eos"
    print("ok", len(result.tokens))
    """
)


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(5), "bitnet", "TQ2_0", n_layer=1)
    return write_gguf(m, tmp_path_factory.mktemp("changed") / "m.gguf")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(6), "bitnet-b1.58", "I2_S", n_layer=1)
    return write_safetensors_dir(m, tmp_path_factory.mktemp("changed_hf") / "hf", packed=True)


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        dst.mkdir()
        for f in src.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())
    else:
        dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize("how", ["truncate", "rewrite"])
@pytest.mark.parametrize("kind", ["gguf", "safetensors"])
def test_file_changed_after_load_does_not_crash(
    gguf_path: Path, hf_dir: Path, tmp_path: Path, kind: str, how: str
) -> None:
    src = gguf_path if kind == "gguf" else hf_dir
    path = _copy(src, tmp_path / src.name)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, timeout=300)
    assert proc.returncode != -signal.SIGBUS, "SIGBUS: the model still reads the file it was loaded from"
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr


def test_file_changed_during_load_is_a_load_error(gguf_path: Path, hf_dir: Path, tmp_path: Path) -> None:
    """Between the header and the tensor data: the reader sees the file is not the one it parsed."""
    g_path = _copy(gguf_path, tmp_path / "m.gguf")
    g = GGUFFile(g_path)
    os.truncate(g_path, 100)
    with pytest.raises(ModelLoadError, match="m.gguf: the file changed while it was being loaded"):
        g.tensor_data("token_embd.weight")
    st_path = _copy(hf_dir, tmp_path / "hf") / "model.safetensors"
    st = SafetensorsFile(st_path)
    raw = st_path.read_bytes()
    st_path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # same size, new contents (a new mtime)
    os.utime(st_path, ns=(st_path.stat().st_atime_ns, st_path.stat().st_mtime_ns + 10**9))
    with pytest.raises(ModelLoadError, match="model.safetensors: the file changed while it was being loaded"):
        st.array("model.embed_tokens.weight")


def test_loaded_model_holds_no_file(gguf_path: Path, tmp_path: Path) -> None:
    """No mapping and no open descriptor of the model file after load (the file can be deleted, its space freed)."""
    from pyserver.engine import Model

    path = _copy(gguf_path, tmp_path / "m.gguf")
    model = Model.load(path)
    maps = Path("/proc/self/maps").read_text()
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if _is_link(fd)]
    assert str(path) not in maps and str(path) not in fds
    assert model.session(16).eval([1, 2, 3]) is not None


def _is_link(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True
