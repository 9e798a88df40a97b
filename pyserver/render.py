"""Reports (nested dicts and lists, as the commands build them) as text a person reads: indented `key: value`
lines for the terminal, or Markdown for the editor's preview. `--json` gives the data itself."""

from __future__ import annotations

from typing import Any

Scalar = (str, int, float, bool, type(None))


def _label(key: str) -> str:
    return key.replace("_", " ")


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _flat_list(v: list[Any]) -> bool:
    return all(isinstance(x, Scalar) for x in v)


def as_text(obj: Any, indent: int = 0) -> str:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{_label(str(k))}:")
                lines.append(as_text(v, indent + 1))
            elif isinstance(v, list) and v and not _flat_list(v):
                lines.append(f"{pad}{_label(str(k))}:")
                lines.append(as_text(v, indent + 1))
            elif isinstance(v, list):
                lines.append(f"{pad}{_label(str(k))}: {', '.join(_scalar(x) for x in v) or '-'}")
            else:
                lines.append(f"{pad}{_label(str(k))}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = as_text(item, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(obj)}")
    return "\n".join(line for line in lines if line)


def as_markdown(title: str, obj: dict[str, Any]) -> str:
    """Top-level keys become sections; nested data becomes bullet lists."""
    out = [f"# {title}", ""]
    for k, v in obj.items():
        out.append(f"## {_label(str(k)).capitalize()}")
        out.append("")
        if isinstance(v, (dict, list)):
            out.append(_md(v, 0))
        else:
            out.append(_scalar(v))
        out.append("")
    return "\n".join(out)


def _md(obj: Any, depth: int) -> str:
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v and not (isinstance(v, list) and _flat_list(v)):
                lines.append(f"{pad}- **{_label(str(k))}**:")
                lines.append(_md(v, depth + 1))
            elif isinstance(v, list):
                lines.append(f"{pad}- **{_label(str(k))}**: {', '.join(f'`{_scalar(x)}`' for x in v) or '-'}")
            else:
                lines.append(f"{pad}- **{_label(str(k))}**: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            lines.append(_md(item, depth) if isinstance(item, dict) else f"{pad}- {_scalar(item)}")
            if isinstance(item, dict):
                lines.append("")
    else:
        lines.append(f"{pad}{_scalar(obj)}")
    return "\n".join(line for line in lines if line is not None)
