"""Bad model files give a ModelLoadError naming the file and the problem (the field at fault, where there is one).

Each hand-made bad file below reproduces one way a header can lie: the test asserts the specific message, so it
fails if the loader crashes, hangs or says something vaguer. The fuzz tests are in test_header_fuzz.py.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from pyserver.engine import Model, ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.host import ModelHost
from pyserver.inspect.source import open_model
from tests.support.builders import random_model, write_gguf, write_safetensors_dir

# ---- a small GGUF codec, independent of the reader under test: parse a good file, change it, write it back -----

# GGUF metadata value types: id -> (struct format, size).
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


def gguf_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def encode_value(vtype: int, value: Any) -> bytes:
    """A metadata value's bytes (without its type). Arrays are (element type, items)."""
    if vtype in SCALARS:
        return struct.pack(SCALARS[vtype], value)
    if vtype == STRING:
        return gguf_str(value)
    etype, items = value
    return struct.pack("<IQ", etype, len(items)) + b"".join(encode_value(etype, v) for v in items)


def kv_bytes(key: str, vtype: int, value: Any) -> bytes:
    return gguf_str(key) + struct.pack("<I", vtype) + encode_value(vtype, value)


@dataclass
class GgufTensor:
    name: str
    dims: list[int]  # GGUF order: innermost first
    type_id: int
    offset: int  # relative to the data section

    def encode(self) -> bytes:
        head = gguf_str(self.name) + struct.pack("<I", len(self.dims))
        return head + b"".join(struct.pack("<Q", d) for d in self.dims) + struct.pack("<IQ", self.type_id, self.offset)


@dataclass
class GgufDoc:
    """A GGUF file as parts: metadata entries kept as raw bytes (so any bytes can be put in), tensor infos, data."""

    kv: dict[str, bytes]  # key -> type id + value bytes
    tensors: list[GgufTensor]
    data: bytes
    version: int = 3
    alignment: int = 32
    counts: tuple[int, int] | None = None  # (tensors, kv) to write instead of the true counts
    extra_kv: list[bytes] = field(default_factory=list)  # whole raw entries appended after `kv`

    def set(self, key: str, vtype: int, value: Any) -> GgufDoc:
        self.kv[key] = struct.pack("<I", vtype) + encode_value(vtype, value)
        return self

    def tensor(self, name: str) -> GgufTensor:
        return next(t for t in self.tensors if t.name == name)

    def encode(self) -> bytes:
        n_tensors, n_kv = self.counts or (len(self.tensors), len(self.kv) + len(self.extra_kv))
        out = b"GGUF" + struct.pack("<IQQ", self.version, n_tensors, n_kv)
        out += b"".join(gguf_str(k) + v for k, v in self.kv.items()) + b"".join(self.extra_kv)
        out += b"".join(t.encode() for t in self.tensors)
        out += b"\0" * ((-len(out)) % self.alignment)
        return out + self.data

    def write(self, path: Path) -> Path:
        path.write_bytes(self.encode())
        return path


def _skip_value(buf: bytes, pos: int, vtype: int) -> int:
    if vtype in SCALARS:
        return pos + struct.calcsize(SCALARS[vtype])
    if vtype == STRING:
        return pos + 8 + struct.unpack_from("<Q", buf, pos)[0]
    etype, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    for _ in range(count):
        pos = _skip_value(buf, pos, etype)
    return pos


def parse_gguf(raw: bytes) -> GgufDoc:
    """The parts of a well-formed GGUF file (the tests' own files: no validation here)."""
    assert raw[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", raw, 4)
    pos, kv = 24, {}
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", raw, pos)
        key = raw[pos + 8 : pos + 8 + n].decode()
        start = pos + 8 + n
        (vtype,) = struct.unpack_from("<I", raw, start)
        pos = _skip_value(raw, start + 4, vtype)
        kv[key] = raw[start:pos]
    tensors = []
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", raw, pos)
        name = raw[pos + 8 : pos + 8 + n].decode()
        pos += 8 + n
        (n_dims,) = struct.unpack_from("<I", raw, pos)
        dims = list(struct.unpack_from(f"<{n_dims}Q", raw, pos + 4))
        pos += 4 + 8 * n_dims
        type_id, offset = struct.unpack_from("<IQ", raw, pos)
        pos += 12
        tensors.append(GgufTensor(name, dims, type_id, offset))
    alignment = 32
    if "general.alignment" in kv:
        alignment = struct.unpack_from("<I", kv["general.alignment"], 4)[0]
    data_start = (pos + alignment - 1) // alignment * alignment
    return GgufDoc(kv, tensors, raw[data_start:], version, alignment)


# ---- fixtures and helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(11), "bitnet", "TQ2_0", n_layer=1)
    return write_gguf(m, tmp_path_factory.mktemp("good") / "good.gguf")


@pytest.fixture(scope="module")
def good_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(3), "bitnet-b1.58", "I2_S", n_layer=1)
    return write_safetensors_dir(m, tmp_path_factory.mktemp("good_hf") / "hf", packed=True)


