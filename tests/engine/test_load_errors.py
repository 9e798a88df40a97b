"""Bad model files give a ModelLoadError naming the file and the problem; the GGUF parser survives fuzzing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyserver.engine import Model, ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from tests.support.builders import random_model, write_gguf, write_safetensors_dir


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(11), "bitnet", "TQ2_0", n_layer=1)
    return write_gguf(m, tmp_path_factory.mktemp("good") / "good.gguf")


def _expect(path: Path, pattern: str) -> None:
    with pytest.raises(ModelLoadError, match=pattern) as info:
        Model.load(path)
    assert str(path) in str(info.value)


def test_reader_agrees_with_gguf_package(good: Path) -> None:
    ours, theirs = GGUFFile(good), gguf.GGUFReader(good)
    assert set(ours.tensors) == {t.name for t in theirs.tensors}
    for t in theirs.tensors:
        info = ours.tensors[t.name]
        assert info.type_name == t.tensor_type.name
        assert info.offset == t.data_offset and info.nbytes == t.n_bytes
        assert list(reversed(info.shape)) == [int(x) for x in t.shape]
    assert ours.metadata["bitnet.block_count"] == 1
    assert ours.metadata["tokenizer.ggml.tokens"][:3] == [
        theirs.fields["tokenizer.ggml.tokens"].contents(i) for i in range(3)
    ]


def test_truncated(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    for cut in (10, 200, len(data) - 100):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(data[:cut])
        _expect(p, "truncated")


def test_bad_magic_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(b"GGML" + b"\0" * 100)
    _expect(p, "bad magic")
    _expect(tmp_path / "nope.gguf", "no such file")


def test_unknown_architecture(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "mamba")
    w.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    _expect(tmp_path / "a.gguf", "unsupported architecture 'mamba'")


def test_missing_tensor_and_bad_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    m = random_model(rng, "bitnet", "TQ2_0", n_layer=1)
    _expect(write_gguf(m, tmp_path / "a.gguf", skip=("blk.0.ffn_up.weight",)), "missing tensor 'blk.0.ffn_up.weight'")
    m = random_model(rng, "bitnet", "TQ2_0", n_layer=1)
    _expect(write_gguf(m, tmp_path / "b.gguf", bad_shape="blk.0.attn_k.weight"), "'blk.0.attn_k.weight' has shape")


def test_unsupported_tensor_type(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(2), "bitnet", "TQ2_0", n_layer=1)
    # A projection stored as Q4_0 is not ternary: the loader must say so rather than guess.
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "bitnet")
    good = GGUFFile(write_gguf(m, tmp_path / "src.gguf"))
    for key, value in good.metadata.items():
        if key.startswith("bitnet.") and isinstance(value, (int, float)):
            (w.add_uint32 if isinstance(value, int) else w.add_float32)(key, value)
    for name, info in good.tensors.items():
        if name == "blk.0.attn_q.weight":
            dense = np.ones((info.shape[0], info.shape[1]), np.float32)
            w.add_tensor(
                name,
                gguf.quants.quantize(dense, gguf.GGMLQuantizationType.Q4_0),
                raw_dtype=gguf.GGMLQuantizationType.Q4_0,
            )
        else:
            arr = good.tensor_data(name)
            raw = gguf.GGMLQuantizationType[info.type_name]
            if info.type_name == "F32":
                w.add_tensor(name, arr.view(np.float32).reshape(info.shape))
            elif info.type_name == "F16":
                w.add_tensor(name, arr.view(np.float16).reshape(info.shape))
            else:
                w.add_tensor(name, arr.reshape(info.shape[0], -1), raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelLoadError, match="Q4_0, which is not ternary"):
        Model.load(tmp_path / "q.gguf")


def test_safetensors_errors(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(3), "bitnet-b1.58", "I2_S", n_layer=1)
    d = write_safetensors_dir(m, tmp_path / "hf", packed=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_act"] = "gelu_new"
    (d / "config.json").write_text(json.dumps(cfg))
    _expect(d, "unsupported hidden_act")
    (d / "config.json").write_text("{not json")
    _expect(d, "unreadable config.json")
    (d / "config.json").unlink()
    _expect(d, "missing config.json")
    d2 = write_safetensors_dir(m, tmp_path / "hf2", packed=True)
    st_file = d2 / "model.safetensors"
    st_file.write_bytes(st_file.read_bytes()[:-1000])
    _expect(d2, "truncated")


def _header_bytes(good: Path) -> bytes:
    g = GGUFFile(good)
    return good.read_bytes()[: g.data_offset]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_header(good: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Random mutations of a real header (bytes flipped, counts and lengths replaced, cut short) never crash:
    the file either loads or raises ModelLoadError."""
    raw = bytearray(good.read_bytes())
    header_len = len(_header_bytes(good))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, header_len - 1))
        kind = data.draw(st.sampled_from(["byte", "u64", "u32"]))
        if kind == "byte":
            raw[pos] = data.draw(st.integers(0, 255))
        elif kind == "u64" and pos + 8 <= len(raw):
            raw[pos : pos + 8] = struct.pack("<Q", data.draw(st.sampled_from([0, 1, 2**31, 2**63 - 1, 2**64 - 1])))
        elif pos + 4 <= len(raw):
            raw[pos : pos + 4] = struct.pack("<I", data.draw(st.integers(0, 2**32 - 1)))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("fuzz") / "f.gguf"
    path.write_bytes(bytes(raw))
    try:
        Model.load(path)
    except ModelLoadError:
        pass


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(min_size=0, max_size=400))
def test_fuzz_random_bytes(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("rand") / "r.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + blob)
    try:
        GGUFFile(path)
    except ModelLoadError:
        pass
