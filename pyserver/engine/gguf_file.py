"""A GGUF reader: header, metadata and tensor directory, every field checked; tensor data read on request.

We parse the container ourselves (rather than through `gguf.GGUFReader`) because real ternary files carry tensor
types that reader cannot size (bitnet.cpp's I2_S) and because every malformed byte must become a `ModelLoadError`
naming the file and the field, never a crash, a hang or a huge allocation: every count and length is checked against
what the file can still hold before anything is allocated, arrays may nest only `MAX_NESTING` deep, tensors must lie
inside the file, aligned and without overlapping each other. The `gguf` package still provides the type catalogue
and is the independent reference the tests compare this reader with.

Why plain reads into memory, not a memory map: the model must survive its file changing underneath. A mapped file
that is truncated or rewritten while mapped turns the next touch of a vanished page into SIGBUS, which kills the
process (Python cannot catch it). `Model` copies (and repacks) every projection into its own weight memory at load,
but the token embedding (and the output table, read again to rescore the head's top candidates) were used straight
from the mapping on every token. Reading tensors with plain reads into memory the engine owns means nothing the model
uses after load lives in the file, and no descriptor or mapping is held: the file can be truncated, rewritten or
deleted while the server runs. (Copying only the tables out of a mapping would do that too, but a file cut short
*during* the load would still SIGBUS; a read is a short read and a `ModelLoadError`.) Each read checks the file is
still the one whose header was parsed (device, inode, size, mtime), so a file replaced mid-load is refused rather than
mixed with the old one. Measured (issue 20, 2-core VM, median of 8): a random 2B4T-shaped TQ2_0 file (1.2 GB) loads in
4.7 s instead of 3.5 s, with a peak resident size of 1642 MiB instead of 2037 and 1501 MiB after load instead of 1912
(all of it anonymous now: the embedding is no longer reclaimable page cache); the shipped model: 93 ms instead of 86.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from pyserver.engine.errors import ModelLoadError, short_repr

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# bitnet.cpp's private type ids. Mainline reuses 36-39 (retired, then MXFP4), so only files whose architecture or file
# type says bitnet.cpp get this meaning (see `tensor_type_name`).
BITNET_CPP_I2_S = 36
BITNET_CPP_FILE_TYPE_I2_S = 40
BITNET_CPP_ARCHS = ("bitnet-b1.58",)
# GGUF type 42, Q2_0, has two layouts under one id: mainline llama.cpp's blocks of 64 weights (an FP16 scale, then 16
# bytes of 2-bit codes: 18 bytes) and PrismML's original Ternary-Bonsai files' blocks of 128 (34 bytes). The gguf
# package knows neither; this reader tells them apart by the bytes a tensor has before the next one (see
# `_q2_0_layout`) and names them "Q2_0" and "Q2_0_128", the native packings' names.
Q2_0_TYPE = 42
Q2_0_LAYOUTS = {"Q2_0": (64, 18), "Q2_0_128": (128, 34)}  # name -> (weights per block, bytes per block)

# Limits that keep a hostile header from allocating unbounded memory before the data is even looked at.
MAX_STRING = 1 << 24
MAX_ARRAY = 1 << 26
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_DIMS = 4
MAX_DIM = 1 << 40
MAX_ELEMENTS = 1 << 48
MAX_NESTING = 4  # arrays of arrays: no known file nests at all (llama.cpp refuses nesting)
# The fewest bytes an entry can take: a metadata key/value (empty key, type, a 1-byte value) and a tensor info
# (empty name, one dimension, type, offset). Counts are checked against these before anything is read.
MIN_KV_BYTES = 8 + 4 + 1
MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8
_HEADER_CHUNK = 1 << 16

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
_MIN_ITEM_BYTES = {**{t: np.dtype(d).itemsize for t, d in _NUMPY_ARRAY.items()}, _STRING: 8, _ARRAY: 12}
_ITEM_NAMES = {_STRING: "strings", _ARRAY: "arrays"}


# ---- model files: regular files only, read with plain reads, checked to be unchanged ------------------------------


@dataclass(frozen=True)
class FileIdentity:
    """What says a file is still the one whose header was parsed."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISDIR: "a directory", stat.S_ISSOCK: "a socket"}
    kinds.update({stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"})
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


def open_model_file(path: Path) -> tuple[io.BufferedReader, FileIdentity]:
    """Opens a model file for reading. Only regular files: a FIFO would block the open (or never end), a device
    never ends. Non-blocking open, so a FIFO swapped in after the check still cannot block; checked again on the
    open descriptor."""
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise ModelLoadError(path, f"not a regular file ({_file_kind(mode)}): model files must be files on disk")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ModelLoadError(path, f"cannot open: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ModelLoadError(path, f"not a regular file ({_file_kind(st.st_mode)}): model files must be files on disk")
    return os.fdopen(fd, "rb"), FileIdentity.of(st)


def changed_error(path: Path) -> ModelLoadError:
    return ModelLoadError(path, "the file changed while it was being loaded (truncated or rewritten): load it again")


def _read_buffer(nbytes: int) -> np.ndarray:
    """Memory for a tensor read, 64-byte aligned, in plain pages: huge-page-advised memory (native.alloc_weights)
    was measured slower (a 2B4T load took 4.45 s against 3.85 s: the read faults fewer pages, the load as a whole
    loses more)."""
    raw = np.empty(nbytes + 63, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes]


def read_file_range(path: Path, identity: FileIdentity, offset: int, nbytes: int) -> np.ndarray:
    """Bytes [offset, offset + nbytes) of the file, as a read-only uint8 array in memory this process owns (64-byte
    aligned, as the mapping's pages were). The file must still be the one `identity` describes."""
    f, now = open_model_file(path)
    with f:
        if now != identity:
            raise changed_error(path)
        if offset + nbytes > identity.size:
            raise ModelLoadError(path, f"bytes {offset}..{offset + nbytes} are beyond the file ({identity.size} bytes)")
        out = _read_buffer(nbytes)
        f.seek(offset)
        view, done = out.data, 0
        while done < nbytes:
            n = f.readinto(view[done:])
            if not n:  # shorter than its size said a moment ago
                raise changed_error(path)
            done += n
    out.flags.writeable = False
    return out


# ---- the header ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order: outermost first (GGUF stores innermost first)
    type_id: int
    type_name: str
    offset: int  # absolute, in the file
    nbytes: int  # 0: a type this engine cannot size (it fails only if the model needs the tensor)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class _Cursor:
    """Reads the header front to back from the open file: every length is checked against what the file still
    holds before it is read, and the header is read in growing chunks (not byte by byte, not all of a large file)."""

    def __init__(self, f: io.BufferedReader, size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path
        self.buf = bytearray()
        self.pos = 0
        self.key = ""  # the metadata key being read, for messages

    def fail(self, problem: str) -> ModelLoadError:
        where = f"metadata {self.key!r}: " if self.key else ""
        return ModelLoadError(self.path, f"corrupt GGUF header at byte {self.pos}: {where}{problem}")

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def _fill(self, n: int) -> None:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise ModelLoadError(
                self.path,
                f"file is truncated: the header needs {n} more bytes at offset {self.pos}"
                f" but the file has {self.size} bytes",
            )
        while len(self.buf) < end:
            want = min(max(end - len(self.buf), len(self.buf), _HEADER_CHUNK), self.size - len(self.buf))
            chunk = self.f.read(want)
            if not chunk:
                raise changed_error(self.path)
            self.buf += chunk

    def take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def scalar(self, fmt: str, size: int) -> Any:
        self._fill(size)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        return int(self.scalar("<I", 4))

    def u64(self) -> int:
        return int(self.scalar("<Q", 8))

    def string(self) -> str:
        n = self.u64()
        if n > MAX_STRING:
            raise self.fail(f"string length {n} is implausible")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Token pieces of some vocabularies are not valid UTF-8 on their own; keep them byte-exact.
            return raw.decode("utf-8", errors="surrogateescape")

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(*_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            return self.array(depth + 1)
        raise self.fail(f"unknown metadata value type {vtype}")

    def array(self, depth: int) -> Any:
        if depth > MAX_NESTING:
            raise self.fail(f"arrays nested deeper than {MAX_NESTING} levels")
        etype, count = self.u32(), self.u64()
        if etype not in _MIN_ITEM_BYTES:
            raise self.fail(f"unknown array element type {etype}")
        if count > MAX_ARRAY:
            raise self.fail(f"array of {count} items is implausible")
        need = count * _MIN_ITEM_BYTES[etype]
        if need > self.remaining:
            what = _ITEM_NAMES.get(etype, "items")
            raise self.fail(f"array of {count} {what} needs at least {need} bytes, the file has {self.remaining} left")
        if etype in _NUMPY_ARRAY:
            return np.frombuffer(self.take(need), dtype=np.dtype(_NUMPY_ARRAY[etype])).copy()
        if etype == _STRING:
            return [self.string() for _ in range(count)]
        return [self.array(depth + 1) for _ in range(count)]


def tensor_type_name(type_id: int, arch: str, file_type: int | None) -> str:
    """The GGML type name for a tensor type id, given what the file says about itself."""
    if type_id == BITNET_CPP_I2_S and (arch in BITNET_CPP_ARCHS or file_type == BITNET_CPP_FILE_TYPE_I2_S):
        return "I2_S"
    if type_id == Q2_0_TYPE:
        return "Q2_0"  # the block-of-64 layout; `GGUFFile` renames a PrismML file's tensors Q2_0_128
    try:
        return GGMLQuantizationType(type_id).name
    except ValueError:
        return f"unknown type {type_id}"


def tensor_nbytes(type_name: str, n_elements: int, inner: int) -> int | None:
    """Bytes a tensor occupies, or None when the type is unknown or the row does not fill whole blocks."""
    if type_name == "I2_S":
        return n_elements // 4 + 32 if n_elements % 4 == 0 else None
    if type_name in Q2_0_LAYOUTS:
        block, size = Q2_0_LAYOUTS[type_name]
        return n_elements // block * size if inner % block == 0 else None
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except (KeyError, ValueError):
        return None
    if inner % block:
        return None
    return n_elements // block * size


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_RawTensor = tuple[str, tuple[int, ...], int, int]  # name, GGUF-order dims, type id, offset in the data section


class GGUFFile:
    """A GGUF file's header, checked. `metadata` holds every key; `tensors` maps names to `TensorInfo`;
    `tensor_data(name)` reads a tensor's bytes into memory. No descriptor or mapping is held between calls."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        f, self.identity = open_model_file(self.path)
        with f:
            if self.identity.size < 24:
                raise ModelLoadError(
                    self.path, f"file is truncated ({self.identity.size} bytes): not even a GGUF header fits"
                )
            self.metadata: dict[str, Any] = {}
            self.tensors: dict[str, TensorInfo] = {}
            self._parse(_Cursor(f, self.identity.size, self.path))

    @property
    def size(self) -> int:
        return self.identity.size

    def _parse(self, cur: _Cursor) -> None:
        if cur.take(4) != GGUF_MAGIC:
            raise ModelLoadError(self.path, "bad magic: not a GGUF file")
        self.version = cur.u32()
        if self.version not in (2, 3):
            raise ModelLoadError(self.path, f"unsupported GGUF version {self.version} (2 and 3 are supported)")
        n_tensors, n_kv = cur.u64(), cur.u64()
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise cur.fail(f"implausible counts: {n_tensors} tensors, {n_kv} metadata keys")
        need = n_tensors * MIN_TENSOR_INFO_BYTES + n_kv * MIN_KV_BYTES
        if need > cur.remaining:
            raise cur.fail(
                f"{n_tensors} tensors and {n_kv} metadata keys need at least {need} bytes,"
                f" more than the file can hold ({cur.remaining} left)"
            )
        self._read_metadata(cur, n_kv)
        raw = self._read_tensor_infos(cur, n_tensors)
        alignment = self._alignment()
        self.data_offset = (cur.pos + alignment - 1) // alignment * alignment
        self._place_tensors(raw, alignment)

    def _read_metadata(self, cur: _Cursor, n_kv: int) -> None:
        for _ in range(n_kv):
            key = cur.string()
            if key in self.metadata:
                raise cur.fail(f"metadata key {key!r} appears twice")
            cur.key = key
            self.metadata[key] = cur.value(cur.u32())
            cur.key = ""
        self._check_general_keys()

    def _check_general_keys(self) -> None:
        """The keys this reader itself relies on (the loaders check the model's own keys)."""
        checks: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
            ("general.architecture", "a string", _is_str),
            ("general.file_type", "an integer", _is_int),
            ("general.alignment", "an integer", _is_int),
        )
        for key, kind, ok in checks:
            if key in self.metadata and not ok(self.metadata[key]):
                raise ModelLoadError(
                    self.path, f"metadata {key!r} must be {kind}, got {short_repr(self.metadata[key])}"
                )

    def _read_tensor_infos(self, cur: _Cursor, n_tensors: int) -> list[_RawTensor]:
        raw: list[_RawTensor] = []
        names: set[str] = set()
        for _ in range(n_tensors):
            name = cur.string()
            if name in names:
                raise ModelLoadError(self.path, f"tensor {name!r} appears twice")
            names.add(name)
            n_dims = cur.u32()
            if not 1 <= n_dims <= MAX_DIMS:
                raise cur.fail(f"tensor {name!r} has {n_dims} dimensions")
            dims = tuple(cur.u64() for _ in range(n_dims))
            n_elements = math.prod(dims)
            if any(d == 0 or d > MAX_DIM for d in dims) or n_elements > MAX_ELEMENTS:
                raise cur.fail(f"tensor {name!r} has implausible dimensions {dims}")
            raw.append((name, dims, cur.u32(), cur.u64()))
        return raw

    def _alignment(self) -> int:
        alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        if alignment <= 0 or alignment & (alignment - 1):
            raise ModelLoadError(self.path, f"general.alignment {alignment!r} is not a power of two")
        return alignment

    def _place_tensors(self, raw: list[_RawTensor], alignment: int) -> None:
        """Sizes each tensor and checks it lies inside the file, aligned, overlapping no other."""
        arch = self.architecture
        file_type = self.metadata.get("general.file_type")
        q2_0 = self._q2_0_layout(raw)
        for name, dims, type_id, rel in raw:
            type_name = tensor_type_name(type_id, arch, int(file_type) if file_type is not None else None)
            if type_id == Q2_0_TYPE:
                type_name = q2_0
            n_el = math.prod(dims)
            nbytes = tensor_nbytes(type_name, n_el, dims[0]) or 0
            start = self.data_offset + rel
            if rel % alignment:
                raise ModelLoadError(self.path, f"tensor {name!r} data offset {rel} is not aligned to {alignment}")
            if start + nbytes > self.size:
                raise ModelLoadError(
                    self.path,
                    f"file is truncated: tensor {name!r} needs bytes {start}..{start + nbytes}"
                    f" but the file has {self.size}",
                )
            self.tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_id, type_name, start, nbytes)
        self._check_no_overlap()

    def _q2_0_layout(self, raw: list[_RawTensor]) -> str:
        """Which Q2_0 layout the file's type-42 tensors use: blocks of 64 (18 bytes, 0.281 bytes a weight) unless
        some type-42 tensor followed by another tensor has less room than that before it, which PrismML's blocks
        of 128 (34 bytes, 0.266 a weight) fit. (Tensors lie in offset order, padded only to the alignment, which is
        far less than the 1/64 byte a weight between the two.) Only a file whose only type-42 tensor is its last
        one is judged by the room to the end of the file. One layout for the whole file: a g64 file cut short in
        its last tensor is then reported truncated, not read as g128."""
        ordered = sorted(raw, key=lambda r: r[3])
        ends = [r[3] for r in ordered[1:]] + [self.size - self.data_offset]
        room = [
            (math.prod(dims), dims[0], end - rel) for (_, dims, t, rel), end in zip(ordered, ends) if t == Q2_0_TYPE
        ]
        if not room:
            return "Q2_0"
        judged = room[:-1] if len(room) > 1 and ordered[-1][2] == Q2_0_TYPE else room
        for n, inner, space in judged:
            if inner % 64 == 0 and space < n // 64 * 18 and inner % 128 == 0 and space >= n // 128 * 34:
                return "Q2_0_128"
        return "Q2_0"

    def _check_no_overlap(self) -> None:
        placed = sorted((t for t in self.tensors.values() if t.nbytes), key=lambda t: (t.offset, t.nbytes))
        for a, b in zip(placed, placed[1:]):
            if a.offset + a.nbytes > b.offset:
                raise ModelLoadError(
                    self.path,
                    f"tensors {a.name!r} (bytes {a.offset}..{a.offset + a.nbytes}) and {b.name!r}"
                    f" (bytes {b.offset}..{b.offset + b.nbytes}) overlap",
                )

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def tensor_data(self, name: str) -> np.ndarray:
        """The raw bytes of a tensor (uint8, read-only), read from the file into memory this process owns."""
        info = self.tensors[name]
        if info.nbytes == 0:
            raise ModelLoadError(
                self.path,
                f"tensor {name!r} has type {info.type_name} (id {info.type_id}), which this engine cannot read",
            )
        return read_file_range(self.path, self.identity, info.offset, info.nbytes)
