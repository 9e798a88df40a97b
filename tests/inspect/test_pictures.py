"""The plain-SVG charts draw what they are given (bar heights in proportion, a cell per value, a tree node per
cluster), the cluster tree is the index router's own clustering, and the page loads nothing from anywhere."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pyserver.index.router import SignatureRouter
from pyserver.inspect import svg
from pyserver.inspect.clusters import balance, cluster_tree
from pyserver.inspect.html import Section, TableData, external_references, page
from tests.inspect.reference import values


def rects(markup: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', r)) for r in re.findall(r"<rect [^>]*data-value[^>]*>", markup)]


def test_histogram_bars_are_in_proportion() -> None:
    counts = [3.0, 0.0, 12.0, 6.0]
    markup = svg.histogram("h", counts, [0, 0.25, 0.5, 0.75, 1.0], "t", "x")
    bars = rects(markup)
    assert [float(b["data-value"]) for b in bars] == counts
    heights = np.array([float(b["height"]) for b in bars])
    assert np.allclose(heights / heights.max(), np.array(counts) / 12.0, atol=1e-3)
    assert 'data-figure="h"' in markup
    with pytest.raises(ValueError):
        svg.histogram("h", counts, [0, 1], "t", "x")


def test_stacked_bars_stack() -> None:
    markup = svg.stacked_bars("s", ["a", "b"], [("x", [1.0, 2.0], "#111"), ("y", [3.0, 0.0], "#222")], "t", "v")
    bars = rects(markup)
    assert [float(b["data-value"]) for b in bars] == [1.0, 3.0, 2.0, 0.0]  # bar by bar, series in order
    first = [float(b["height"]) for b in bars[:2]]
    assert sum(first) == pytest.approx(180.0)  # the tallest bar fills the plot
    assert float(bars[1]["y"]) + float(bars[1]["height"]) == pytest.approx(float(bars[0]["y"]))


def test_heatmap_cells_row_by_row() -> None:
    m = np.array([[0.0, 1.0, 2.0], [3.0, np.nan, 5.0]])
    markup = svg.heatmap("m", m, ["r0", "r1"], ["a", "b", "c"], "t")
    got = values(markup)
    assert np.allclose(got, m.ravel(), equal_nan=True)
    fills = [r["fill"] for r in rects(markup)]
    assert fills[0] == svg.colour(0.0) and fills[5] == svg.colour(1.0) and fills[4] == svg.colour(float("nan"))
    with pytest.raises(ValueError):
        svg.heatmap("m", m, ["r0"], ["a", "b", "c"], "t")


def test_colour_map_is_monotonic_in_lightness() -> None:
    def lum(c: str) -> float:
        r, g, b = (int(c[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    shades = [lum(svg.colour(t)) for t in np.linspace(0, 1, 50)]
    assert all(b >= a for a, b in zip(shades, shades[1:]))


def test_cluster_tree_is_the_routers(rng: np.random.Generator) -> None:
    centres = rng.integers(0, 256, size=(12, 16), dtype=np.uint8)
    sigs = centres[rng.integers(0, 12, 3000)].copy()
    noise = rng.random((3000, 128)) < 0.08
    sigs ^= np.packbits(noise, axis=1)
    tree = cluster_tree(sigs)
    router = SignatureRouter.build(sigs)
    assert [tree.nodes[i].rows.tolist() for i in tree.leaves] == [leaf.rows.tolist() for leaf in router.leaves]
    assert tree.depth >= 2 and tree.nodes[0].depth == 0 and len(tree.nodes[0].rows) == 3000
    for node in tree.nodes[1:]:  # children partition their parent
        assert tree.nodes[node.parent].depth == node.depth - 1
    for node in tree.nodes:
        if node.children:
            kids = np.sort(np.concatenate([tree.nodes[c].rows for c in node.children]))
            assert np.array_equal(kids, np.sort(node.rows))
    layout = tree.layout(2)
    markup = svg.icicle("tree", layout, 3000, "t")
    assert values(markup, "data-size").tolist() == [n.size for n in layout]
    assert layout[0].size == 3000 and sum(n.size for n in layout if n.depth == 1) == 3000


def test_balance() -> None:
    assert balance(np.array([10, 10, 10, 10])) == pytest.approx(1.0)
    assert balance(np.array([1000, 1, 1, 1])) < 0.1
    assert balance(np.array([5])) == 1.0


def test_page_is_self_contained() -> None:
    fig = svg.Figure("h", "caption <b>", svg.histogram("h", [1.0], [0.0, 1.0], "t", "x"))
    html = page("T <x>", ["line & more"], [Section("S", ["n"], [TableData(["a", "b"], [["<td>", 1.5]])], [fig])])
    assert external_references(html) == [] and html.count("<svg") == 1
    assert "&lt;td&gt;" in html and "caption &lt;b&gt;" in html and "T &lt;x&gt;" in html
    assert "default-src 'none'" in html
    assert external_references('<img src="https://x">') == ["https:", "src="]
    assert external_references("<script>") == ["<script"]
