"""Header fuzzing: a mutated GGUF file or safetensors checkpoint either loads or raises ModelLoadError naming it;
never another exception, never a hang (each load runs under an alarm), never a crash.

The loads run in this process on purpose: the loaders check every header field in Python before native code sees a
byte, so a native crash here is a bug in that design, not something to sandbox away. Mutations start from a valid
small model and aim at the fields a header is made of: counts, lengths, value types, nesting, tensor dimensions,
types and offsets (GGUF); the JSON entries' dtypes, shapes and offsets, and config.json's fields (safetensors).

Examples per test: `RYZANSTEIN_FUZZ_EXAMPLES` or `--fuzz-examples` (tests/engine/conftest.py); a few seconds by
default.
"""

from __future__ import annotations

import contextlib
import json
import signal
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyserver.engine import Model, ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from tests.engine.test_load_errors import (
    ARRAY,
    SCALARS,
    STRING,
    GgufDoc,
    parse_gguf,
    split_safetensors,
)
from tests.support.builders import random_model, write_gguf, write_safetensors_dir

SECONDS_PER_LOAD = 20  # far above any load of these small files: only a hang reaches it


def fuzz_settings(examples: int) -> settings:
    """Hypothesis's own deadline is off (the alarm below catches hangs; a slow first load is not a bug)."""
    slow = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=slow)


