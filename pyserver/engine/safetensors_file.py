"""A zero-copy safetensors reader over a memory map (bf16 included, which numpy lacks and the `safetensors`
package's numpy API refuses). Malformed headers become `ModelLoadError`s naming the file."""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from pyserver.engine.errors import ModelLoadError

_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "F64": np.float64,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "U16": np.uint16,
    "U32": np.uint32,
    "BOOL": np.bool_,
}
MAX_HEADER = 100 << 20


class SafetensorsFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                size = path.stat().st_size
                if size < 8:
                    raise ModelLoadError(path, f"file is truncated ({size} bytes)")
                self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ModelLoadError(path, f"cannot open: {exc.strerror or exc}") from exc
        (n,) = struct.unpack("<Q", self._mmap[:8])
        if n > MAX_HEADER or 8 + n > size:
            raise ModelLoadError(path, f"corrupt safetensors header (length {n}, file {size} bytes)")
        try:
            header = json.loads(self._mmap[8 : 8 + n])
        except ValueError as exc:
            raise ModelLoadError(path, f"corrupt safetensors header: {exc}") from exc
        if not isinstance(header, dict):
            raise ModelLoadError(path, "corrupt safetensors header: not a JSON object")
        self.metadata = header.pop("__metadata__", {}) or {}
        self._data = np.frombuffer(self._mmap, dtype=np.uint8)
        self.entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        base = 8 + n
        for name, e in header.items():
            try:
                dtype, shape, (start, stop) = e["dtype"], tuple(int(d) for d in e["shape"]), e["data_offsets"]
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(path, f"corrupt entry for tensor {name!r}") from exc
            if dtype not in _DTYPES:
                raise ModelLoadError(path, f"tensor {name!r} has unsupported dtype {dtype}")
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if stop - start != count * np.dtype(_DTYPES[dtype]).itemsize or start < 0 or base + stop > size:
                raise ModelLoadError(
                    path,
                    f"tensor {name!r}: data offsets {start}..{stop} do not fit"
                    f" its shape {list(shape)} or the file (truncated?)",
                )
            self.entries[name] = (dtype, shape, base + start, base + stop)

    def dtype(self, name: str) -> str:
        return self.entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def array(self, name: str) -> np.ndarray:
        """The stored array, zero-copy (BF16 as raw uint16)."""
        dtype, shape, a, b = self.entries[name]
        return self._data[a:b].view(_DTYPES[dtype]).reshape(shape)

    def float32(self, name: str) -> np.ndarray:
        arr = self.array(name)
        if self.dtype(name) == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(np.float32)
