"""Masking the executed notebook: secrets out of every cell's source and outputs (tracebacks with their
terminal colours), the injected parameters rewritten masked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops import __version__
from propflow_ops.findings import jsonable
from propflow_ops.redact import redact, redact_text
from propflow_ops.runbooks import Runbook


def sanitize_notebook(
    path: Path, rb: Runbook, params: Mapping[str, Any], error: str | None
) -> nbformat.NotebookNode:
    """Mask secrets everywhere in the executed notebook (sources and outputs); make sure it exists."""
    nb = None
    if path.exists():
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # noqa: BLE001 - a truncated notebook (full temporary disk): keep the runbook's
            error = (
                error + "; " if error else ""
            ) + f"the executed notebook could not be read: {type(exc).__name__}"
    if nb is None:
        nb = nbformat.read(str(rb.path), as_version=4)
    for cell in nb.cells:
        cell.source = redact_text(cell.source)
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "# Parameters\n" + "\n".join(f"{k} = {redact(v, k)!r}" for k, v in params.items())
        for out in cell.get("outputs", []):
            sanitize_output(out)
    pm_meta = nb.metadata.get("papermill") or {}
    if "parameters" in pm_meta:
        pm_meta["parameters"] = redact(jsonable(dict(pm_meta["parameters"])))
    nb.metadata.setdefault("propflow_ops", {})
    nb.metadata["propflow_ops"].update({"runbook": rb.slug, "version": __version__, "error": error})
    return nb


def sanitize_output(out: Any) -> None:
    if "text" in out:
        out["text"] = redact_text("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
    if "traceback" in out:
        out["traceback"] = [redact_coloured(t) for t in out["traceback"]]
    if "evalue" in out:
        out["evalue"] = redact_text(out["evalue"])
    data = out.get("data") or {}
    for mime in list(data):
        if mime.startswith("text/") or mime.endswith("json") or mime == "application/javascript":
            value = data[mime]
            if isinstance(value, str):
                data[mime] = redact_text(value)
            elif isinstance(value, list):
                data[mime] = redact_text("".join(value))
            else:
                data[mime] = redact(value)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def redact_coloured(text: str) -> str:
    """A traceback line with terminal colours: masked with its colours, unless a colour code splits a
    secret (then the colours go, the secret never shows)."""
    masked = redact_text(text)
    plain_masked = redact_text(_ANSI.sub("", text))
    return masked if _ANSI.sub("", masked) == plain_masked else plain_masked