class LoadHung(BaseException):
    """Raised by the alarm; a BaseException, so no `except Exception` in a loader can mistake it for its own."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise LoadHung(f"a load took more than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_error(path: Path) -> str:
    """'loaded' (and one forward step ran) or 'error' (a ModelLoadError naming the path); anything else fails."""
    with time_limit(SECONDS_PER_LOAD):
        try:
            model = Model.load(path)
        except ModelLoadError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
            return "error"
        logits = model.session(8).eval([0, 1])
    assert logits is not None and logits.shape == (model.config.vocab,)
    return "loaded"


# ---- interesting values ---------------------------------------------------------------------------------------------

U32_EDGES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 255, 2**16, 2**31 - 1, 2**31, 2**32 - 1]
U64_EDGES = [0, 1, 2, 3, 4, 31, 32, 33, 64, 2**20, 2**26 + 1, 2**31, 2**32, 2**40 + 1, 2**63 - 1, 2**63, 2**64 - 1]


def u32s() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(U32_EDGES), st.integers(0, 2**32 - 1))


def u64s(near: int = 0) -> st.SearchStrategy[int]:
    nearby = st.integers(max(0, near - 64), near + 64)
    return st.one_of(st.sampled_from(U64_EDGES), nearby, st.integers(0, 2**64 - 1))


def gguf_values(depth: int = 0) -> st.SearchStrategy[tuple[int, Any]]:
    """(type id, value) of any GGUF metadata type, arrays nested a few levels."""
    scalars = st.one_of(
        *(st.tuples(st.just(t), st.integers(*_range(fmt))) for t, fmt in SCALARS.items() if fmt[-1] in "BbHhIiQq"),
        st.tuples(st.just(6), st.floats(width=32)),
        st.tuples(st.just(12), st.floats()),
        st.tuples(st.just(7), st.booleans()),
        st.tuples(st.just(STRING), st.text(max_size=8)),
    )
    if depth >= 3:
        return scalars
    arrays = st.sampled_from([*SCALARS, STRING]).flatmap(
        lambda etype: st.tuples(
            st.just(ARRAY),
            st.tuples(st.just(etype), st.lists(_element(etype), max_size=6)),
        )
    )
    # An array of arrays holds array bodies, (element type, items), not typed values.
    bodies = gguf_values(depth + 1).filter(_is_array).map(lambda v: v[1])
    nested = st.tuples(st.just(ARRAY), st.tuples(st.just(ARRAY), st.lists(bodies, max_size=3)))
    return st.one_of(scalars, arrays, nested)


def _range(fmt: str) -> tuple[int, int]:
    bits = struct.calcsize(fmt) * 8
    return (0, 2**bits - 1) if fmt[-1].isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _element(etype: int) -> st.SearchStrategy[Any]:
    if etype == STRING:
        return st.text(max_size=6)
    fmt = SCALARS[etype]
    if fmt[-1] == "?":
        return st.booleans()
    if fmt[-1] in "fd":
        return st.floats(width=32 if fmt[-1] == "f" else 64)
    return st.integers(*_range(fmt))


def _is_array(v: tuple[int, Any]) -> bool:
    return v[0] == ARRAY


# ---- GGUF -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    offset: int
    fmt: str  # "<I" or "<Q"
    what: str


def header_fields(raw: bytes) -> list[Field]:
    """Every count, length, type, dimension and offset field of a well-formed GGUF header, where it lies."""
    fields = [Field(4, "<I", "version"), Field(8, "<Q", "tensor count"), Field(16, "<Q", "kv count")]
    _, n_tensors, n_kv = struct.unpack_from("<IQQ", raw, 4)

    def string(pos: int, what: str) -> int:
        fields.append(Field(pos, "<Q", what))
        return pos + 8 + struct.unpack_from("<Q", raw, pos)[0]

    def value(pos: int, vtype: int) -> int:
        if vtype in SCALARS:
            return pos + struct.calcsize(SCALARS[vtype])
        if vtype == STRING:
            return string(pos, "string length")
        fields.extend([Field(pos, "<I", "array element type"), Field(pos + 4, "<Q", "array count")])
        etype, count = struct.unpack_from("<IQ", raw, pos)
        pos += 12
        for _ in range(count):
            pos = value(pos, etype)
        return pos

    pos = 24
    for _ in range(n_kv):
        pos = string(pos, "key length")
        fields.append(Field(pos, "<I", "value type"))
        pos = value(pos + 4, struct.unpack_from("<I", raw, pos)[0])
    for _ in range(n_tensors):
        pos = string(pos, "tensor name length")
        fields.append(Field(pos, "<I", "dimension count"))
        (n_dims,) = struct.unpack_from("<I", raw, pos)
        fields.extend(Field(pos + 4 + 8 * i, "<Q", "dimension") for i in range(n_dims))
        pos += 4 + 8 * n_dims
        fields.extend([Field(pos, "<I", "tensor type"), Field(pos + 4, "<Q", "tensor offset")])
        pos += 12
    return fields


@pytest.fixture(scope="module")
def good_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    m = random_model(np.random.default_rng(21), "bitnet", "TQ2_0", n_layer=1)
    return write_gguf(m, tmp_path_factory.mktemp("fuzz_good") / "good.gguf").read_bytes()


def _retyped(value: Any) -> st.SearchStrategy[tuple[int, Any]]:
    """The same value under another GGUF type: a count as a string or a float, a token list as numbers, ..."""
    first = value[0] if isinstance(value, (list, np.ndarray)) and len(value) else value
    number = int(first) if isinstance(first, (int, np.integer)) else 7
    text = str(first)[:16]
    return st.sampled_from(
        [
            (STRING, text),
            (4, number % 2**32),
            (10, number % 2**64),
            (6, float(number)),
            (7, bool(number)),
            (ARRAY, (STRING, [text] * 3)),
            (ARRAY, (4, [number % 2**32] * 3)),
            (ARRAY, (ARRAY, [(4, [number % 2**32])])),
        ]
    )


def _nested(depth: int) -> bytes:
    """An array value (type and body) nested `depth` deep around an empty u32 array."""
    return struct.pack("<I", ARRAY) + struct.pack("<IQ", ARRAY, 1) * (depth - 1) + struct.pack("<IQ", 4, 0)


STRUCTURAL = ["value", "retype", "retype", "nest", "drop_key", "dup_key", "dims", "type", "offset", "dup_tensor"]


def _mutate_doc(doc: GgufDoc, meta: dict[str, Any], data: st.DataObject) -> None:
    """One structural change: a key's value or type, a key nested, gone or doubled, a tensor's dims, type or
    offset, a tensor doubled. `meta` is the good file's metadata (what "retype" re-encodes)."""
    kind = data.draw(st.sampled_from(STRUCTURAL), label="structural change")
    if kind in ("value", "retype", "nest", "drop_key", "dup_key"):
        key = data.draw(st.sampled_from(sorted(doc.kv)), label="key")
        if kind == "value":
            doc.set(key, *data.draw(gguf_values()))
        elif kind == "retype":
            doc.set(key, *data.draw(_retyped(meta.get(key))))
        elif kind == "nest":
            doc.kv[key] = _nested(data.draw(st.sampled_from([2, 4, 5, 6, 100, 50_000])))
        elif kind == "drop_key":
            del doc.kv[key]
        else:
            doc.extra_kv.append(struct.pack("<Q", len(key)) + key.encode() + doc.kv[key])
        return
    t = data.draw(st.sampled_from(doc.tensors), label="tensor")
    if kind == "dims":
        t.dims = data.draw(st.lists(st.one_of(st.sampled_from([0, 1, 2, 64, 256, 320, 2**40]), u64s()), max_size=5))
    elif kind == "type":
        t.type_id = data.draw(st.one_of(st.integers(0, 45), u32s()))
    elif kind == "offset":
        other = data.draw(st.sampled_from(doc.tensors))
        t.offset = data.draw(st.one_of(st.just(other.offset), u64s(t.offset)))
    else:
        doc.tensors.append(t)


