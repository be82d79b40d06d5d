"""report.html: the executed notebook's outputs (inputs hidden), with a head section placed first.

A small renderer of our own instead of nbconvert's HTMLExporter: the report must be ready seconds after the
run, and nbconvert's import and template load cost about a second per run (bench/bench_runs.py). Output
types rendered: markdown cells, stream text, text/html, text/markdown, image/png, image/svg+xml,
text/plain, and errors (traceback with terminal colours stripped).
"""

from __future__ import annotations

import html
import re
from typing import Any

import mistune

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_markdown = mistune.create_markdown(plugins=["table", "strikethrough", "task_lists"])

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
     max-width:1100px;margin:24px auto;padding:0 16px;color:#212121;background:#fff;line-height:1.45}
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.cell{margin:6px 0}.error pre{background:#ffebee;color:#b71c1c}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #e0e0e0;padding:2px 6px;text-align:left}
img{max-width:100%}.head{border-bottom:2px solid #e0e0e0;margin-bottom:16px;padding-bottom:8px}
"""


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def render_output(out: Any) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(_text(out.get('text')))}</pre>"
    if kind == "error":
        tb = _ANSI.sub("", "\n".join(out.get("traceback") or [f"{out.get('ename')}: {out.get('evalue')}"]))
        return f'<div class="error"><pre>{html.escape(tb)}</pre></div>'
    data = out.get("data") or {}
    if "text/html" in data:
        return _text(data["text/html"])
    if "image/png" in data:
        return f'<img alt="figure" src="data:image/png;base64,{_text(data["image/png"]).strip()}"/>'
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/markdown" in data:
        return str(_markdown(_text(data["text/markdown"])))
    if "text/plain" in data:
        return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def render(nb: Any, head_html: str, title: str) -> str:
    """The whole page: ``head_html`` first, then each cell's rendering (markdown, or code outputs only)."""
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f'<div class="head">{head_html}</div>',
    ]
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            parts.append(f'<div class="cell md">{_markdown(_text(cell.get("source")))}</div>')
        elif cell.get("cell_type") == "code":
            rendered = "".join(render_output(o) for o in cell.get("outputs", []))
            if rendered:
                parts.append(f'<div class="cell out">{rendered}</div>')
    parts.append("</body></html>")
    return "\n".join(parts)
