"""The review shown: the one-paragraph summary, the timeline figure, the checklist widget, and
``postmortem.md`` (markdown, masked)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from propflow_ops.findings import EVIDENCE_PATH_ENV, iso
from propflow_ops.incident import (
    SEVERITIES,
    Checklist,
    recorded_time,
)
from propflow_ops.redact import redact_text
from propflow_ops.review.load import POSTMORTEM, mode_of
from propflow_ops.review.model import SERVICE_LABELS, Review, minutes_after


def summary_text(review: Review) -> str:
    if not review.runs:
        return f"Nothing to review: {'; '.join(review.notes) or 'no runs'}."
    start = iso(review.started_at) or "unknown"
    resolved = (
        f"everything ok again at {iso(review.resolved_at)} (T+{minutes_after(review.resolved_at, review.started_at)} min)"
        if review.resolved_at
        else "NOT resolved at the last run"
    )
    causes = ", ".join(review.root_causes["code"]) if not review.root_causes.empty else "none reported"
    bad = len(review.problem_files)
    return (
        f"Incident {review.incident_id} ({review.severity}), started {start}"
        f"{'' if review.started_at_given else ' (no start given: first run)'}; {len(review.analysed)} runbook runs;"
        f" {resolved}. Problems: {causes}."
        + (f" {bad} evidence file(s) TAMPERED OR MISSING." if bad else " Evidence intact.")
    )


def timeline_figure(review: Review) -> Any:
    """Lanes per affected service (outage bars) and per runbook (run markers), escalation lines."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from propflow_ops.plots import STATUS_COLOURS

    def num(t: datetime) -> float:
        return float(mdates.date2num(t))

    runs = review.analysed
    affected = [(svc, s) for svc, s in review.recovery.items() if s["affected"]]
    slugs = list(dict.fromkeys(r.slug for r in runs))
    lanes = [SERVICE_LABELS.get(svc, svc) for svc, _ in affected] + slugs
    fig, ax = plt.subplots(figsize=(10, 0.5 * max(len(lanes), 1) + 1.6), facecolor="white")
    plt.close(fig)
    ax.set_title(f"Incident {review.incident_id}: timeline", loc="left", fontsize=11)
    if not runs or review.started_at is None:
        ax.text(
            0.5, 0.5, "no runs to show", ha="center", va="center", transform=ax.transAxes, color="#616161"
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    ypos = {lane: i for i, lane in enumerate(reversed(lanes))}
    last = max(r.observed_at for r in runs if r.observed_at)
    for svc, s in affected:
        y = ypos[SERVICE_LABELS.get(svc, svc)]
        end = s["recovered_at"] or last
        ax.barh(
            y,
            mdates.date2num(end) - mdates.date2num(review.started_at),
            left=mdates.date2num(review.started_at),
            height=0.5,
            color=STATUS_COLOURS["fail"],
            alpha=0.85 if s["recovered_at"] else 0.45,
            hatch=None if s["recovered_at"] else "//",
        )
        ax.text(
            mdates.date2num(end),
            y,
            " recovered" if s["recovered_at"] else " not recovered",
            va="center",
            fontsize=8,
        )
    colours = {
        "ok": STATUS_COLOURS["ok"],
        "problems": STATUS_COLOURS["fail"],
        "error": STATUS_COLOURS["error"],
    }
    for r in runs:
        if r.started_at is None:
            continue
        y = ypos[r.slug]
        end = r.finished_at or r.started_at
        ax.plot(
            [num(r.started_at), num(end)],
            [y, y],
            color=colours.get(r.status, "#9e9e9e"),
            lw=6,
            solid_capstyle="butt",
        )
        ax.plot([num(r.started_at)], [y], marker="o", color=colours.get(r.status, "#9e9e9e"), ms=7)
        for a in r.actions:
            if a.get("mode") in ("executed", "failed"):
                at = recorded_time(a.get("at")) or end
                ax.plot(
                    [num(at)],
                    [y + 0.3],
                    marker="v",
                    color="#1565c0" if a["mode"] == "executed" else "#6a1b9a",
                    ms=9,
                )
                ax.annotate(
                    str(a.get("step")),
                    (mdates.date2num(at), y + 0.3),
                    xytext=(4, 2),
                    textcoords="offset points",
                    fontsize=7,
                )
    ax.axvline(num(review.started_at), color="#424242", ls=":", lw=1)
    if review.resolved_at is not None:
        ax.axvline(
            num(review.resolved_at), color=STATUS_COLOURS["ok"], ls="--", lw=1.2, label="everything ok again"
        )
    for e in review.escalation.itertuples():
        due = recorded_time(e.due_at)
        if due is not None and due <= (review.resolved_at or last):
            ax.axvline(num(due), color="#ef6c00", ls="-.", lw=1, label=f"escalation: {e.action}")
    ax.set_yticks(list(ypos.values()), list(ypos.keys()))
    ax.set_ylim(-0.7, len(lanes) - 0.2)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz="UTC"))
    ax.set_xlabel(
        "UTC (bars: service failing from incident start; dots: runs coloured by status; v: actions)"
    )
    ax.grid(True, axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return fig


def checklist_view(review: Review) -> Checklist:
    done = (
        frozenset(review.checklist.loc[review.checklist["state"] == "done", "item"])
        if not review.checklist.empty
        else frozenset()
    )
    return Checklist(done=done)


def _md_table(df: pd.DataFrame, columns: Iterable[str] | None = None) -> str:
    if df.empty:
        return "_none_\n"
    cols = list(columns or df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            text = "" if v is None or (isinstance(v, float) and v != v) else str(v)
            cells.append(redact_text(text).replace("|", "\\|").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def postmortem_markdown(review: Review) -> str:
    """The post-mortem, ready to paste into a ticket."""
    sev = SEVERITIES.get(review.severity)
    parts = [
        f"# Post-mortem: incident {review.incident_id}",
        "",
        f"- Severity: {review.severity}" + (f" ({sev.label}: {sev.definition})" if sev else ""),
        f"- Started: {iso(review.started_at) or 'unknown'}"
        + (
            ""
            if review.started_at_given
            else " (no start time was given; the first run is taken as the start)"
        ),
        (
            f"- Resolved: {iso(review.resolved_at)} by {review.resolved_by}"
            if review.resolved_by
            else f"- Everything ok again: {iso(review.resolved_at) or 'NOT RESOLVED at the last run'}"
        )
        + (f" (T+{minutes_after(review.resolved_at, review.started_at)} min)" if review.resolved_at else ""),
        f"- Runs reviewed: {len(review.analysed)}{_modes_text(review)}; evidence: "
        + (
            f"**{len(review.problem_files)} file(s) tampered or missing**"
            if len(review.problem_files)
            else "intact (every SHA256SUMS verified)"
        ),
        "",
        "## Summary",
        "",
        summary_text(review),
        "",
        "## Root causes (fail codes and their evidence)",
        "",
        _md_table(review.root_causes, ["code", "runbook", "first_seen_at", "title", "detail", "evidence"])
        if not review.root_causes.empty
        else "_no run reported a fail_\n",
        "## Changes applied",
        "",
        _md_table(review.changes, ["at", "step", "runbook", "outcome", "by", "how", "reason", "verification"])
        if not review.changes.empty
        else "_no remediation step was applied_\n",
        "## Timeline (UTC)",
        "",
        _md_table(review.timeline, ["at", "t_plus_min", "kind", "what"]),
        "## Recovery Time Objectives",
        "",
        _md_table(
            review.rto, ["service", "rto_min", "first_failed_at", "recovered_at", "recovery_min", "verdict"]
        ),
        "Recovery is counted from the incident start to the first run after the problem in which every check of "
        "that service was no longer failing.",
        "",
        "## Recovery Point Objective (database)",
        "",
        f"- RPO {review.rpo.get('rpo')}: **{review.rpo.get('verdict')}**. {redact_text(str(review.rpo.get('detail', '')))}",
        "",
        "## Response and escalation",
        "",
        f"- Response target for {review.response.get('severity')}: {review.response.get('target_min'):g} min;"
        f" measured to {review.response.get('measured_to', 'the first run')}:"
        f" {review.response.get('response_min')} min: **{review.response.get('verdict')}**",
        "",
        _md_table(review.escalation),
        _policy_line(review),
        "",
        "## Follow-up tickets",
        "",
        "\n".join(
            f"- [ ] {t['ticket']} (from {t['from']}"
            + (f"; evidence: `{t['evidence']}`" if t["evidence"] else "")
            + ")"
            for t in review.follow_ups.to_dict("records")
        )
        + "\n"
        if not review.follow_ups.empty
        else "_none suggested by the evidence_\n",
        "## People",
        "",
        _md_table(review.people) if not review.people.empty else "_no operator recorded_\n",
    ]
    if review.not_run:
        parts += [
            "## Recommended runbooks that were never run",
            "",
            _md_table(pd.DataFrame(review.not_run)),
            "",
        ]
    integrity = review.problem_files
    if not integrity.empty:
        parts += ["## Evidence integrity", "", _md_table(integrity), ""]
    parts += ["## Post-Incident Checklist", ""]
    for row in review.checklist.itertuples():
        box = "x" if row.state == "done" else " "
        tail = f" ({row.state})" if row.state != "done" else ""
        parts.append(f"- [{box}] {row.item}{tail}" + (f": {row.evidence}" if row.evidence else ""))
    parts += [
        "",
        f"_Generated by propflow-ops review from the run folders under `{review.folder.name}/`._",
        "",
    ]
    return redact_text("\n".join(parts))


def _modes_text(review: Review) -> str:
    counts: dict[str, int] = {}
    for r in review.analysed:
        counts[mode_of(r)] = counts.get(mode_of(r), 0) + 1
    return " (" + ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) + ")" if counts else ""


def _policy_line(review: Review) -> str:
    from propflow_ops.incident import active_policy

    return active_policy().describe()


def write_postmortem(review: Review) -> str:
    """Write postmortem.md beside the run's evidence.json (headless runs); say where, or why not."""
    target = os.environ.get(EVIDENCE_PATH_ENV)
    if not target:
        return (
            "Interactive session: postmortem.md is written by `propflow-ops review "
            f"{review.incident_id or 'INCIDENT_ID'}`; the text is below."
        )
    path = Path(target).with_name(POSTMORTEM)
    path.write_text(postmortem_markdown(review), encoding="utf-8")
    return (
        f"wrote {POSTMORTEM} beside this report ({len(path.read_text(encoding='utf-8').splitlines())} lines)"
    )


class Markdown:
    """Displays markdown in JupyterLab and in report.html; plain text elsewhere."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def postmortem_view(review: Review) -> Markdown:
    return Markdown(postmortem_markdown(review))
