"""The incident's timeline: runs, problems seen and cleared, steps applied (the record's ``action`` events and
the runs' evidence), services recovered, and the incident record's own events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.findings import iso
from propflow_ops.incident import (
    recorded_time,
)
from propflow_ops.operator import label
from propflow_ops.redact import redact_text
from propflow_ops.review.load import RunRecord, action_events, mode_of, operator_of
from propflow_ops.review.model import FAILING, SERVICE_LABELS, Review, minutes_after

_RECORD_KINDS = {
    "opened": "incident opened",
    "override": "override",
    "ack": "acknowledged",
    "note": "note",
    "resolve": "resolved",
    "escalation": "escalation",
    "notify": "notification",
}


def record_events(record: Any) -> list[tuple[datetime, str, str]]:
    """(time, kind, what) for the timeline from the incident record: opening, overrides, acknowledgement,
    notes, escalations sent or failed, PagerDuty acknowledge/resolve, resolution (runs come from their folders)."""
    from propflow_ops.incident_cli import event_line

    out: list[tuple[datetime, str, str]] = []
    for e in record.events if record is not None else []:
        kind = str(e.get("event"))
        at = recorded_time(e.get("at"))
        if at is None or kind in ("run", "corrupt"):
            continue
        name = _RECORD_KINDS.get(kind, kind)
        if kind == "escalation":
            name = f"escalation {e.get('status')}"
        if kind == "action":
            name, what = action_event_text(e)
        else:
            what = event_line(e).split(" ", 1)[1]  # without the leading time
        out.append((at, name, what))
    return out


def action_event_text(e: Mapping[str, Any]) -> tuple[str, str]:
    """(timeline kind, what) of one ``action`` event."""
    phase, mode = str(e.get("phase") or ""), str(e.get("mode") or "")
    kind = "action started" if phase == "started" else f"action {mode or phase}"
    who = e.get("by_label") or label(e.get("by"))
    what = f"{e.get('step')}" + (f" ({e.get('runbook')})" if e.get("runbook") else "")
    what += f": {e.get('detail') or e.get('command') or ''}"
    if e.get("reason"):
        what += f"; reason: {e.get('reason')}"
    if phase != "started" and e.get("verification"):
        what += f"; verification: {_verification_text(e)}"
    return kind, what + (f"; by {who}" if who else "")


def _verification_text(e: Mapping[str, Any]) -> str:
    v = e.get("verification")
    if isinstance(v, Mapping):
        return f"{'verified' if e.get('verified') else 'not verified'}: {v.get('seen', '')}"
    return str(v)


def changes_table(review: Review) -> pd.DataFrame:
    """Every step applied during the incident: from the record (before/after events; a step whose end was never
    written says so: the tab was closed or the kernel died mid-step) and from runs' evidence the record lacks."""
    rows: list[dict[str, Any]] = []
    events = action_events(review.record)
    ended = [e for e in events if e.get("phase") != "started"]
    for e in events:
        if e.get("phase") == "started":
            done = any(
                x.get("step") == e.get("step")
                and x.get("by_label") == e.get("by_label")
                and str(x.get("at") or "") >= str(e.get("at") or "")
                for x in ended
            )
            if done:
                continue
            outcome = "started, no end recorded (tab closed or kernel died mid-step?)"
        else:
            outcome = str(e.get("mode") or e.get("phase"))
        rows.append(
            {
                "at": e.get("at"),
                "step": e.get("step"),
                "runbook": e.get("runbook") or "",
                "outcome": outcome,
                "by": e.get("by_label") or label(e.get("by")),
                "how": e.get("run_mode") or "",
                "reason": e.get("reason") or "",
                "verification": _verification_text(e) if e.get("verification") else "",
                "detail": e.get("detail") or "",
            }
        )
    recorded = recorded_actions(review.record)
    for r in review.analysed:
        for a in r.actions:
            if (
                a.get("mode") in ("executed", "failed")
                and (str(a.get("step")), str(a.get("at"))) not in recorded
            ):
                rows.append(
                    {
                        "at": a.get("at"),
                        "step": a.get("step"),
                        "runbook": r.slug,
                        "outcome": a.get("mode"),
                        "by": operator_of(r),
                        "how": mode_of(r),
                        "reason": a.get("reason") or "",
                        "verification": "",
                        "detail": a.get("detail") or "",
                    }
                )
    cols = ["at", "step", "runbook", "outcome", "by", "how", "reason", "verification", "detail"]
    return pd.DataFrame(sorted(rows, key=lambda x: str(x["at"])), columns=cols)