def _mutate_raw(raw: bytearray, fields: list[Field], data: st.DataObject) -> None:
    """One change at the byte level: a header field overwritten (a kind of field first, so the hundreds of string
    lengths of a vocabulary do not drown the counts and offsets), a byte flipped, the file cut short."""
    kind = data.draw(st.sampled_from(["field", "field", "byte", "truncate"]), label="byte-level change")
    if kind == "field" and fields:
        what = data.draw(st.sampled_from(sorted({f.what for f in fields})), label="field kind")
        f = data.draw(st.sampled_from([f for f in fields if f.what == what]))
        if f.offset + struct.calcsize(f.fmt) <= len(raw):
            (old,) = struct.unpack_from(f.fmt, raw, f.offset)
            new = data.draw(u32s() if f.fmt == "<I" else u64s(old))
            struct.pack_into(f.fmt, raw, f.offset, new)
    elif kind == "byte" and raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw))) :]


def _fuzz_gguf(good_gguf: bytes, tmp_path: Path, fuzz_examples: int) -> None:
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(good_gguf)
    meta = GGUFFile(path).metadata
    outcomes: list[str] = []

    @fuzz_settings(fuzz_examples)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        doc = parse_gguf(good_gguf)
        n_structural = data.draw(st.integers(0, 3), label="structural changes")
        for _ in range(n_structural):
            _mutate_doc(doc, meta, data)
        raw = bytearray(doc.encode())
        fields = header_fields_safe(bytes(raw))
        n_raw = data.draw(st.integers(0, 2) if n_structural else st.integers(1, 3), label="byte-level changes")
        for _ in range(n_raw):
            _mutate_raw(raw, fields, data)
        path.write_bytes(bytes(raw))
        outcomes.append(load_or_error(path))

    check()
    assert "error" in outcomes  # the mutations reach the checks (and loads are not all refused for one reason)


def test_gguf_header_fuzz(good_gguf: bytes, tmp_path: Path, fuzz_examples: int) -> None:
    _fuzz_gguf(good_gguf, tmp_path, fuzz_examples)


def test_qwen3_gguf_header_fuzz(tmp_path: Path, fuzz_examples: int) -> None:
    """The same on a Qwen3 file (Q2_0 type-42 tensors, a ternary embedding, q/k norms, the qwen2 vocabulary)."""
    fixture = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
    _fuzz_gguf(fixture.read_bytes(), tmp_path, fuzz_examples)


def header_fields_safe(raw: bytes) -> list[Field]:
    """The field map of a header (changed, but whole: the codec wrote it); none where this walker cannot follow."""
    try:
        return header_fields(raw)
    except (struct.error, IndexError, RecursionError, OverflowError):
        return []


