"""Ryzanstein native ternary kernels: the compiled module's signatures (native/src/bindings.cpp).

Arrays are taken in place, never converted: an array argument must have exactly the dtype written here and be
C-contiguous, or the call raises TypeError / ValueError. tests/native/test_stub.py checks this file against the
compiled module.
"""

from typing import Any, TypeAlias, TypedDict

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer

# Any object with the buffer protocol, read as bytes (numpy's stubs declare ndarray a Buffer from Python 3.12 only).
_Bytes: TypeAlias = Buffer | NDArray[Any]

class _CpuInfo(TypedDict):
    features: dict[str, bool]
    detected: str
    active: str
    auto: str
    self_check: dict[str, str]
    threads: int

def cpu_info() -> _CpuInfo:
    """CPU features, dispatch levels and the SIMD self-check results."""

def available_isas() -> list[str]:
    """ISA levels this CPU can run, lowest first."""

def set_isa_cap(isa: str) -> None:
    """Caps automatic dispatch at this level (also settable with RYZ_MAX_ISA)."""

def set_num_threads(n: int) -> None: ...
def num_threads() -> int: ...
def measure_read_bandwidth(bytes: int = 536870912, threads: int = 1, reps: int = 5) -> float:
    """Best memory read rate in GB/s over `reps` passes of a `bytes` buffer."""

def alloc_weights(nbytes: int) -> NDArray[np.uint8]:
    """A zeroed-on-demand uint8 array in huge-page-advised memory, for packed weights."""

# ---- ternary packings and matrices

