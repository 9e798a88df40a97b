"""Bad input raises clear Python exceptions; buffers are used in place."""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from pyserver import native
from tests.support import reference_kernels as ref


def packed(fmt: str = "TQ2_0", rows: int = 4, cols: int = 512) -> np.ndarray:
    w = np.ones((rows, cols), dtype=np.int8)
    n = native.scale_count(fmt, rows, cols)
    s = np.ones(n, np.float32) if fmt in ref.ONE_SCALE else np.ones((rows, cols // 256), np.float32)
    return native.pack(fmt, w, s)


def test_truncated_buffer() -> None:
    data = packed()
    with pytest.raises(ValueError, match=r"TQ2_0 tensor 4x512 needs 528 bytes, buffer has 527 \(truncated\?\)"):
        native.TernaryMatrix("TQ2_0", data[:-1], 4, 512)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="not a multiple of 256"):
        native.TernaryMatrix("TQ1_0", packed(), 4, 500)
    with pytest.raises(ValueError, match="positive"):
        native.TernaryMatrix("I2_S", packed("I2_S"), 0, 128)
    m = native.TernaryMatrix("TQ2_0", packed(), 4, 512)
    with pytest.raises(ValueError, match="activations have 511 values, matrix has 512 columns"):
        m.gemv(np.zeros(511, np.int8))
    with pytest.raises(ValueError, match="activations have 256 columns"):
        m.gemm(np.zeros((3, 256), np.int8))
    with pytest.raises(ValueError, match="expected 2 dimensions"):
        m.gemm(np.zeros(512, np.int8))


def test_wrong_dtypes_and_layouts() -> None:
    m = native.TernaryMatrix("TQ2_0", packed(), 4, 512)
    with pytest.raises(TypeError, match="expected dtype int8, got float32"):
        m.gemv(np.zeros(512, np.float32))
    with pytest.raises(TypeError, match="expected a numpy array, got list"):
        m.gemv([0] * 512)
    with pytest.raises(ValueError, match="C-contiguous"):
        m.gemm(np.zeros((512, 3), np.int8).T)
    with pytest.raises(TypeError, match="byte buffer"):
        native.TernaryMatrix("TQ2_0", np.zeros(200, np.float32), 4, 512)
    with pytest.raises(TypeError, match="expected dtype int8"):
        native.pack("TQ2_0", np.zeros((1, 256), np.int16), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="needs 2 scales"):
        native.pack("TQ2_0", np.zeros((1, 512), np.int8), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="misaligned"):
        raw = np.zeros(4 * 513 + 1, np.uint8)[1:].view(np.float32)
        native.quantize_activations(raw)


def test_unknown_format_and_isa() -> None:
    with pytest.raises(ValueError, match="unknown ternary packing 'Q4_0'"):
        native.TernaryMatrix("Q4_0", packed(), 4, 512)
    m = native.TernaryMatrix("TQ2_0", packed(), 4, 512)
    with pytest.raises(ValueError, match="unknown ISA level 'sse9'"):
        m.gemv(np.zeros(512, np.int8), "sse9")
    if "avx512" not in native.available_isas():
        with pytest.raises(RuntimeError, match="avx512 path was requested but this CPU supports at most"):
            m.gemv(np.zeros(512, np.int8), "avx512")
        with pytest.raises(RuntimeError, match="cannot run the avx512 path"):
            native.set_isa_cap("avx512")


@pytest.mark.parametrize("fmt", native.FORMATS)
def test_misaligned_packed_buffer_is_used_correctly(fmt: str, rng: np.random.Generator) -> None:
    """GGUF tensors need not be aligned: the kernels use unaligned loads."""
    rows, cols = 9, 768 if fmt not in ref.ONE_SCALE else 384
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    n = native.scale_count(fmt, rows, cols)
    s = np.ones(n, np.float32) if fmt in ref.ONE_SCALE else np.ones((rows, cols // ref.GROUP[fmt]), np.float32)
    data = native.pack(fmt, w, s)
    shifted = np.zeros(data.nbytes + 3, np.uint8)
    shifted[3:] = data
    x = rng.integers(-128, 128, size=cols, dtype=np.int8)
    expected = (w.astype(np.int64) @ x).astype(np.float32)
    for isa in native.available_isas():
        m = native.TernaryMatrix(fmt, shifted[3:], rows, cols)
        np.testing.assert_array_equal(m.gemv(x, isa), expected)


def test_mmap_buffer_used_in_place(tmp_path) -> None:
    data = packed("I2_S", 4, 256)
    path = tmp_path / "w.bin"
    path.write_bytes(b"\0" * 16 + data.tobytes())
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        m = native.TernaryMatrix("I2_S", memoryview(mm)[16:], 4, 256)
        np.testing.assert_array_equal(m.gemv(np.ones(256, np.int8)), np.full(4, 256.0, np.float32))
        with pytest.raises(BufferError):
            mm.close()  # the matrix holds the buffer: the mapping cannot vanish under it
        del m


def test_matrix_keeps_its_buffer_alive(rng: np.random.Generator) -> None:
    w = rng.integers(-1, 2, size=(3, 256), dtype=np.int8)
    m = native.TernaryMatrix("TQ2_0", native.pack("TQ2_0", w, np.ones((3, 1), np.float32)), 3, 256)
    x = rng.integers(-128, 128, size=256, dtype=np.int8)
    np.testing.assert_array_equal(m.gemv(x), (w.astype(np.int64) @ x).astype(np.float32))
