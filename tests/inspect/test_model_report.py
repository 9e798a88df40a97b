"""`inspect` on small hand-built models in every format the engine loads: each number of the report, and each figure
of the page (the values its marks carry), equal to a plain numpy computation over the trits the model was built
with; the page names no external resource and holds one SVG per figure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyserver.engine.config import LINEAR_NAMES
from pyserver.index.router import SignatureRouter
from pyserver.inspect.html import external_references
from pyserver.inspect.model_report import inspect_model
from pyserver.inspect.weights import Options
from tests.inspect.reference import TensorRef, close, figures, hist, layer_similarity, values
from tests.support.builders import RandomModel, random_model, write_gguf, write_gguf_i2s, write_safetensors_dir

FORMATS = ("TQ2_0", "TQ1_0", "I2_S", "F16-projections", "hf-packed", "hf-latent")


def plant(m: RandomModel, rng: np.random.Generator) -> None:
    """Structure worth finding, in every projection: an exact duplicate row, near-duplicates at a few percent,
    zero rows (also duplicates of each other) and zero 128-blocks, and a column most rows read as +1."""
    for layer in m.codes:
        for c in layer.values():
            rows, cols = c.shape
            c[1] = c[0]
            for r, share in ((2, 0.01), (3, 0.04), (9, 0.08)):
                c[r] = c[0]
                flip = rng.choice(cols, int(share * cols / 2), replace=False)
                c[r, flip] = np.where(c[r, flip] == 1, -1, 1)  # each flip costs 1 or 2 of the 2 x cols bits
            c[4, :128] = 0
            c[5] = 0
            c[6] = 0
            c[7, 128:256] = 0
            c[: int(0.9 * rows), 11] = 1


@dataclass
class Built:
    path: Path
    m: RandomModel
    embedding: np.ndarray  # as stored
    scales: list[dict[str, np.ndarray]]  # as stored
    extra: list[dict[str, float]]
    planted: bool  # (a latent checkpoint's trits come from its random floats: nothing planted survives)


def build(kind: str, tmp: Path) -> Built:
    rng = np.random.default_rng(FORMATS.index(kind) + 7)
    fmt = kind if kind in ("TQ2_0", "TQ1_0") else "TQ2_0" if kind == "F16-projections" else "I2_S"
    m = random_model(rng, "bitnet", fmt, n_layer=2, vocab=320, block_scales=True, extra_scales=kind != "I2_S")
    plant(m, rng)
    if kind in ("TQ2_0", "TQ1_0", "F16-projections"):
        path = write_gguf(m, tmp / "m.gguf", linear_type="F16" if kind == "F16-projections" else None)
        embedding = m.token_embd  # (the writer replaced it with the stored values)
    elif kind == "I2_S":
        path = write_gguf_i2s(m, tmp / "m.gguf")
        embedding = m.token_embd.astype(np.float16).astype(np.float32)
    else:
        m.extra = [{k: 1.0 for k in e} for e in m.extra]  # (checkpoints have no extra scale tensors)
        path = write_safetensors_dir(m, tmp / "ckpt", packed=kind == "hf-packed", rng=rng)
        embedding = m.token_embd.astype(np.float16).astype(np.float32)
    scales = []
    for i in range(m.cfg.n_layer):
        layer = {}
        for name in LINEAR_NAMES:
            s = m.scales[i][name].reshape(-1)
            if kind == "hf-packed":  # weight_scale = 1 / s is stored; the engine divides by it
                s = np.array([1.0 / np.float32(1.0 / np.float32(s[0]))], np.float32)
            elif kind in ("TQ2_0", "TQ1_0"):
                s = s.astype(np.float16).astype(np.float32)
            layer[name] = s
        scales.append(layer)
    return Built(path, m, embedding, scales, m.extra, kind != "hf-latent")


@pytest.fixture(scope="module", params=FORMATS)
def inspected(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Built, dict[str, Any], str]:
    b = build(request.param, tmp_path_factory.mktemp(request.param))
    report, html = inspect_model(b.path, Options(threads=2))
    return b, report, html


def refs(b: Built) -> dict[str, TensorRef]:
    return {
        f"blk.{i}.{k}": TensorRef(b.m.codes[i][k], b.scales[i][k], b.extra[i][k])
        for i in range(b.m.cfg.n_layer)
        for k in LINEAR_NAMES
    }


def test_each_tensor_against_numpy(inspected: tuple[Built, dict[str, Any], str]) -> None:
    b, report, _ = inspected
    want = refs(b)
    assert [t["name"] for t in report["tensors"]] == list(want)
    for t in report["tensors"]:
        r = want[t["name"]]
        assert (t["trits"]["minus"], t["trits"]["zero"], t["trits"]["plus"]) == (r.minus, r.zero, r.plus), t["name"]
        assert t["row_density"]["mean"] == pytest.approx(r.density.mean())
        assert t["row_density"]["std"] == pytest.approx(r.density.std())
        assert t["row_density"]["histogram"]["counts"] == hist(r.density, 40)
        assert t["zero_blocks"]["count"] == r.zero_blocks >= (3 if b.planted else 0)
        assert t["zero_blocks"]["total"] == r.n_blocks
        assert t["diversity"]["mean_distance_bits"] == pytest.approx(r.mean_distance)
        assert t["diversity"]["normalised"] == pytest.approx(r.mean_distance / r.bits)
        assert t["diversity"]["ratio"] == pytest.approx(r.mean_distance / r.independent)
        nd = t["near_duplicates"]
        assert nd["pairs"] == [r.pairs_within(f) for f in nd["radii_fraction"]], t["name"]
        assert not nd["sampled"] and nd["scan_bits"] == r.bits
        assert nd["nearest"]["histogram"]["counts"] == hist(r.nearest, 50)
        assert nd["nearest"]["mean"] == pytest.approx(r.nearest.mean())
        for e in nd["examples"]:
            assert r.d[e["rows"][0], e["rows"][1]] == e["distance_bits"]
        assert t["consensus"]["columns"] == r.consensus >= (1 if b.planted else 0)
        top = int(np.lexsort((np.arange(r.cols), -r.agreement))[0])
        assert t["consensus"]["top"][0]["column"] == top == (11 if b.planted else top)
        assert t["consensus"]["histogram"]["counts"] == hist(r.agreement[r.nonzero_cols > 0], 20)
        assert t["scales"]["effective_mean"] == pytest.approx(r.effective_scale, rel=1e-6)
        assert t["scales"]["stored"] == r.scales.size
        assert np.allclose(t["density_profile"]["rows"], r.row_profile())
        assert np.allclose(t["density_profile"]["cols"], r.col_profile())
    # The planted pairs are found at their radii, whatever the format.
    pairs = report["totals"]["near_duplicate_pairs"]
    assert not b.planted or pairs[0] >= 2 * len(want) and pairs[-1] > pairs[1] > pairs[0]


def test_each_figure_against_numpy(inspected: tuple[Built, dict[str, Any], str]) -> None:
    b, report, html = inspected
    want = refs(b)
    figs = figures(html)
    assert sorted(figs) == sorted(f["id"] for f in report["figures"])
    n_layer = b.m.cfg.n_layer

    def grid(value: Callable[[TensorRef], float]) -> np.ndarray:
        return np.array([[value(want[f"blk.{i}.{k}"]) for k in LINEAR_NAMES] for i in range(n_layer)])

    rw = list(want.values())
    assert close(
        values(figs["trits"]), [[r.minus / r.codes.size, r.zero / r.codes.size, r.plus / r.codes.size] for r in rw]
    )
    assert close(values(figs["zero_fraction"]), grid(lambda r: r.zero / r.codes.size))
    assert close(values(figs["row_density_spread"]), grid(lambda r: r.density.std()))
    assert close(values(figs["zero_blocks"]), grid(lambda r: r.zero_blocks / r.n_blocks))
    assert close(values(figs["diversity"]), grid(lambda r: r.mean_distance / r.bits))
    assert close(values(figs["diversity_ratio"]), grid(lambda r: r.mean_distance / r.independent))
    assert close(values(figs["near_duplicates"]), grid(lambda r: r.pairs_within(0.10)))
    assert close(values(figs["consensus"]), grid(lambda r: r.consensus))
    assert close(values(figs["scale"]), grid(lambda r: r.effective_scale))
    assert close(values(figs["scale_spread"]), grid(lambda r: r.scale_spread))
    for k in LINEAR_NAMES:
        mine = [want[f"blk.{i}.{k}"] for i in range(n_layer)]
        assert close(values(figs[f"row_density.{k}"]), np.sum([hist(r.density, 40) for r in mine], axis=0))
        assert close(values(figs[f"density_rows.{k}"]), [r.row_profile() for r in mine])
        assert close(values(figs[f"density_cols.{k}"]), [r.col_profile() for r in mine])
        assert close(values(figs[f"nearest.{k}"]), np.sum([hist(r.nearest, 50) for r in mine], axis=0))
    agreement = np.concatenate([r.agreement[r.nonzero_cols > 0] for r in rw])
    assert close(values(figs["agreement"]), hist(agreement, 20))
    assert close(values(figs["layer_similarity"]), layer_similarity(b.m.codes))
    rs = report["row_similarity"]
    r = want[rs["tensor"]]
    assert rs["tensor"] == min(want, key=lambda n: want[n].nearest.mean())  # the most redundant tensor
    rows = np.array(rs["rows"])
    assert close(values(figs["row_similarity"]), 1 - r.d[np.ix_(rows, rows)] / r.bits)


def test_vocabulary_clusters_are_the_routers(inspected: tuple[Built, dict[str, Any], str]) -> None:
    b, report, html = inspected
    figs = figures(html)
    signs = np.packbits(b.embedding > 0, axis=1)
    sigs = np.zeros((len(signs), -(-signs.shape[1] // 8) * 8), np.uint8)
    sigs[:, : signs.shape[1]] = signs
    router = SignatureRouter.build(sigs)
    sizes = [len(leaf.rows) for leaf in router.leaves]
    voc = report["vocabulary"]
    assert voc["clusters"]["leaf_sizes"] == sizes and voc["clusters"]["leaves"] == len(sizes)
    top = max(sizes)
    assert close(values(figs["vocab_leaves"]), np.histogram(sizes, bins=min(40, top), range=(0, top))[0])
    tree_sizes = values(figs["vocab_tree"], "data-size")
    assert tree_sizes[0] == len(b.embedding)  # the root, then its children (largest first), depth first
    assert close(values(figs["vocab_bits"]), hist((b.embedding > 0).mean(axis=0), 20))
    ones = (b.embedding > 0).sum(axis=0).astype(np.float64)
    n = len(b.embedding)
    assert voc["diversity"] == pytest.approx((ones * (n - ones)).sum() / (n * (n - 1) / 2) / b.embedding.shape[1])
    assert sum(c["size"] for c in voc["clusters"]["top_clusters"]) == n or voc["clusters"]["leaves"] == 1
    tokens = b.m.tokenizer.get_vocab() if b.m.tokenizer is not None else {}
    by_id = {i: t for t, i in tokens.items()}
    for c in voc["clusters"]["top_clusters"]:
        assert c["examples"] == [by_id.get(r, f"#{r}") for r in c["nearest"]]


def test_the_page_is_self_contained(inspected: tuple[Built, dict[str, Any], str]) -> None:
    _, report, html = inspected
    assert "http:" not in html and "https:" not in html and "<script" not in html.lower()
    assert external_references(html) == []
    assert html.count("<svg") == len(report["figures"]) == len(figures(html))
    assert "default-src 'none'" in html


def test_memory_is_bounded_by_blocks(tmp_path: Path) -> None:
    """The same numbers when the tensors are read a few rows at a time (as a large model's are)."""
    b = build("TQ2_0", tmp_path)
    whole, _ = inspect_model(b.path, Options(threads=1), vocabulary=False)
    rows, _ = inspect_model(b.path, Options(threads=1, block_weights=3 * 256), vocabulary=False)
    for a, c in zip(whole["tensors"], rows["tensors"]):
        a.pop("seconds"), c.pop("seconds")
        assert a == c
