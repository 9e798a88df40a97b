"""GEMV/GEMM for every packing x ISA path, exactly against integer numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver import native
from tests.support import reference_kernels as ref

ISAS = native.available_isas()
COLS = {
    "TQ2_0": [256, 768, 2560],
    "TQ1_0": [256, 768, 2560],
    "I2_S": [128, 384, 2560],
    "I2_S4": [128, 384, 2560],
    "Q2_0": [64, 192, 2560],
    "Q2_0_128": [128, 384, 2560],
    "I2_R16": [64, 192, 2560],
    "I2_R16_G64": [64, 192, 2560],
    "I2_R16_G128": [128, 384, 2560],
    "I2_R16_G256": [256, 768, 2560],
}
ROWS = [1, 3, 8, 13, 67]
GROUP_FORMATS = [f for f in native.FORMATS if f not in ref.ONE_SCALE]


def unit_scales(fmt: str, rows: int, cols: int) -> np.ndarray:
    n = native.scale_count(fmt, rows, cols)
    return np.ones(n, dtype=np.float32) if fmt in ref.ONE_SCALE else np.ones((rows, cols // ref.GROUP[fmt]), np.float32)


@pytest.fixture(autouse=True)
def _restore_threads():
    saved = native.num_threads()
    yield
    native.set_num_threads(saved)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", native.FORMATS)
def test_exact_integer_results(fmt: str, isa: str, rng: np.random.Generator) -> None:
    # Unit scales make every result an exact integer (sums stay far below 2**24).
    for cols in COLS[fmt]:
        for rows in ROWS:
            w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
            m = native.TernaryMatrix(fmt, native.pack(fmt, w, unit_scales(fmt, rows, cols)), rows, cols)
            x = rng.integers(-128, 128, size=(5, cols), dtype=np.int8)
            expected = x.astype(np.int64) @ w.T.astype(np.int64)
            np.testing.assert_array_equal(m.gemm(x, isa), expected.astype(np.float32))
            np.testing.assert_array_equal(m.gemv(x[2], isa), expected[2].astype(np.float32))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", native.FORMATS)
def test_scaled_results(fmt: str, isa: str, rng: np.random.Generator) -> None:
    rows, cols = 37, 1536
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    n = native.scale_count(fmt, rows, cols)
    scales = rng.uniform(0.1, 2.0, size=n).astype(np.float32)
    if fmt not in ref.ONE_SCALE:
        scales = scales.reshape(rows, -1)
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, scales), rows, cols)
    x = rng.integers(-127, 128, size=(19, cols), dtype=np.int8)
    expected = ref.matmul(fmt, w, scales, x)
    np.testing.assert_allclose(m.gemm(x, isa), expected, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(m.gemv(x[4], isa), expected[4], rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", GROUP_FORMATS)
def test_mixed_block_scales_and_zero_blocks(fmt: str, isa: str, rng: np.random.Generator) -> None:
    """Rows with uniform and non-uniform block scales, and zero-scale blocks, in one matrix."""
    rows, cols = 20, 1024
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    scales = np.full((rows, cols // ref.GROUP[fmt]), 0.5, dtype=np.float32)
    scales[3, :4] = [0.5, 0.25, 0.5, 1.0]
    scales[7, 1] = 0.0  # a zero-scale block with nonzero codes contributes nothing
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, scales), rows, cols)
    x = rng.integers(-128, 128, size=(6, cols), dtype=np.int8)
    expected = ref.matmul(fmt, w, scales, x)
    np.testing.assert_allclose(m.gemm(x, isa), expected, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(m.gemv(x[0], isa), expected[0], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", native.FORMATS)
def test_worst_case_accumulation_k16384(fmt: str, isa: str) -> None:
    """All weights +1, all activations 127 (and -128) at K = 16384: int16 accumulation would overflow."""
    rows, cols = 9, 16384
    w = np.ones((rows, cols), dtype=np.int8)
    w[1] = -1
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, unit_scales(fmt, rows, cols)), rows, cols)
    for value in (127, -128):
        x = np.full((3, cols), value, dtype=np.int8)
        expected = np.full((3, rows), value * cols, dtype=np.float32)
        expected[:, 1] = -value * cols
        np.testing.assert_array_equal(m.gemm(x, isa), expected)
        np.testing.assert_array_equal(m.gemv(x[0], isa), expected[0])


@pytest.mark.parametrize("fmt", native.FORMATS)
def test_thread_counts_agree(fmt: str, rng: np.random.Generator) -> None:
    rows, cols = 1000, 1024
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, unit_scales(fmt, rows, cols)), rows, cols)
    x = rng.integers(-128, 128, size=(17, cols), dtype=np.int8)
    expected = (x.astype(np.int64) @ w.T.astype(np.int64)).astype(np.float32)
    for threads in (1, 2, 3):
        native.set_num_threads(threads)
        np.testing.assert_array_equal(m.gemm(x), expected)
        np.testing.assert_array_equal(m.gemv(x[5]), expected[5])


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_activations_matches_reference(isa: str, rng: np.random.Generator) -> None:
    x = rng.normal(size=(7, 2563)).astype(np.float32) * rng.uniform(0.01, 30, size=(7, 1)).astype(np.float32)
    x[3] = 0.0  # all-zero token: scale from the 1e-5 clamp
    x[4, :5] = [0.5, -0.5, 1.5, -2.5, 3.0]  # ties to even after scaling
    x[5, 2560:] = [-7.0, 7.0, 0.25]  # the tail past the last whole vector holds the maximum
    q, s = native.quantize_activations(x, 0, isa)
    q_ref, s_ref = ref.quantize_activations(x)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(q, q_ref)
    q1, s1 = native.quantize_activations(x[1], 0, isa)
    np.testing.assert_array_equal(q1, q_ref[1])
    assert s1[0] == s_ref[1]
    xb = np.ascontiguousarray(x[:, :2560])
    for block in (32, 64, 128):
        qb, d = native.quantize_activations(xb, block, isa)
        qb_ref, d_ref = ref.quantize_blocks(xb, block)
        np.testing.assert_array_equal(d, d_ref)
        np.testing.assert_array_equal(qb, qb_ref)


def test_quantized_matmul_approximates_float(rng: np.random.Generator) -> None:
    """End to end as a BitNet layer: quantize, ternary matmul, rescale ~ float matmul."""
    rows, cols = 64, 2560
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    m = native.TernaryMatrix("I2_S", native.pack("I2_S", w, np.array([0.7], np.float32)), rows, cols)
    x = rng.normal(size=(4, cols)).astype(np.float32)
    q, s = native.quantize_activations(x)
    y = m.gemm(q) / s[:, None]
    y_float = x @ (0.7 * w.T.astype(np.float32))
    np.testing.assert_allclose(y, y_float, rtol=0, atol=0.02 * np.abs(y_float).max())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", ["TQ2_0", "TQ1_0"])
def test_uniform_non_unit_block_scale(fmt: str, isa: str, rng: np.random.Generator) -> None:
    """One shared block scale (as real BitNet TQ files have) takes the integer path; results still scaled."""
    rows, cols = 45, 2560
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    scales = np.full((rows, cols // 256), 0.37, dtype=np.float32)
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, scales), rows, cols)
    x = rng.integers(-128, 128, size=(3, cols), dtype=np.int8)
    expected = ref.matmul(fmt, w, scales, x)
    np.testing.assert_allclose(m.gemm(x, isa), expected, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(m.gemv(x[1], isa), expected[1], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", ["I2_S", "I2_S4", "TQ2_0", "I2_R16", "I2_R16_G128"])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8])
def test_small_batches_walk_the_packed_weights(fmt: str, isa: str, n: int, rng: np.random.Generator) -> None:
    """2-8 tokens take the multi-token GEMV (groups of up to 4 tokens): exact against numpy, random weights and
    the int16 worst case (every weight +1, every activation 127)."""
    rows, cols = 45, 1024
    x = rng.integers(-128, 128, size=(n, cols), dtype=np.int8)
    x[0] = 127
    for w in (rng.integers(-1, 2, size=(rows, cols), dtype=np.int8), np.ones((rows, cols), np.int8)):
        m = native.TernaryMatrix(fmt, native.pack(fmt, w, unit_scales(fmt, rows, cols) * 0.5), rows, cols)
        expected = 0.5 * (x.astype(np.int64) @ w.T.astype(np.int64))
        np.testing.assert_array_equal(m.gemm(x, isa), expected.astype(np.float32))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", native.FORMATS)
@pytest.mark.parametrize("block", [64, 128, 256])
def test_per_block_activation_scales(fmt: str, isa: str, block: int, rng: np.random.Generator) -> None:
    """Activations quantized per block (each block of a token its own scale) against the float64 reference: every
    packing (weight groups finer or coarser than the blocks), GEMV, small batches and the GEMM."""
    rows, cols = 45, 1536
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    n_sc = native.scale_count(fmt, rows, cols)
    scales = rng.uniform(0.1, 2.0, size=n_sc).astype(np.float32)
    if fmt not in ref.ONE_SCALE:
        scales = scales.reshape(rows, -1)
    m = native.TernaryMatrix(fmt, native.pack(fmt, w, scales), rows, cols)
    xf = rng.normal(size=(21, cols)).astype(np.float32)
    xf[:, 7] *= 80.0  # an outlier channel: its block gets its own scale
    q, d = native.quantize_activations(xf, block)
    q_ref, d_ref = ref.quantize_blocks(xf, block)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(d, d_ref)
    expected = ref.matmul(fmt, w, scales, q, d, block)
    tol = dict(rtol=1e-5, atol=1e-4 * np.abs(expected).max())
    for n in (21, 4, 1):  # the GEMM, the small-batch path, one token
        np.testing.assert_allclose(m.gemm(q[:n], isa, d[:n], block), expected[:n], **tol)
    np.testing.assert_allclose(m.gemv(q[3], isa, d[3], block), expected[3], **tol)


def test_per_block_activations_keep_outlier_channels_honest(rng: np.random.Generator) -> None:
    """Why per-block activations exist: with a channel 100x the others, per-token int8 rounds the other channels to
    a few levels, per-block keeps them (the error against the float product shrinks several times: here ~3.7x)."""
    rows, cols = 64, 2048
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    m = native.TernaryMatrix("I2_R16", native.pack("I2_R16", w, np.array([1.0], np.float32)), rows, cols)
    x = rng.normal(size=(8, cols)).astype(np.float32)
    x[:, [11, 900]] *= 100.0
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    q, s = native.quantize_activations(x)
    per_token = m.gemm(q) / s[:, None]
    qb, d = native.quantize_activations(x, 128)
    per_block = m.gemm(qb, "auto", d, 128)
    err_token = np.abs(per_token - exact).mean()
    err_block = np.abs(per_block - exact).mean()
    assert err_block * 3 < err_token
