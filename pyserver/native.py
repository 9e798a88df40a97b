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

# The file packings, and I2_S4: the layout the engine repacks 2-bit and TQ1_0 projections into for decode.
FORMATS = ("TQ2_0", "TQ1_0", "I2_S", "I2_S4")

__all__ = [
    "FORMATS",
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
