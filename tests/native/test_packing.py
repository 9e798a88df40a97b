"""Packings: native pack/unpack against the numpy mirror and against gguf's own quantizer."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import quants

from pyserver import native
from tests.support import reference_kernels as ref

SHAPES = {
    "TQ2_0": [(1, 256), (3, 512), (7, 1280)],
    "TQ1_0": [(1, 256), (3, 512), (7, 1280)],
    "I2_S": [(1, 128), (3, 384), (5, 640)],
    "I2_S4": [(1, 128), (3, 384), (5, 640), (8, 256)],
    "Q2_0": [(1, 64), (3, 192), (7, 1280)],
    "Q2_0_128": [(1, 128), (3, 384), (7, 1280)],
    "I2_R16": [(1, 64), (3, 192), (17, 640), (32, 128)],
    "I2_R16_G64": [(1, 64), (3, 192), (17, 640)],
    "I2_R16_G128": [(1, 128), (3, 384), (17, 640)],
    "I2_R16_G256": [(1, 256), (3, 512), (17, 1280)],
}


def random_case(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    n = native.scale_count(fmt, rows, cols)
    scales = rng.uniform(0.01, 2.0, size=n).astype(np.float32)
    if fmt not in ref.ONE_SCALE:
        scales = scales.reshape(rows, cols // ref.GROUP[fmt])
    return w, scales


@pytest.mark.parametrize("fmt", native.FORMATS)
def test_native_pack_matches_numpy_mirror(fmt: str, rng: np.random.Generator) -> None:
    for rows, cols in SHAPES[fmt]:
        w, scales = random_case(fmt, rows, cols, rng)
        packed = native.pack(fmt, w, scales)
        assert packed.nbytes == native.packed_nbytes(fmt, rows, cols)
        np.testing.assert_array_equal(packed, ref.pack(fmt, w, scales))


@pytest.mark.parametrize("fmt", native.FORMATS)
def test_round_trip_both_ways(fmt: str, rng: np.random.Generator) -> None:
    for rows, cols in SHAPES[fmt]:
        w, scales = random_case(fmt, rows, cols, rng)
        packed = native.pack(fmt, w, scales)
        w2, s2 = native.unpack(fmt, packed, rows, cols)
        np.testing.assert_array_equal(w2, w)
        w3, s3 = ref.UNPACK[fmt](packed, rows, cols)
        np.testing.assert_array_equal(w3, w)
        if fmt in ref.ONE_SCALE:
            assert s2[0] == scales[0] == s3[0]
        else:  # scales are stored as f16
            np.testing.assert_array_equal(s2, scales.astype(np.float16).astype(np.float32))
            np.testing.assert_array_equal(s3, s2)


@pytest.mark.parametrize(
    "fmt,qtype", [("TQ1_0", gguf.GGMLQuantizationType.TQ1_0), ("TQ2_0", gguf.GGMLQuantizationType.TQ2_0)]
)
def test_byte_for_byte_with_gguf_quantize(fmt: str, qtype: gguf.GGMLQuantizationType, rng: np.random.Generator) -> None:
    rows, cols = 6, 1024
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    w[0, :256] = 0  # an all-zero block: gguf stores d = 0
    # gguf's quantizer takes real weights and uses the block's absmax as d.
    d = rng.uniform(0.05, 1.5, size=(rows, cols // 256)).astype(np.float16).astype(np.float32)
    real = (w.reshape(rows, -1, 256) * d[:, :, None]).reshape(rows, cols).astype(np.float32)
    expected = quants.quantize(real, qtype).reshape(-1)
    d_native = np.abs(real).reshape(rows, -1, 256).max(axis=2)
    packed = native.pack(fmt, w, d_native.astype(np.float32))
    np.testing.assert_array_equal(packed, expected)
    # and gguf reads our bytes back to the same real weights
    np.testing.assert_array_equal(quants.dequantize(packed.reshape(rows, -1), qtype), real)


def test_i2_s_layout_hand_computed() -> None:
    # weight j of a 128-group sits in byte j % 32 at bit shift 6 - 2 * (j // 32); codes w+1.
    w = np.zeros((1, 128), dtype=np.int8)
    w[0, 0] = 1  # code 2 -> byte 0, shift 6
    w[0, 32] = -1  # code 0 -> byte 0, shift 4
    w[0, 97] = 1  # code 2 -> byte 1, shift 0
    packed = native.pack("I2_S", w, np.array([0.25], dtype=np.float32))
    assert packed.nbytes == 128 // 4 + 32
    assert packed[0] == (2 << 6) | (0 << 4) | (1 << 2) | 1
    assert packed[1] == (1 << 6) | (1 << 4) | (1 << 2) | 2
    assert packed[2] == 0b01010101
    assert packed[32:36].view(np.float32)[0] == 0.25


def test_tq2_0_layout_hand_computed() -> None:
    # byte qs[32c + m] holds element 128c + 32n + m in bits 2n..2n+1
    w = np.zeros((1, 256), dtype=np.int8)
    w[0, 128 + 64 + 5] = 1  # c=1, n=2, m=5 -> byte 37, bits 4-5 = code 2
    packed = native.pack("TQ2_0", w, np.ones((1, 1), dtype=np.float32))
    assert packed[37] == (1 | (1 << 2) | (2 << 4) | (1 << 6))
    assert packed[64:66].view(np.float16)[0] == 1.0


def test_invalid_weight_values_rejected() -> None:
    w = np.zeros((1, 256), dtype=np.int8)
    w[0, 3] = 2
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        native.pack("TQ2_0", w, np.ones((1, 1), dtype=np.float32))


@pytest.mark.parametrize("fmt", ["TQ2_0", "TQ1_0", "I2_S"])
def test_repack_to_the_decode_layout_counts_trits(fmt: str, rng: np.random.Generator) -> None:
    rows, cols = 7, 768 if fmt != "I2_S" else 384
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    want = tuple(int((w == v).sum()) for v in (-1, 0, 1))
    uniform = np.full(native.scale_count(fmt, rows, cols), 0.5, np.float32)
    data = native.pack(fmt, w, uniform if fmt == "I2_S" else uniform.reshape(rows, -1))
    assert native.trit_counts(fmt, data, rows, cols) == want
    out = np.zeros(native.packed_nbytes("I2_S4", rows, cols), np.uint8)
    assert native.repack_i2s4(fmt, data, rows, cols, out) == want
    np.testing.assert_array_equal(out, ref.pack("I2_S4", w, np.array([0.5], np.float32)))
    if fmt != "I2_S":  # blocks with different scales keep their packing: out is left as it was
        mixed = uniform.reshape(rows, -1).copy()
        mixed[3, 1] = 0.25
        out[:] = 7
        assert native.repack_i2s4(fmt, native.pack(fmt, w, mixed), rows, cols, out) is None
        assert (out == 7).all()


def test_q2_0_layout_hand_computed() -> None:
    # llama.cpp's block_q2_0: f16 d first, then weight j in byte j // 4 at bits 2 * (j % 4); code q = w + 1
    w = np.zeros((1, 64), dtype=np.int8)
    w[0, 5] = 1  # byte 1, bits 2-3: code 2
    w[0, 63] = -1  # byte 15, bits 6-7: code 0
    packed = native.pack("Q2_0", w, np.array([[0.5]], np.float32))
    assert packed.nbytes == 18
    assert packed[0:2].view(np.float16)[0] == 0.5
    assert packed[2 + 1] == (1 | (2 << 2) | (1 << 4) | (1 << 6))
    assert packed[2 + 15] == (1 | (1 << 2) | (1 << 4) | (0 << 6))
    assert packed[2 + 0] == 0b01010101


def test_i2_r16_layout_hand_computed() -> None:
    # row r, column k: chunk k // 16 (64 bytes), byte 32 * ((r % 16) // 8) + 4 * (r % 8) + k % 4, bits
    # 2 * ((k % 16) // 4); rows padded to 16 with zero weights; then the fp32 scale in a 32-byte tail
    w = np.zeros((9, 64), dtype=np.int8)
    w[8, 16 + 13] = 1  # chunk 1, byte 32 + 0 + 1, bits 6-7: code 2
    w[3, 2] = -1  # chunk 0, byte 12 + 2, bits 0-1: code 0
    packed = native.pack("I2_R16", w, np.array([0.25], np.float32))
    assert packed.nbytes == 16 * 64 // 4 + 32
    assert packed[64 + 33] == (1 | (1 << 2) | (1 << 4) | (2 << 6))
    assert packed[14] == (0 | (1 << 2) | (1 << 4) | (1 << 6))
    assert (np.delete(packed[:256], [64 + 33, 14]) == 0b01010101).all()
    assert packed[256:260].view(np.float32)[0] == 0.25


@pytest.mark.parametrize("fmt", ["TQ2_0", "TQ1_0", "I2_S", "Q2_0", "Q2_0_128", "I2_S4"])
def test_repack_to_the_outer_product_layout(fmt: str, rng: np.random.Generator) -> None:
    """One shared scale -> I2_R16; group scales -> I2_R16_G<the source's group>, codes and scales kept exactly."""
    rows, cols = 21, 768
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    want = tuple(int((w == v).sum()) for v in (-1, 0, 1))
    n = native.scale_count(fmt, rows, cols)
    for uniform in (True, False):
        if uniform:
            scales = np.full(n, 0.375, np.float32)
        elif fmt in ref.ONE_SCALE:
            continue
        else:
            scales = rng.uniform(0.1, 1.0, size=n).astype(np.float32)
        data = native.pack(fmt, w, scales if fmt in ref.ONE_SCALE else scales.reshape(rows, -1))
        target = native.r16_target(fmt, data, rows, cols)
        assert target == ("I2_R16" if uniform else f"I2_R16_G{ref.GROUP[fmt]}")
        out = np.zeros(native.packed_nbytes(target, rows, cols), np.uint8)
        assert native.repack_r16(fmt, data, rows, cols, out) == (target, want)
        expect_scales = scales[:1] if uniform else scales.reshape(rows, -1).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(out, ref.pack(target, w, expect_scales))