def _doc(good: Path) -> GgufDoc:
    return parse_gguf(good.read_bytes())


def _expect(path: Path, pattern: str) -> ModelLoadError:
    with pytest.raises(ModelLoadError, match=pattern) as info:
        Model.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one line: what the CLI and the editor's status show
    return info.value


def test_codec_round_trips(good: Path) -> None:
    assert _doc(good).encode() == good.read_bytes()


def test_reader_agrees_with_gguf_package(good: Path) -> None:
    ours, theirs = GGUFFile(good), gguf.GGUFReader(good)
    assert set(ours.tensors) == {t.name for t in theirs.tensors}
    for t in theirs.tensors:
        info = ours.tensors[t.name]
        assert info.type_name == t.tensor_type.name
        assert info.offset == t.data_offset and info.nbytes == t.n_bytes
        assert list(reversed(info.shape)) == [int(x) for x in t.shape]
        assert np.array_equal(ours.tensor_data(t.name), np.asarray(t.data).reshape(-1).view(np.uint8))
    assert ours.metadata["bitnet.block_count"] == 1
    assert ours.metadata["tokenizer.ggml.tokens"][:3] == [
        theirs.fields["tokenizer.ggml.tokens"].contents(i) for i in range(3)
    ]


# ---- GGUF: the container -------------------------------------------------------------------------------------------


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


def test_a_symbolic_link_loop_is_named_as_one(tmp_path: Path) -> None:
    """Not "no such file": the path is there, and says why it cannot be opened."""
    (tmp_path / "a.gguf").symlink_to(tmp_path / "b.gguf")
    (tmp_path / "b.gguf").symlink_to(tmp_path / "a.gguf")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    for path in (tmp_path / "a.gguf", tmp_path / "self"):
        _expect(path, "too many levels of symbolic links")
        with pytest.raises(ModelLoadError, match="too many levels of symbolic links"):
            open_model(path)  # (the inspector's reader)
    (tmp_path / "dangling.gguf").symlink_to(tmp_path / "gone.gguf")
    _expect(tmp_path / "dangling.gguf", "no such file")