def recorded_actions(record: Any) -> set[tuple[str, str]]:
    """(step, at) of the actions the record holds: the same step in a run's evidence is not shown twice."""
    return {
        (str(e.get("step")), str(e.get("at"))) for e in action_events(record) if e.get("phase") != "started"
    }


def build_timeline(
    runs: Sequence[RunRecord],
    problems: pd.DataFrame,
    recovery: Mapping[str, Mapping[str, Any]],
    start: datetime | None,
    resolved_at: datetime | None,
    escalation: pd.DataFrame,
    record: Any = None,
    horizon_at: datetime | None = None,
) -> pd.DataFrame:
    """Every run (with who made it), problem seen and cleared, applied step, service recovered; with an
    incident record also its opening, acknowledgement, notes, escalations sent/failed and resolution."""
    events: list[dict[str, Any]] = []

    def add(at: datetime | None, kind: str, what: str, run: str = "") -> None:
        if at is not None:
            events.append({"at": at, "kind": kind, "what": redact_text(what), "run": run})

    if start is not None:
        add(
            start,
            "incident start",
            "incident started (from the incident record)"
            if record is not None
            else "incident started (from the runs' started_at)",
        )
    for at, kind, what in record_events(record):
        add(at, kind, what)
    recorded = recorded_actions(record)
    for r in runs:
        fails = sorted({f["code"] for f in r.findings if f.get("status") == FAILING})
        what = f"{r.slug}: {r.status}" + (f" ({len(fails)} fail)" if fails else "")
        if mode_of(r) != "headless":
            what += f" ({mode_of(r)} run)"
        who = operator_of(r)
        if who:
            what += f"; by {who}"
        recs = (r.evidence or {}).get("recommended_runbooks") or []
        if recs:
            what += "; recommends " + ", ".join(recs)
        add(r.started_at, "run", what, r.name)
        for a in r.actions:
            if (
                a.get("mode") in ("executed", "failed")
                and (str(a.get("step")), str(a.get("at"))) not in recorded
            ):
                add(
                    recorded_time(a.get("at")) or r.observed_at,
                    f"action {a.get('mode')}",
                    f"{a.get('step')}: {a.get('detail') or a.get('command') or ''}"
                    + (f"; by {who}" if who else ""),
                    r.name,
                )
    for _, p in problems.iterrows():
        add(
            p["first_seen_at"],
            "problem seen",
            f"{p['code']} ({p['runbook']}): {p['title']}",
            p["first_seen_in"],
        )
        if p["cleared_at"] is not None and not pd.isna(p["cleared_at"]):
            add(p["cleared_at"], "problem cleared", p["code"], p["cleared_in"] or "")
    for svc, s in recovery.items():
        if s["affected"] and s["recovered_at"] is not None:
            add(s["recovered_at"], "service recovered", SERVICE_LABELS.get(svc, svc), s["recovered_in"] or "")
    if resolved_at is not None:
        add(resolved_at, "all ok", "every check of the latest run is non-fail")
    last = max((r.observed_at for r in runs if r.observed_at), default=None)
    horizon = horizon_at or resolved_at or last
    for _, e in escalation.iterrows():
        due = recorded_time(e["due_at"])
        if due is not None and horizon is not None and due <= horizon:
            add(due, "escalation due", str(e["action"]))
    order = {
        "incident start": 0,
        "incident opened": 0,
        "escalation due": 1,
        "escalation sent": 1,
        "escalation failed": 1,
        "run": 2,
        "problem seen": 3,
        "action started": 4,
        "action executed": 4,
        "action failed": 4,
        "action refused": 4,
        "problem cleared": 5,
        "service recovered": 6,
        "all ok": 7,
        "resolved": 8,
    }
    events.sort(key=lambda e: (e["at"], order.get(e["kind"], 9)))
    df = pd.DataFrame(events, columns=["at", "kind", "what", "run"])
    df.insert(1, "t_plus_min", [minutes_after(t, start) for t in df["at"]])
    df["at"] = [iso(t) for t in df["at"]]
    return df
