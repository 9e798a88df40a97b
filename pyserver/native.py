"""The compiled engine module, with an actionable error when it is missing."""

from __future__ import annotations

try:
    from pyserver import _native
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "the native module pyserver._native is not built; run `make install` "
        "(or `pip install -e .`) from the repository root"
    ) from exc

TernaryMatrix = _native.TernaryMatrix
pack = _native.pack
unpack = _native.unpack
repack_i2s4 = _native.repack_i2s4
r16_target = _native.r16_target
repack_r16 = _native.repack_r16
trit_counts = _native.trit_counts
packed_nbytes = _native.packed_nbytes
scale_count = _native.scale_count
quantize_activations = _native.quantize_activations
cpu_info = _native.cpu_info
available_isas = _native.available_isas
set_isa_cap = _native.set_isa_cap
set_num_threads = _native.set_num_threads
num_threads = _native.num_threads
measure_read_bandwidth = _native.measure_read_bandwidth
alloc_weights = _native.alloc_weights
Model = _native.Model
KvCache = _native.KvCache
CancelFlag = _native.CancelFlag
quantize_weight_rows = _native.quantize_weight_rows
quantize_weight_rows_i4 = _native.quantize_weight_rows_i4
hamming_topk = _native.hamming_topk
hamming_nearest = _native.hamming_nearest

# The file packings (TQ2_0, TQ1_0, I2_S; Q2_0 and Q2_0_128, llama.cpp's and PrismML's group-scaled Q2_0), and the
# layouts the engine repacks into: I2_S4 (rows in fours, one scale) and I2_R16 (16 rows interleaved for the
# outer-product kernels; one scale, or one f16 scale per row and group of 64 / 128 / 256 columns).
FILE_FORMATS = ("TQ2_0", "TQ1_0", "I2_S", "Q2_0", "Q2_0_128")
LAYOUT_FORMATS = ("I2_S4", "I2_R16", "I2_R16_G64", "I2_R16_G128", "I2_R16_G256")
FORMATS = FILE_FORMATS + LAYOUT_FORMATS
# File packings with SIMD GEMVs of their own (Q2_0 files have none: models repack them).
SIMD_GEMV_FORMATS = ("TQ2_0", "TQ1_0", "I2_S") + LAYOUT_FORMATS
# Columns that share one scale; absent: one scale per tensor.
SCALE_GROUP = {
    "TQ2_0": 256,
    "TQ1_0": 256,
    "Q2_0": 64,
    "Q2_0_128": 128,
    "I2_R16_G64": 64,
    "I2_R16_G128": 128,
    "I2_R16_G256": 256,
}

__all__ = [
    "FILE_FORMATS",
    "FORMATS",
    "LAYOUT_FORMATS",
    "SCALE_GROUP",
    "SIMD_GEMV_FORMATS",
    "r16_target",
    "repack_r16",
    "CancelFlag",
    "KvCache",
    "Model",
    "hamming_nearest",
    "hamming_topk",
    "quantize_weight_rows",
    "quantize_weight_rows_i4",
    "alloc_weights",
    "TernaryMatrix",
    "available_isas",
    "cpu_info",
    "measure_read_bandwidth",
    "num_threads",
    "pack",
    "packed_nbytes",
    "quantize_activations",
    "repack_i2s4",
    "trit_counts",
    "scale_count",
    "set_isa_cap",
    "set_num_threads",
    "unpack",
]
