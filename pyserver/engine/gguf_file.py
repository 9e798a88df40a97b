"""A GGUF reader: header, metadata and tensor directory, with tensor data as numpy memmaps.

We parse the container ourselves (rather than through `gguf.GGUFReader`) because real ternary files carry tensor
types that reader cannot size (bitnet.cpp's I2_S) and because every malformed byte must become a `ModelLoadError`
naming the file, never a crash or a huge allocation. The `gguf` package still provides the type catalogue and is the
independent reference the tests compare this reader with.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from pyserver.engine.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# bitnet.cpp's private type ids. Mainline reuses 36-39 (retired, then MXFP4), so only files whose architecture or file
# type says bitnet.cpp get this meaning (see `tensor_type_name`).
BITNET_CPP_I2_S = 36
BITNET_CPP_FILE_TYPE_I2_S = 40
BITNET_CPP_ARCHS = ("bitnet-b1.58",)

# Limits that keep a hostile header from allocating unbounded memory before the data is even looked at.
MAX_STRING = 1 << 24
MAX_ARRAY = 1 << 26
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_DIMS = 4

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_NUMPY_ARRAY: dict[int, str] = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "<?",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order: outermost first (GGUF stores innermost first)
    type_id: int
    type_name: str
    offset: int  # absolute, in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class _Cursor:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def fail(self, problem: str) -> ModelLoadError:
        return ModelLoadError(self.path, f"corrupt GGUF header at byte {self.pos}: {problem}")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ModelLoadError(
                self.path,
                f"file is truncated: the header needs {n} more bytes at offset {self.pos}"
                f" but the file has {len(self.buf)} bytes",
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str, size: int) -> Any:
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self) -> int:
        return int(self.scalar("<I", 4))

    def u64(self) -> int:
        return int(self.scalar("<Q", 8))

    def string(self) -> str:
        n = self.u64()
        if n > MAX_STRING:
            raise self.fail(f"string length {n} is implausible")
        raw = bytes(self.take(n))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Token pieces of some vocabularies are not valid UTF-8 on their own; keep them byte-exact.
            return raw.decode("utf-8", errors="surrogateescape")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(*_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            if count > MAX_ARRAY:
                raise self.fail(f"array of {count} items is implausible")
            if etype in _NUMPY_ARRAY:
                dt = np.dtype(_NUMPY_ARRAY[etype])
                data = self.take(count * dt.itemsize)
                return np.frombuffer(data, dtype=dt).copy()
            if etype == _STRING:
                return [self.string() for _ in range(count)]
            if etype == _ARRAY:
                return [self.value(_ARRAY) for _ in range(count)]
            raise self.fail(f"unknown array element type {etype}")
        raise self.fail(f"unknown metadata value type {vtype}")


def tensor_type_name(type_id: int, arch: str, file_type: int | None) -> str:
    """The GGML type name for a tensor type id, given what the file says about itself."""
    if type_id == BITNET_CPP_I2_S and (arch in BITNET_CPP_ARCHS or file_type == BITNET_CPP_FILE_TYPE_I2_S):
        return "I2_S"
    try:
        return GGMLQuantizationType(type_id).name
    except ValueError:
        return f"unknown type {type_id}"


def tensor_nbytes(type_name: str, n_elements: int, inner: int) -> int | None:
    """Bytes a tensor occupies, or None when the type is unknown or the row does not fill whole blocks."""
    if type_name == "I2_S":
        return n_elements // 4 + 32 if n_elements % 4 == 0 else None
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except (KeyError, ValueError):
        return None
    if inner % block:
        return None
    return n_elements // block * size


class GGUFFile:
    """An opened GGUF file. `metadata` holds every key; `tensors` maps names to `TensorInfo`; `tensor_data(name)` is a
    zero-copy uint8 view into the memory-mapped file, valid as long as this object lives."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise ModelLoadError(self.path, f"cannot open: {exc.strerror or exc}") from exc
        with f:
            size = self.path.stat().st_size
            if size < 24:
                raise ModelLoadError(self.path, f"file is truncated ({size} bytes): not even a GGUF header fits")
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.data = np.frombuffer(self._mmap, dtype=np.uint8)
        self.metadata: dict[str, Any] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self._parse(memoryview(self._mmap))

    def _parse(self, buf: memoryview) -> None:
        cur = _Cursor(buf, self.path)
        if bytes(cur.take(4)) != GGUF_MAGIC:
            raise ModelLoadError(self.path, "bad magic: not a GGUF file")
        self.version = cur.u32()
        if self.version not in (2, 3):
            raise ModelLoadError(self.path, f"unsupported GGUF version {self.version} (2 and 3 are supported)")
        n_tensors, n_kv = cur.u64(), cur.u64()
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise cur.fail(f"implausible counts: {n_tensors} tensors, {n_kv} metadata keys")
        for _ in range(n_kv):
            key = cur.string()
            self.metadata[key] = cur.value(cur.u32())
        arch = str(self.metadata.get("general.architecture", ""))
        file_type = self.metadata.get("general.file_type")
        raw: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.u32()
            if not 1 <= n_dims <= MAX_DIMS:
                raise cur.fail(f"tensor {name!r} has {n_dims} dimensions")
            dims = tuple(cur.u64() for _ in range(n_dims))
            if any(d == 0 or d > (1 << 40) for d in dims):
                raise cur.fail(f"tensor {name!r} has implausible dimensions {dims}")
            raw.append((name, dims, cur.u32(), cur.u64()))
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ModelLoadError(self.path, f"general.alignment {alignment!r} is not a power of two")
        self.data_offset = (cur.pos + alignment - 1) // alignment * alignment
        for name, dims, type_id, rel in raw:
            if name in self.tensors:
                raise ModelLoadError(self.path, f"tensor {name!r} appears twice")
            type_name = tensor_type_name(type_id, arch, file_type if isinstance(file_type, int) else None)
            n_el = 1
            for d in dims:
                n_el *= d
            nbytes = tensor_nbytes(type_name, n_el, dims[0])
            if nbytes is None:
                nbytes = 0  # sized lazily: an unusable type only fails if the model needs the tensor
            start = self.data_offset + rel
            if rel % alignment:
                raise ModelLoadError(self.path, f"tensor {name!r} data offset {rel} is not aligned to {alignment}")
            if start + nbytes > len(self.data):
                raise ModelLoadError(
                    self.path,
                    f"file is truncated: tensor {name!r} needs bytes"
                    f" {start}..{start + nbytes}"
                    f" but the file has {len(self.data)}",
                )
            self.tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_id, type_name, start, nbytes)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def tensor_data(self, name: str) -> np.ndarray:
        """The raw bytes of a tensor (uint8, read-only, zero-copy)."""
        info = self.tensors[name]
        if info.nbytes == 0:
            raise ModelLoadError(
                self.path,
                f"tensor {name!r} has type {info.type_name} (id {info.type_id}), which this engine cannot read",
            )
        return self.data[info.offset : info.offset + info.nbytes]

    def close(self) -> None:
        self.data = np.empty(0, np.uint8)
        try:
            self._mmap.close()
        except BufferError:
            pass  # views handed out (native matrices) still use it; it closes when they are gone