def test_fifo_is_refused_at_once(good_hf: Path, tmp_path: Path) -> None:
    """A named pipe would block the open (no writer) or never end; only regular files are model files."""
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    config_fifo = tmp_path / "hf"
    config_fifo.mkdir()
    os.mkfifo(config_fifo / "config.json")
    shard_fifo = copy_checkpoint(good_hf, tmp_path / "hf2")
    (shard_fifo / "model.safetensors").unlink()
    os.mkfifo(shard_fifo / "model.safetensors")
    cases = {"gguf": fifo, "config": config_fifo, "shard": shard_fifo, "shard_file": shard_fifo / "model.safetensors"}
    errors: dict[str, str] = {}

    def load(key: str, path: Path) -> None:
        try:
            Model.load(path)
        except ModelLoadError as exc:
            errors[key] = str(exc)

    threads = [threading.Thread(target=load, args=case, daemon=True) for case in cases.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for p in (fifo, config_fifo / "config.json", shard_fifo / "model.safetensors"):
        _release_reader(p)
    for key, where in (("gguf", "pipe.gguf"), ("config", "config.json"), ("shard", "model.safetensors")):
        assert f"{where}: not a regular file (a FIFO)" in errors.get(key, "it hung"), errors
    assert "model.safetensors: not a regular file (a FIFO)" in errors.get("shard_file", "it hung"), errors


def _release_reader(fifo: Path) -> None:
    """Unblocks a reader stuck opening the FIFO (the bug this guards against), so a failing test ends."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody has it open for reading
        pass


def test_counts_beyond_what_the_file_can_hold(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.counts = (len(doc.tensors), 1_000_000)
    _expect(doc.write(tmp_path / "kv.gguf"), "1000000 metadata keys .* more than the file can hold")
    doc.counts = (2**40, len(doc.kv))
    _expect(doc.write(tmp_path / "t.gguf"), "implausible counts")


def test_nested_arrays_200k_deep(good: Path, tmp_path: Path) -> None:
    depth = 200_000
    value = struct.pack("<I", ARRAY) + struct.pack("<IQ", ARRAY, 1) * (depth - 1) + struct.pack("<IQ", 4, 0)
    doc = _doc(good)
    doc.extra_kv.append(gguf_str("evil.nested") + value)
    _expect(doc.write(tmp_path / "deep.gguf"), "'evil.nested': arrays nested deeper than")


def test_array_count_beyond_the_file(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.kv["evil.strings"] = struct.pack("<I", ARRAY) + struct.pack("<IQ", STRING, 50_000_000)
    _expect(doc.write(tmp_path / "a.gguf"), "'evil.strings': array of 50000000 strings needs at least")


def test_duplicate_metadata_key(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.extra_kv.append(gguf_str("bitnet.block_count") + doc.kv["bitnet.block_count"])
    _expect(doc.write(tmp_path / "dup.gguf"), "metadata key 'bitnet.block_count' appears twice")


def test_unknown_value_type(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.kv["evil.type"] = struct.pack("<I", 77) + b"\0" * 8
    _expect(doc.write(tmp_path / "t.gguf"), "'evil.type': unknown metadata value type 77")


def test_overlapping_tensor_offsets(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.tensor("blk.0.attn_k.weight").offset = doc.tensor("blk.0.attn_q.weight").offset
    _expect(
        doc.write(tmp_path / "overlap.gguf"),
        r"tensors 'blk\.0\.attn_[qk]\.weight' .* and 'blk\.0\.attn_[qk]\.weight' .* overlap",
    )


def test_tensor_offset_not_aligned_and_beyond_the_file(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.tensor("output_norm.weight").offset += 4
    _expect(doc.write(tmp_path / "a.gguf"), "'output_norm.weight' data offset .* is not aligned to 32")
    doc = _doc(good)
    doc.tensor("output_norm.weight").offset = 2**63
    _expect(doc.write(tmp_path / "b.gguf"), "truncated: tensor 'output_norm.weight' needs bytes")


def test_tensor_dims(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.tensor("output_norm.weight").dims = [0]
    _expect(doc.write(tmp_path / "zero.gguf"), "tensor 'output_norm.weight' has implausible dimensions")
    doc.tensor("output_norm.weight").dims = [2**40, 2**40]
    _expect(doc.write(tmp_path / "huge.gguf"), "tensor 'output_norm.weight' has implausible dimensions")
    doc.tensor("output_norm.weight").dims = [1] * 5
    _expect(doc.write(tmp_path / "five.gguf"), "tensor 'output_norm.weight' has 5 dimensions")


def test_duplicate_tensor(good: Path, tmp_path: Path) -> None:
    doc = _doc(good)
    doc.tensors.append(doc.tensor("output_norm.weight"))
    _expect(doc.write(tmp_path / "dup.gguf"), "tensor 'output_norm.weight' appears twice")


@pytest.mark.parametrize(
    ("key", "vtype", "value", "message"),
    [
        ("general.alignment", 4, 48, "general.alignment 48 is not a power of two"),
        ("general.alignment", STRING, "32", "'general.alignment' must be an integer"),
        ("general.architecture", 4, 7, "'general.architecture' must be a string"),
        ("general.file_type", STRING, "x", "'general.file_type' must be an integer"),
    ],
)
def test_general_keys_have_their_types(
    good: Path, tmp_path: Path, key: str, vtype: int, value: object, message: str
) -> None:
    _expect(_doc(good).set(key, vtype, value).write(tmp_path / "g.gguf"), message)


# ---- GGUF: the model's keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "vtype", "value", "message"),
    [
        ("bitnet.embedding_length", STRING, "256", "'bitnet.embedding_length' must be a positive integer"),
        ("bitnet.block_count", 7, True, "'bitnet.block_count' must be a positive integer"),
        ("bitnet.block_count", 10, 2**62, "'bitnet.block_count' must be a positive integer below"),
        ("bitnet.attention.head_count_kv", 4, 3, "'bitnet.attention.head_count' .* multiple of .*head_count_kv"),
        ("bitnet.rope.freq_base", STRING, "abc", "'bitnet.rope.freq_base' must be a positive finite number"),
        ("bitnet.rope.freq_base", 6, float("inf"), "'bitnet.rope.freq_base' must be a positive finite number"),
        ("bitnet.attention.layer_norm_rms_epsilon", 6, -1.0, "'bitnet.attention.layer_norm_rms_epsilon' must be"),
        ("bitnet.rope.dimension_count", 4, 1000, "'bitnet.rope.dimension_count' .* at most the head dimension"),
        ("bitnet.vocab_size", 4, 999, "'bitnet.vocab_size' is 999 but 'token_embd.weight' has 320 rows"),
        ("bitnet.context_length", 12, 4096.0, "'bitnet.context_length' must be a positive integer"),
    ],
)
def test_model_keys_are_validated(
    good: Path, tmp_path: Path, key: str, vtype: int, value: object, message: str
) -> None:
    _expect(_doc(good).set(key, vtype, value).write(tmp_path / "k.gguf"), message)


def test_vocabulary_smaller_than_the_embedding(good: Path, tmp_path: Path) -> None:
    """10 tokens for a 320-row embedding: the model would produce ids no token spells."""
    doc = _doc(good)
    tokens = GGUFFile(good).metadata["tokenizer.ggml.tokens"][:10]
    doc.set("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    doc.set("tokenizer.ggml.token_type", ARRAY, (5, [1] * 10))
    doc.set("tokenizer.ggml.merges", ARRAY, (STRING, []))
    for key in [k for k in doc.kv if k.endswith("_token_id")]:
        doc.set(key, 4, 0)
    _expect(doc.write(tmp_path / "v.gguf"), "vocabulary has 10 tokens .*'token_embd.weight' has 320 rows")


@pytest.mark.parametrize(
    ("key", "vtype", "value", "message"),
    [
        ("tokenizer.ggml.token_type", ARRAY, (STRING, ["1"] * 320), "'tokenizer.ggml.token_type' must be an array of"),
        ("tokenizer.ggml.token_type", ARRAY, (5, [1] * 5), "'tokenizer.ggml.token_type' has 5 entries, .* 320 tokens"),
        ("tokenizer.ggml.tokens", ARRAY, (4, list(range(320))), "'tokenizer.ggml.tokens' must be an array of strings"),
        ("tokenizer.ggml.merges", ARRAY, (4, [1, 2]), "'tokenizer.ggml.merges' must be an array of strings"),
        ("tokenizer.ggml.model", 4, 1, "'tokenizer.ggml.model' must be a string"),
        ("tokenizer.ggml.scores", ARRAY, (STRING, ["x"]), "'tokenizer.ggml.scores' must be an array of numbers"),
        ("tokenizer.ggml.bos_token_id", 4, 5000, "'tokenizer.ggml.bos_token_id' is 5000, outside the vocabulary"),
        ("tokenizer.ggml.eos_token_id", STRING, "0", "'tokenizer.ggml.eos_token_id' must be an integer"),
        ("tokenizer.ggml.add_bos_token", STRING, "yes", "'tokenizer.ggml.add_bos_token' must be a boolean"),
    ],
)
def test_tokenizer_keys_are_validated(
    good: Path, tmp_path: Path, key: str, vtype: int, value: object, message: str
) -> None:
    _expect(_doc(good).set(key, vtype, value).write(tmp_path / "t.gguf"), message)


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


# ---- safetensors --------------------------------------------------------------------------------------------------


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


def split_safetensors(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack_from("<Q", raw)
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def copy_checkpoint(good_hf: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (where / name).write_bytes((good_hf / name).read_bytes())
    return where


def safetensors_variant(good_hf: Path, where: Path, header: bytes, data: bytes | None = None) -> Path:
    """A copy of the good checkpoint directory whose model.safetensors has this header (JSON bytes)."""
    copy_checkpoint(good_hf, where)
    if data is None:
        data = split_safetensors((good_hf / "model.safetensors").read_bytes())[1]
    (where / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    return where


def _first(header: dict[str, Any]) -> str:
    return next(k for k in header if k != "__metadata__")


def _edit(change: Callable[[dict[str, Any], str], None]) -> Callable[[Path], bytes]:
    def header_bytes(good_hf: Path) -> bytes:
        header = split_safetensors((good_hf / "model.safetensors").read_bytes())[0]
        change(header, _first(header))
        return json.dumps(header).encode()

    return header_bytes


def _entry(field_: str, value: object) -> Callable[[dict[str, Any], str], None]:
    return lambda h, name: h[name].__setitem__(field_, value)


NESTED = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
SAFETENSORS_CASES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "nested_100k": (lambda _: NESTED, "header nests too deeply"),
    "string_offsets": (_edit(_entry("data_offsets", ["0", "10"])), "'data_offsets' must be two integers"),
    "three_offsets": (_edit(_entry("data_offsets", [0, 1, 2])), "'data_offsets' must be two integers"),
    "infinite_shape": (_edit(_entry("shape", [float("inf"), 2])), "not a finite number: Infinity"),
    "float_shape": (_edit(_entry("shape", [2.0, 2])), "'shape' must be a list of non-negative integers"),
    "negative_shape": (_edit(_entry("shape", [-2, 2])), "'shape' must be a list of non-negative integers"),
    "bool_shape": (_edit(_entry("shape", [True])), "'shape' must be a list of non-negative integers"),
    "huge_shape": (_edit(_entry("shape", [2**70, 2])), "shape \\[1180591620717411303424, 2\\] is implausible"),
    "dtype_number": (_edit(_entry("dtype", 3)), "'dtype' must be a string"),
    "unknown_dtype": (_edit(_entry("dtype", "F8_E4M3")), "unsupported dtype F8_E4M3"),
    "list_entry": (_edit(lambda h, n: h.__setitem__(n, [1, 2])), "entry must be an object"),
    "missing_field": (_edit(lambda h, n: h[n].pop("shape")), "entry has no 'shape'"),
    "list_header": (lambda _: b"[1, 2]", "header must be a JSON object"),
    "list_metadata": (_edit(lambda h, _: h.__setitem__("__metadata__", [1, 2])), "'__metadata__' must be an object"),
    "metadata_numbers": (_edit(lambda h, _: h.__setitem__("__metadata__", {"a": 1})), "'__metadata__' must be an"),
    "offsets_beyond_file": (_edit(_entry("data_offsets", [10**12, 10**12 + 1024])), "outside the file .*truncated"),
    "offsets_wrong_size": (_edit(_entry("data_offsets", [0, 3])), "do not match its shape"),
    "not_utf8": (lambda _: b'{"\xff": 1}', "header is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_safetensors_header_cases(good_hf: Path, tmp_path: Path, case: str) -> None:
    header, message = SAFETENSORS_CASES[case]
    err = _expect(safetensors_variant(good_hf, tmp_path / case, header(good_hf)), message)
    assert "model.safetensors" in str(err)


def test_safetensors_overlap_and_duplicates(good_hf: Path, tmp_path: Path) -> None:
    header = split_safetensors((good_hf / "model.safetensors").read_bytes())[0]
    names = [k for k in header if k != "__metadata__"]
    a, b = [n for n in names if header[n]["shape"] == [256] and header[n]["dtype"] == "F32"][:2]
    overlapping = dict(header)
    overlapping[b] = {**header[b], "data_offsets": header[a]["data_offsets"]}
    _expect(safetensors_variant(good_hf, tmp_path / "o", json.dumps(overlapping).encode()), "overlap")
    text = json.dumps(header)
    dup = text[:-1] + ", " + json.dumps(a) + ": " + json.dumps(header[a]) + "}"
    _expect(safetensors_variant(good_hf, tmp_path / "d", dup.encode()), f"key '{a}' appears twice")


def test_safetensors_header_length(good_hf: Path, tmp_path: Path) -> None:
    raw = (good_hf / "model.safetensors").read_bytes()
    d = safetensors_variant(good_hf, tmp_path / "len", b"{}")
    for n in (2**64 - 1, len(raw)):
        (d / "model.safetensors").write_bytes(struct.pack("<Q", n) + raw[8:])
        _expect(d, "header length .* truncated")


def test_a_safetensors_file_path_loads_its_directory(good_hf: Path, tmp_path: Path) -> None:
    """`--model dir/model.safetensors` means the checkpoint directory; its header errors name the file."""
    assert Model.load(good_hf / "model.safetensors").config.n_layer == 1
    d = safetensors_variant(good_hf, tmp_path / "bad", NESTED)
    _expect(d / "model.safetensors", "model.safetensors: .*header nests too deeply")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("num_key_value_heads", "two", "'num_key_value_heads' must be a positive integer"),
        ("head_dim", [64], "'head_dim' must be a positive integer"),
        ("max_position_embeddings", -1, "'max_position_embeddings' must be a positive integer"),
        ("rope_theta", "abc", "'rope_theta' must be a positive finite number"),
        ("rms_norm_eps", [1e-5], "'rms_norm_eps' must be a positive finite number"),
        ("quantization_config", [1], "'quantization_config' must be an object"),
        ("hidden_act", 5, "'hidden_act' must be a string"),
        ("tie_word_embeddings", "yes", "'tie_word_embeddings' must be a boolean"),
        ("num_attention_heads", 3, "'num_attention_heads' .* must divide"),
        ("hidden_size", 512, "'model.embed_tokens.weight' has 256 columns, hidden_size is 512"),
        ("bos_token_id", 10**6, "'bos_token_id' is 1000000, outside the vocabulary of 320"),
    ],
)
def test_config_json_fields(good_hf: Path, tmp_path: Path, key: str, value: object, message: str) -> None:
    d = copy_checkpoint(good_hf, tmp_path / "c")
    cfg = json.loads((good_hf / "config.json").read_text())
    cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    _expect(d, message)


def test_config_json_not_an_object(good_hf: Path, tmp_path: Path) -> None:
    d = copy_checkpoint(good_hf, tmp_path / "c")
    (d / "config.json").write_text("[1, 2]")
    _expect(d, "config.json must be a JSON object")


def test_tokenizer_larger_than_the_embedding(good_hf: Path, tmp_path: Path) -> None:
    """A tokenizer.json with more tokens than the embedding has rows would encode ids the model cannot embed."""
    d = copy_checkpoint(good_hf, tmp_path / "t")
    tok = json.loads((good_hf / "tokenizer.json").read_text())
    tok["model"]["vocab"].update({f"extra{i}": 10_000 + i for i in range(5)})
    (d / "tokenizer.json").write_text(json.dumps(tok))
    _expect(d, "tokenizer.json has .* tokens .* 'model.embed_tokens.weight' has 320 rows")


def test_norm_of_the_wrong_length(good_hf: Path, tmp_path: Path) -> None:
    header, data = split_safetensors((good_hf / "model.safetensors").read_bytes())
    name = "model.layers.0.input_layernorm.weight"
    start = header[name]["data_offsets"][0]
    header[name] = {"dtype": "F32", "shape": [4], "data_offsets": [start, start + 16]}
    d = safetensors_variant(good_hf, tmp_path / "n", json.dumps(header).encode(), data)
    _expect(d, f"tensor '{name}' has 4 values, expected 256")


# ---- who sees the error ---------------------------------------------------------------------------------------------


def test_host_reports_any_load_failure(good_hf: Path, tmp_path: Path) -> None:
    """The LSP server's host must end in "error" with the message, never stay "loading"."""
    states: list[str] = []
    host = ModelHost(on_state=lambda h: states.append(h.state))
    d = safetensors_variant(good_hf, tmp_path / "deep", NESTED)
    host.load_in_background(str(d)).join(60)
    assert states == ["loading", "error"] and host.error is not None and "nests too deeply" in host.error


@pytest.mark.parametrize("command", ["generate", "complete"])
def test_cli_prints_one_line_and_exits_2(good_hf: Path, tmp_path: Path, command: str) -> None:
    d = safetensors_variant(good_hf, tmp_path / "deep", NESTED)
    src = tmp_path / "x.py"
    src.write_text("def f():\n    return 1\n")
    args = [str(d / "model.safetensors")] if command == "generate" else [f"{src}:1:1", "--model", str(d)]
    proc = subprocess.run(
        [sys.executable, "-m", "pyserver", command, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "nests too deeply" in proc.stderr