@fuzz_settings(100)
@given(blob=st.binary(min_size=0, max_size=400))
def test_gguf_random_bytes_after_the_magic(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("rand") / "r.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + blob)
    assert load_or_error(path) == "error"


# ---- safetensors ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    m = random_model(np.random.default_rng(22), "bitnet-b1.58", "I2_S", n_layer=1)
    d = write_safetensors_dir(m, tmp_path_factory.mktemp("fuzz_hf") / "hf", packed=True)
    return {name: (d / name).read_bytes() for name in ("config.json", "tokenizer.json", "model.safetensors")}


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, with the edges a header field must survive: huge and negative ints, non-finite floats."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([0, 1, -1, 2, 255, 256, 320, 2**31, 2**63, 2**64, 2**70, -(2**70)]),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["F32", "F16", "BF16", "U8", "I64", "F8_E4M3", "", "0", "1e9"]),
        st.text(max_size=6),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=8,
    )


def _mutate_header(header: dict[str, Any], data: st.DataObject) -> None:
    names = [k for k in header if k != "__metadata__"]
    name = data.draw(st.sampled_from([*names, "__metadata__"]))
    kind = data.draw(st.sampled_from(["field", "field", "entry", "drop", "offsets", "shape"]))
    entry = header.get(name)
    if kind == "entry" or not isinstance(entry, dict):
        header[name] = data.draw(json_values())
    elif kind == "field":
        entry[data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]))] = data.draw(json_values())
    elif kind == "drop":
        del header[name]
    elif kind == "offsets" and isinstance(entry.get("data_offsets"), list):
        start, stop = _offsets(header.get(data.draw(st.sampled_from(names))))
        delta = data.draw(st.sampled_from([-1024, -1, 1, 4, 1024, 2**40]))
        entry["data_offsets"] = data.draw(
            st.sampled_from([[start, stop], [start + delta, stop + delta], [stop, start]])
        )
    elif isinstance(entry.get("shape"), list):
        entry["shape"] = data.draw(
            st.permutations(entry["shape"]) | st.lists(st.sampled_from([0, 1, 4, 64, 2**33]), max_size=3)
        )


def _offsets(entry: Any) -> tuple[int, int]:
    """Another entry's data offsets (to overlap with), or (0, 0) when earlier mutations left none."""
    o = entry.get("data_offsets") if isinstance(entry, dict) else None
    ok = isinstance(o, list) and len(o) == 2 and all(type(x) is int for x in o)
    return (o[0], o[1]) if ok and o is not None else (0, 0)


def _write_checkpoint(d: Path, files: dict[str, bytes]) -> None:
    d.mkdir(exist_ok=True)
    for name, content in files.items():
        (d / name).write_bytes(content)


def test_safetensors_header_fuzz(good_checkpoint: dict[str, bytes], tmp_path: Path, fuzz_examples: int) -> None:
    d = tmp_path / "ckpt"
    header0, blob = split_safetensors(good_checkpoint["model.safetensors"])
    config0 = json.loads(good_checkpoint["config.json"])
    outcomes: list[str] = []

    @fuzz_settings(fuzz_examples)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        header, config = json.loads(json.dumps(header0)), dict(config0)
        for _ in range(data.draw(st.integers(0, 3), label="header changes")):
            _mutate_header(header, data)
        for _ in range(data.draw(st.integers(0, 2), label="config changes")):
            config[data.draw(st.sampled_from(sorted(config)))] = data.draw(json_values())
        text = bytearray(json.dumps(header).encode())
        if text and data.draw(st.booleans(), label="flip a header byte"):
            text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.integers(0, 255))
        length = data.draw(st.one_of(st.just(len(text)), u64s(len(text))), label="header length")
        raw = struct.pack("<Q", length) + bytes(text) + blob
        raw = raw[: data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans(), label="cut") else raw
        files = {**good_checkpoint, "model.safetensors": raw, "config.json": json.dumps(config).encode()}
        _write_checkpoint(d, files)
        outcomes.append(load_or_error(d))

    check()
    assert "error" in outcomes


def test_the_alarm_catches_a_hang() -> None:
    """The per-example guard itself works (a load that never returns would otherwise stall the whole run)."""
    with pytest.raises(LoadHung), time_limit(0.05):
        while True:
            pass
