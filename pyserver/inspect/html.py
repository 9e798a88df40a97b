"""The reports as one self-contained HTML page: inline style, inline SVG figures, tables; no script, no link, no
external resource of any kind, and a content security policy that forbids them (`default-src 'none'`), so it
opens the same in a browser, from a file, and in the editor's webview."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from pyserver.inspect.svg import Figure

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font-family: var(--vscode-font-family, system-ui, sans-serif); font-size: 13px; margin: 16px 24px;
  color: var(--vscode-editor-foreground, #1e1e1e); background: var(--vscode-editor-background, #ffffff); }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; border-bottom: 1px solid #8884; }
p.note { max-width: 900px; line-height: 1.45; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #8885; padding: 2px 6px; text-align: right; }
th { background: #8882; } td.l, th.l { text-align: left; }
figure { display: inline-block; margin: 8px 12px 16px 0; vertical-align: top; }
figcaption { max-width: 640px; font-size: 12px; opacity: 0.85; }
svg.figure { background: #ffffff; color: #222222; border: 1px solid #8884; }
details { margin: 8px 0; } summary { cursor: pointer; }
"""


@dataclass
class TableData:
    headers: list[str]
    rows: list[list[object]]
    caption: str = ""


@dataclass
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[TableData] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    folded: bool = False  # tables inside <details> (long per-tensor tables)


def cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(t: TableData) -> str:
    head = "".join(f'<th class="{"l" if i == 0 else ""}">{escape(h)}</th>' for i, h in enumerate(t.headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if i == 0 else ""}">{escape(cell(v))}</td>' for i, v in enumerate(r))
        + "</tr>"
        for r in t.rows
    )
    caption = f"<caption>{escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, lines: Sequence[str], sections: Sequence[Section]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    out += [f'<p class="note">{escape(line)}</p>' for line in lines]
    for s in sections:
        out.append(f"<section><h2>{escape(s.title)}</h2>")
        out += [f'<p class="note">{escape(n)}</p>' for n in s.notes]
        tables = "".join(_table(t) for t in s.tables)
        if s.folded and tables:
            out.append(f"<details><summary>{len(s.tables)} table(s)</summary>{tables}</details>")
        else:
            out.append(tables)
        for f in s.figures:
            out.append(f"<figure>{f.svg}<figcaption>{escape(f.caption)}</figcaption></figure>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


_EXTERNAL = re.compile(r"(?i)https?:|<script|<link|<iframe|<object|<embed|\bsrc\s*=|@import|url\(")


def external_references(html: str) -> list[str]:
    """What in a page could load or run something (must be nothing)."""
    return sorted({m.group(0).lower() for m in _EXTERNAL.finditer(html)})