def packed_nbytes(fmt: str, rows: int, cols: int) -> int: ...
def scale_count(fmt: str, rows: int, cols: int) -> int: ...
def pack(fmt: str, weights: NDArray[np.int8], scales: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Packs an int8 {-1,0,1} matrix. scales: one per block or group (TQ1_0/TQ2_0: 256, Q2_0: 64, Q2_0_128: 128,
    I2_R16_G<n>: n; shape [rows, cols/group]) or one (I2_S, I2_S4, I2_R16)."""

def r16_target(fmt: str, data: _Bytes, rows: int, cols: int) -> str:
    """The outer-product layout the tensor repacks into: I2_R16 when its blocks share one nonzero scale, else
    I2_R16_G<its group>."""

def repack_r16(
    fmt: str, data: _Bytes, rows: int, cols: int, out: NDArray[np.uint8]
) -> tuple[str, tuple[int, int, int]]:
    """Writes the tensor into out (packed_nbytes(r16_target(...)) bytes) in that layout; returns (layout, (-1, 0,
    +1 counts))."""

def repack_i2s4(fmt: str, data: _Bytes, rows: int, cols: int, out: NDArray[np.uint8]) -> tuple[int, int, int] | None:
    """Writes the tensor into out as I2_S4 (the decode layout) when its blocks share one nonzero scale and returns
    its weights' counts (-1, 0, +1); None (out untouched) when the scales differ."""

def trit_counts(fmt: str, data: _Bytes, rows: int, cols: int) -> tuple[int, int, int]:
    """The number of weights -1, 0 and +1 in a packed tensor."""

def unpack(fmt: str, data: _Bytes, rows: int, cols: int) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Returns (int8 weights [rows, cols], float32 scales)."""

def quantize_activations(
    x: NDArray[np.float32], block: int = 0, isa: str = "auto"
) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Absmax int8 quantization. block 0: per token, returns (q, scale) with x ~= q / scale; else per block of
    `block` values, returns (q, d [n, cols/block]) with x ~= q * d."""

class TernaryMatrix:
    def __init__(self, fmt: str, data: _Bytes, rows: int, cols: int) -> None:
        """A packed ternary matrix used in place from `data` (any byte buffer: numpy, bytes, mmap)."""

    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def fmt(self) -> str: ...
    @property
    def nbytes(self) -> int: ...
    def gemv(
        self, x: NDArray[np.int8], isa: str = "auto", scales: NDArray[np.float32] | None = None, block: int = 0
    ) -> NDArray[np.float32]:
        """y = W x for int8 x (weight scales applied; with block, x's per-block scales [cols/block] too)."""

    def gemm(
        self, x: NDArray[np.int8], isa: str = "auto", scales: NDArray[np.float32] | None = None, block: int = 0
    ) -> NDArray[np.float32]:
        """Y = X W^T for int8 X [n, cols] (weight scales applied; with block, X's per-block scales [n, cols/block]
        too)."""

# ---- the model

class CancelFlag:
    """A flag the forward pass checks between layers."""

    def __init__(self) -> None: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    @property
    def is_set(self) -> bool: ...

class Model:
    """The native transformer; every weight buffer is borrowed, never copied."""

    def __init__(self, config: dict[str, object]) -> None: ...
    def set_linear(
        self, layer: int, name: str, fmt: str, data: _Bytes, rows: int, cols: int, scale: float = 1.0
    ) -> None: ...
    def set_norm(self, layer: int, name: str, weight: NDArray[np.float32]) -> None:
        """layer -1 with name 'output_norm' for the final norm."""

    def set_head_int8(
        self,
        rows: NDArray[np.int8],
        scales: NDArray[np.float32],
        exact: _Bytes | None = None,
        exact_type: str = "F16",
        rescore_k: int = 0,
    ) -> None:
        """Rows int8 in [-127, 127], logit = scale * (row . q) / act_scale; the top rescore_k logits per token are
        recomputed from `exact` (the stored [vocab, n_embd] table, raw bytes of type exact_type)."""

    def set_head_int4(
        self,
        rows: NDArray[np.uint8],
        scales: NDArray[np.float32],
        exact: _Bytes | None = None,
        exact_type: str = "F16",
        rescore_k: int = 0,
    ) -> None:
        """Rows from quantize_weight_rows_i4 ([vocab, n_embd / 2] bytes); see set_head_int8 for the rest."""

    def set_head_f32(self, rows: NDArray[np.float32]) -> None: ...
    def set_head_ternary(self, fmt: str, data: _Bytes, rows: int, cols: int) -> None:
        """A ternary output head [vocab, n_embd] in any packing, served by the projections' kernels."""

    def check_complete(self) -> None: ...
    @property
    def isa(self) -> str: ...
    def forward(
        self, cache: KvCache, x: NDArray[np.float32], n_logits: int = 1, cancel: CancelFlag | None = None
    ) -> NDArray[np.float32] | None:
        """Appends tokens (embeddings x [n, n_embd]) to the cache; returns logits of the last n_logits tokens, or
        None if cancelled (the cache is then unchanged)."""

    def head(self, h: NDArray[np.float32]) -> NDArray[np.float32]:
        """The output head alone on normed hidden states."""

class KvCache:
    """Keys and values of one sequence."""

    def __init__(self, model: Model, n_ctx: int) -> None: ...
    @property
    def n_past(self) -> int: ...
    @n_past.setter
    def n_past(self, n: int) -> None: ...
    @property
    def n_ctx(self) -> int: ...
    @property
    def nbytes(self) -> int: ...

# ---- output-head rows

def quantize_weight_rows(w: NDArray[np.float32]) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Per-row symmetric int8: returns (q [rows, cols] in [-127, 127], scales [rows])."""

def quantize_weight_rows_i4(w: NDArray[np.float32]) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Per-row symmetric 4-bit: returns (packed [rows, cols / 2] uint8, scales [rows])."""

# ---- Hamming search

def hamming_topk(
    signatures: NDArray[np.uint8],
    query: NDArray[np.uint8],
    k: int,
    rows: NDArray[np.int64] | None = None,
    isa: str = "auto",
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """The k signatures nearest to query by Hamming distance, among `rows` (all when None): (rows, distances),
    nearest first, ties by row."""

def hamming_nearest(
    signatures: NDArray[np.uint8], centroids: NDArray[np.uint8], isa: str = "auto"
) -> tuple[NDArray[np.int32], NDArray[np.uint16]]:
    """For each signature, the nearest centroid by Hamming distance: (labels int32, distances uint16)."""
