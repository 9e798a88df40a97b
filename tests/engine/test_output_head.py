"""Quantized output heads: exact arithmetic against numpy, and greedy agreement with the float head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver import native
from pyserver.engine import Model
from tests.support.builders import random_model, write_gguf
from tests.support.reference_kernels import quantize_activations


def unpack_i4(packed: np.ndarray, cols: int) -> np.ndarray:
    """Written from BlockI4 in block_layouts.h: block c, byte j -> elements 64c+j (low) and 64c+32+j (high)."""
    rows = packed.shape[0]
    units = packed.reshape(rows, cols // 64, 32)
    lo, hi = (units & 15).astype(np.int16) - 8, (units >> 4).astype(np.int16) - 8
    return np.concatenate([lo, hi], axis=2).reshape(rows, cols)


def test_i4_quantization_layout(rng: np.random.Generator) -> None:
    w = rng.normal(size=(37, 192)).astype(np.float32)
    packed, scales = native.quantize_weight_rows_i4(w)
    q = unpack_i4(packed, 192)
    np.testing.assert_allclose(scales, np.abs(w).max(axis=1) / 7, rtol=1e-6)
    np.testing.assert_array_equal(q, np.round(w / scales[:, None]))
    assert q.min() >= -7 and q.max() <= 7


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(9), "bitnet", "TQ2_0", n_layer=2, vocab=320)
    return write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf")


@pytest.mark.parametrize("isa", native.available_isas())
def test_quantized_heads_compute_exactly(model_path: Path, rng: np.random.Generator, isa: str) -> None:
    native.set_isa_cap(isa)
    try:
        h = rng.normal(size=(3, 256)).astype(np.float32)
        q, s = quantize_activations(h)
        table = Model.load(model_path, head="f32")._weights.token_embd.rows_f32(0, 320)
        for kind in ("int8", "int4"):
            # No rescoring here: the quantized logits themselves are checked.
            model = Model.load(model_path, head=kind)
            w = native.quantize_weight_rows(table) if kind == "int8" else native.quantize_weight_rows_i4(table)
            codes = w[0].astype(np.int64) if kind == "int8" else unpack_i4(w[0], 256).astype(np.int64)
            want = (q.astype(np.int64) @ codes.T) * w[1][None, :] / s[:, None]
            model.native.set_head_int8(*w) if kind == "int8" else model.native.set_head_int4(*w)
            np.testing.assert_allclose(model.native.head(h), want, rtol=1e-5, atol=1e-4)
    finally:
        native.set_isa_cap(native.available_isas()[-1])


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_head_keeps_greedy_tokens(model_path: Path, rng: np.random.Generator, kind: str) -> None:
    """Greedy tokens of the quantized head (with its top-k rescored from the stored table) equal the float head's
    in >= 99% of steps, teacher-forced on the float model's own greedy continuations of several prompts."""
    ref_model, q_model = Model.load(model_path, head="f32"), Model.load(model_path, head=kind)
    agree = total = 0
    for _ in range(6):
        prompt = [int(t) for t in rng.integers(0, 300, size=8)]
        s_ref, s_q = ref_model.session(), q_model.session()
        lr, lq = s_ref.eval(prompt), s_q.eval(prompt)
        for _ in range(40):
            tok = int(np.argmax(lr))
            agree += int(np.argmax(lq) == tok)
            total += 1
            lr, lq = s_ref.append([tok])[-1], s_q.append([tok])[-1]
    assert agree / total >= 0.99, f"{agree}/{total}"
    assert q_model.stats.head_bytes < ref_model.stats.head_bytes / (3 if kind == "int8" else 6)
