"""Plain-SVG charts for the introspection reports: histogram, bars, stacked bars, heat map (also the similarity
matrices) and a cluster tree (an icicle: one band per depth, each node as wide as its share of the rows).

No plotting library: each function returns one `<svg>` element as text (inline SVG in HTML needs no namespace
declaration, so the page names no URL at all), with its numbers in the markup. Every mark
that stands for a number carries it as `data-value` (bars, cells; a tree node its `data-size`), in drawing order,
so a test (or a person with the page's source) can read back exactly what a figure shows; the root element carries
`data-figure` with the figure's id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH = 640
FONT = 11
# Viridis at nine stops: perceptually even, readable in print and by colour-blind readers.
_STOPS = (
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
)
TRIT_COLOURS = {"-1": "#c0392b", "0": "#bdc3c7", "+1": "#2471a3"}


@dataclass(frozen=True)
class Figure:
    """One picture of a report: its id (unique in the report), a caption, and the SVG markup."""

    id: str
    caption: str
    svg: str


@dataclass(frozen=True)
class TreeNode:
    """A node of a cluster tree, laid out: depth (root 0), offset of its first row and its row count, in the order
    the children are drawn."""

    depth: int
    start: int
    size: int
    label: str = ""


def num(v: float) -> str:
    """A number as the markup carries it (six significant digits)."""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    if not math.isfinite(f):
        return "nan"
    return f"{f:.6g}"


def colour(t: float) -> str:
    """The colour map at t in [0, 1] (clipped; NaN is grey)."""
    if not math.isfinite(t):
        return "#dddddd"
    t = min(1.0, max(0.0, t)) * (len(_STOPS) - 1)
    i = min(int(t), len(_STOPS) - 2)
    f = t - i
    a, b = _STOPS[i], _STOPS[i + 1]
    r, g, bl = (round(a[k] + (b[k] - a[k]) * f) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _open(fig_id: str, title: str, width: float, height: float) -> list[str]:
    return [
        f'<svg class="figure" role="img" data-figure="{escape(fig_id)}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}"'
        f' font-family="sans-serif" font-size="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2:.1f}" y="14" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
    ]


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def _axes(left: float, top: float, w: float, h: float) -> str:
    return (
        f'<path d="M{left:.1f},{top:.1f} V{top + h:.1f} H{left + w:.1f}" fill="none" stroke="#333" stroke-width="1"/>'
    )


def histogram(
    fig_id: str, counts: Sequence[float], edges: Sequence[float], title: str, xlabel: str, ylabel: str = "count"
) -> str:
    """Bars over the bins [edges[i], edges[i+1]); bar i carries counts[i]."""
    if len(edges) != len(counts) + 1:
        raise ValueError(f"{len(counts)} bins need {len(counts) + 1} edges, got {len(edges)}")
    left, top, w, h = 56.0, 24.0, WIDTH - 72.0, 180.0
    height = top + h + 40
    out = _open(fig_id, title, WIDTH, height)
    top_count = max([float(c) for c in counts] + [0.0])
    scale = h / top_count if top_count > 0 else 0.0
    bw = w / max(1, len(counts))
    for i, c in enumerate(counts):
        bh = float(c) * scale
        out.append(
            f'<rect x="{left + i * bw:.2f}" y="{top + h - bh:.2f}" width="{max(bw - 0.5, 0.5):.2f}"'
            f' height="{bh:.2f}" fill="{colour(0.35)}" data-value="{num(c)}">'
            f"<title>[{num(edges[i])}, {num(edges[i + 1])}): {num(c)}</title></rect>"
        )
    out.append(_axes(left, top, w, h))
    out.append(_text(left - 4, top + 4, num(top_count), "end"))
    out.append(_text(left - 4, top + h, "0", "end"))
    out.append(_text(left, top + h + 14, num(edges[0]), "start"))
    out.append(_text(left + w, top + h + 14, num(edges[-1]), "end"))
    out.append(_text(left + w / 2, top + h + 30, xlabel, "middle"))
    out.append(_text(12, top + h / 2, ylabel, "middle", f' transform="rotate(-90 12 {top + h / 2:.1f})"'))
    out.append("</svg>")
    return "\n".join(out)


def bars(fig_id: str, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str) -> str:
    """One bar per label; bar i carries values[i]."""
    return stacked_bars(fig_id, labels, [(ylabel, values, colour(0.35))], title, ylabel, legend=False)


def stacked_bars(
    fig_id: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    title: str,
    ylabel: str,
    legend: bool = True,
) -> str:
    """Bars stacked from the bottom, one segment per series (name, values, colour); segments are drawn bar by bar,
    series in order within a bar, each carrying its value."""
    n = len(labels)
    left, top, w, h = 56.0, 24.0 + (16 if legend else 0), WIDTH - 72.0, 180.0
    rotate = n > 16
    height = top + h + (70 if rotate else 34)
    out = _open(fig_id, title, WIDTH, height)
    totals = [sum(float(s[1][i]) for s in series) for i in range(n)]
    top_total = max(totals + [0.0])
    scale = h / top_total if top_total > 0 else 0.0
    bw = w / max(1, n)
    every = max(1, math.ceil(n * 12 / w))  # a label at most every 12 pixels
    for i in range(n):
        y = top + h
        for _name, values, fill in series:
            bh = float(values[i]) * scale
            y -= bh
            out.append(
                f'<rect x="{left + i * bw:.2f}" y="{y:.2f}" width="{max(bw - 0.5, 0.5):.2f}" height="{bh:.2f}"'
                f' fill="{fill}" data-value="{num(values[i])}"><title>{escape(labels[i])}: {num(values[i])}</title>'
                "</rect>"
            )
        if i % every == 0:
            x = left + (i + 0.5) * bw
            if rotate:
                out.append(
                    _text(x, top + h + 8, labels[i], "end", f' transform="rotate(-60 {x:.1f} {top + h + 8:.1f})"')
                )
            else:
                out.append(_text(x, top + h + 14, labels[i], "middle"))
    if legend:
        x = left
        for name, _values, fill in series:
            out.append(f'<rect x="{x:.1f}" y="22" width="10" height="10" fill="{fill}"/>')
            out.append(_text(x + 14, 31, name))
            x += 20 + 7 * len(name)
    out.append(_axes(left, top, w, h))
    out.append(_text(left - 4, top + 4, num(top_total), "end"))
    out.append(_text(left - 4, top + h, "0", "end"))
    out.append(_text(12, top + h / 2, ylabel, "middle", f' transform="rotate(-90 12 {top + h / 2:.1f})"'))
    out.append("</svg>")
    return "\n".join(out)


def heatmap(
    fig_id: str,
    matrix: np.ndarray | Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> str:
    """A cell per value, row by row (row 0 at the top); colour from vmin to vmax (default: the data's range).
    Also the similarity matrices (square, the same labels both ways)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix of shape {m.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    rows, cols = m.shape
    finite = m[np.isfinite(m)]
    lo = float(finite.min()) if vmin is None and finite.size else (vmin or 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else (vmax if vmax is not None else 1.0)
    span = hi - lo if hi > lo else 1.0
    label_w = 8.0 + 6.5 * max([len(s) for s in row_labels] + [1])
    left, top = min(label_w, 140.0), 24.0
    cw = min(28.0, (WIDTH - left - 70) / max(1, cols))
    ch = min(18.0, max(2.0, 420.0 / max(1, rows)))
    w, h = cw * cols, ch * rows
    col_text = max([len(s) for s in col_labels] + [1])
    bottom = 10 + min(90.0, 6.0 * col_text)
    width = max(WIDTH, left + w + 70)
    out = _open(fig_id, title, width, top + h + bottom + 8)
    for r in range(rows):
        for c in range(cols):
            v = m[r, c]
            out.append(
                f'<rect x="{left + c * cw:.2f}" y="{top + r * ch:.2f}" width="{cw:.2f}" height="{ch:.2f}"'
                f' fill="{colour((v - lo) / span)}" data-value="{num(v)}"><title>{escape(row_labels[r])},'
                f" {escape(col_labels[c])}: {num(v)}</title></rect>"
            )
    row_every = max(1, math.ceil(FONT / ch))
    for r in range(0, rows, row_every):
        out.append(_text(left - 4, top + (r + 0.5) * ch + 4, row_labels[r], "end"))
    col_every = max(1, math.ceil(FONT / cw))
    for c in range(0, cols, col_every):
        x, y = left + (c + 0.5) * cw, top + h + 6
        out.append(_text(x, y, col_labels[c], "end", f' transform="rotate(-60 {x:.1f} {y:.1f})"'))
    # The colour scale: low at the bottom, high at the top.
    lx, steps = left + w + 16, 24
    for i in range(steps):
        out.append(
            f'<rect x="{lx:.1f}" y="{top + (steps - 1 - i) * h / steps:.2f}" width="12" height="{h / steps + 0.3:.2f}"'
            f' fill="{colour(i / (steps - 1))}"/>'
        )
    out.append(_text(lx + 16, top + 8, num(hi)))
    out.append(_text(lx + 16, top + h, num(lo)))
    out.append("</svg>")
    return "\n".join(out)


def icicle(fig_id: str, nodes: Sequence[TreeNode], total: int, title: str) -> str:
    """A cluster tree as bands: depth d is band d, a node spans its rows' share of the width under its parent's
    span. Nodes narrower than a pixel are drawn a pixel wide; each carries its size."""
    depth = max([n.depth for n in nodes] + [0]) + 1
    left, top, w = 8.0, 24.0, WIDTH - 16.0
    band = min(40.0, 360.0 / depth)
    out = _open(fig_id, title, WIDTH, top + band * depth + 20)
    px = w / max(1, total)
    for n in nodes:
        x, nw = left + n.start * px, max(1.0, n.size * px)
        shade = colour(0.15 + 0.7 * (n.depth / max(1, depth - 1)))
        label = f"{n.label} " if n.label else ""
        out.append(
            f'<rect x="{x:.2f}" y="{top + n.depth * band:.2f}" width="{nw:.2f}" height="{band - 2:.2f}"'
            f' fill="{shade}" stroke="#fff" stroke-width="0.5" data-size="{n.size}" data-depth="{n.depth}">'
            f"<title>{escape(label)}depth {n.depth}: {n.size} rows</title></rect>"
        )
        if nw > 7 * len(str(n.size)) + 4 and band >= 14:
            out.append(_text(x + nw / 2, top + n.depth * band + band / 2 + 3, str(n.size), "middle", ' fill="#fff"'))
    out.append(_text(left, top + band * depth + 14, f"depth 0 (top) to {depth - 1}; width: share of {total} rows"))
    out.append("</svg>")
    return "\n".join(out)
