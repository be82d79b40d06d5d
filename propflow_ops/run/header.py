"""report.html: the header above the notebook (status, incident clock, change control, findings table,
error, recommended runbooks, remediation), masked."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops import run_context
from propflow_ops.change import runs as change_runs
from propflow_ops.findings import Finding, FindingsTable
from propflow_ops.redact import redact_text


def export_html(nb: nbformat.NotebookNode, evidence: Mapping[str, Any], dest: Path) -> None:
    """report.html: inputs hidden, the findings table first."""
    dest.write_text(html_report(nb, evidence), encoding="utf-8")


def html_report(nb: nbformat.NotebookNode, evidence: Mapping[str, Any]) -> str:
    """The text of report.html (masked)."""
    findings = [
        Finding(f["code"], f["status"], f.get("title", ""), f.get("detail", ""), f.get("data") or {})
        for f in evidence.get("findings", [])
    ]
    inc = evidence.get("incident", {})
    head = (
        f"<h2>{_h(evidence.get('title', ''))}: {_h(str(evidence.get('status', '')).upper())}</h2>"
        + change_runs.html_block(evidence)
        + f"<p>Incident {_h(inc.get('id'))}, {_h(inc.get('severity'))}, started {_h(inc.get('started_at'))};"
        f" response due {_h(inc.get('response_due_at'))}; escalation due: {_h(inc.get('escalation_due') or 'none')}."
        f" Run {_h(evidence.get('run', {}).get('started_at'))} ({_h(evidence.get('run', {}).get('duration_s'))} s).</p>"
    )
    head += run_context.html(dict(evidence))
    head += FindingsTable(findings, title="Findings")._repr_html_()
    if evidence.get("error"):
        head += f'<p style="color:#b71c1c"><b>The runbook could not finish:</b> {_h(evidence["error"])}</p>'
    if evidence.get("recommended_runbooks"):
        reasons = evidence.get("recommendation_reasons") or {}
        items = "".join(
            f"<li><b>{_h(s)}</b>: {_h(reasons.get(s, ''))}</li>" for s in evidence["recommended_runbooks"]
        )
        head += f"<p>Recommended runbooks:</p><ol>{items}</ol>"
    if evidence.get("actions"):
        rows = "".join(
            f"<tr><td>{_h(a.get('step'))}</td><td>{_h(a.get('mode'))}</td>"
            # <pre>: a command's line breaks (two commands, a quoted newline) survive a copy from the page
            f'<td><pre style="margin:0;white-space:pre-wrap">{_h(a.get("command"))}</pre></td>'
            f"<td>{_h(a.get('detail'))}</td></tr>"
            for a in evidence["actions"]
        )
        head += f"<h3>Remediation</h3><table><tr><th>step</th><th>mode</th><th>command</th><th>detail</th></tr>{rows}</table>"
    from propflow_ops.report_html import render

    return redact_text(render(nb, redact_text(head), f"{evidence.get('title', '')}: {inc.get('id', '')}"))


def _h(value: Any) -> str:
    import html

    return html.escape("" if value is None else str(value))
