"""The review's judgement over the loaded runs: root causes, recovery per service against its RTO, the
database RPO, response time and escalation, follow-up tickets, people, the checklist, and the findings;
:func:`build_review` puts it together."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.findings import Finding, iso
from propflow_ops.incident import (
    OBJECTIVES,
    POST_INCIDENT_CHECKLIST,
    SEVERITIES,
    escalation_steps,
    recorded_time,
    rto_verdict,
)
from propflow_ops.operator import label
from propflow_ops.redact import redact_text
from propflow_ops.review.load import (
    REVIEW_SLUG,
    RunRecord,
    action_events,
    incident_folder,
    latest_incident,
    load_runs,
    mode_of,
    operator_of,
)
from propflow_ops.review.model import FAILING, Review, is_symptom, minutes_after, service_of
from propflow_ops.review.timeline import build_timeline, changes_table, recorded_actions
from propflow_ops.run.folder import output_root


def integrity_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    rows = [
        {"run": r.name, "file": name, "state": state} for r in runs for name, state in r.integrity.items()
    ]
    for r in runs:
        if r.problem and not any(
            row["run"] == r.name
            and row["file"] == "evidence.json"
            and row["state"] in ("missing", "tampered")
            for row in rows
        ):
            rows.append({"run": r.name, "file": "evidence.json", "state": "unreadable"})
    return pd.DataFrame(rows, columns=["run", "file", "state"])


def incident_start(runs: Sequence[RunRecord]) -> tuple[datetime | None, bool]:
    """The incident start (earliest started_at in the evidence), and whether someone gave it.

    A run started without ``--started-at`` takes the moment its notebook began (after the runner started
    the run) as the incident start; an incident start before the first run was therefore given by someone.
    """
    starts = [
        t for r in runs if (t := recorded_time(((r.evidence or {}).get("incident") or {}).get("started_at")))
    ]
    first_run = min((r.started_at for r in runs if r.started_at), default=None)
    if not starts:
        return first_run, False
    start = min(starts)
    given = first_run is None or start < first_run
    return min(start, first_run) if first_run else start, given


def incident_severity(runs: Sequence[RunRecord]) -> str:
    sevs = [str(((r.evidence or {}).get("incident") or {}).get("severity") or "") for r in runs]
    known = sorted(s for s in sevs if s in SEVERITIES)
    return known[0] if known else "P1"


def runs_table(runs: Sequence[RunRecord], start: datetime | None) -> pd.DataFrame:
    rows = []
    for r in runs:
        fails = sorted({f["code"] for f in r.findings if f.get("status") == FAILING})
        executed = [a["step"] for a in r.actions if a.get("mode") == "executed"]
        rows.append(
            {
                "run": r.name,
                "runbook": r.slug,
                "mode": mode_of(r),
                "started_at": iso(r.started_at),
                "t_plus_min": minutes_after(r.started_at, start),
                "status": r.status,
                "fails": ", ".join(fails),
                "executed": ", ".join(executed),
                "intact": r.intact,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "run",
            "runbook",
            "mode",
            "started_at",
            "t_plus_min",
            "status",
            "fails",
            "executed",
            "intact",
        ],
    )


def problem_history(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per code that was ever fail: first seen, last seen failing, cleared (first non-fail after)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in runs:
        statuses: dict[str, str] = {}
        for f in r.findings:
            code, status = f.get("code"), f.get("status")
            if not code:
                continue
            if statuses.get(code) != FAILING:
                statuses[code] = str(status)
        for code, status in statuses.items():
            row = rows.get(code)
            if status == FAILING:
                if row is None:
                    f = next(x for x in r.findings if x.get("code") == code and x.get("status") == FAILING)
                    rows[code] = {
                        "code": code,
                        "service": service_of(code) or "other",
                        "first_seen_at": r.observed_at,
                        "first_seen_in": r.name,
                        "runbook": r.slug,
                        "title": f.get("title", ""),
                        "detail": f.get("detail", ""),
                        "data": f.get("data") or {},
                        "last_failed_at": r.observed_at,
                        "cleared_at": None,
                        "cleared_in": None,
                    }
                else:
                    row.update(last_failed_at=r.observed_at, cleared_at=None, cleared_in=None)
            elif row is not None and row["cleared_at"] is None and status in ("ok", "warn"):
                row.update(cleared_at=r.observed_at, cleared_in=r.name)
    cols = [
        "code",
        "service",
        "first_seen_at",
        "first_seen_in",
        "runbook",
        "title",
        "detail",
        "data",
        "last_failed_at",
        "cleared_at",
        "cleared_in",
    ]
    return pd.DataFrame(list(rows.values()), columns=cols)


def root_causes(problems: pd.DataFrame) -> pd.DataFrame:
    """The runbooks' fail codes with their evidence; triage's per-component symptoms only when nothing else."""
    if problems.empty:
        return problems
    named = problems[~problems["code"].map(is_symptom)]
    chosen = named if not named.empty else problems
    out = chosen[["code", "service", "runbook", "first_seen_at", "title", "detail", "data"]].copy()
    out["evidence"] = out["data"].map(lambda d: _brief(d))
    out["first_seen_at"] = out["first_seen_at"].map(iso)
    return out.drop(columns=["data"]).sort_values("first_seen_at", kind="stable").reset_index(drop=True)


def _brief(data: Mapping[str, Any], limit: int = 240, value_limit: int = 120) -> str:
    """The finding's data as ``key=value; ...``, never cut inside a value: a value too long to show whole
    is named by its size (the whole of it is in the run's evidence.json), and pairs past ``limit``
    characters are counted, not shown."""
    if not data:
        return ""
    parts = []
    for k, v in data.items():
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        if len(text) > value_limit:
            if isinstance(v, list):
                text = f"[{len(v)} items]"
            elif isinstance(v, dict):
                text = f"{{{len(v)} keys}}"
            else:
                text = f"({len(text)} characters)"
        parts.append(f"{k}={text}")
    shown: list[str] = []
    for part in parts:
        if shown and len("; ".join([*shown, part])) > limit:
            break
        shown.append(part)
    rest = len(parts) - len(shown)
    joined = "; ".join(shown) + (f"; and {rest} more in evidence.json" if rest else "")
    return redact_text(joined)


def service_recovery(runs: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Per service: first failed, recovered (first run after the last failing one with that service's codes
    all non-fail), and the run that showed it."""
    state: dict[str, dict[str, Any]] = {}
    for r in runs:
        per_service: dict[str, list[str]] = {}
        for f in r.findings:
            svc = service_of(str(f.get("code", "")))
            if svc:
                per_service.setdefault(svc, []).append(str(f.get("status")))
        for svc, statuses in per_service.items():
            s = state.setdefault(
                svc,
                {
                    "affected": False,
                    "first_failed_at": None,
                    "recovered_at": None,
                    "recovered_in": None,
                    "last_failed_at": None,
                },
            )
            if FAILING in statuses:
                if not s["affected"]:
                    s.update(affected=True, first_failed_at=r.observed_at)
                s.update(last_failed_at=r.observed_at, recovered_at=None, recovered_in=None)
            elif s["affected"] and s["recovered_at"] is None and any(x in ("ok", "warn") for x in statuses):
                s.update(recovered_at=r.observed_at, recovered_in=r.name)
    return state


def rto_table(
    recovery: Mapping[str, Mapping[str, Any]], start: datetime | None, resolved_at: datetime | None = None
) -> pd.DataFrame:
    """Per service: recovery from the evidence (first run with its codes non-fail); a service the evidence
    never saw recover counts to the incident's resolution (``incident resolve``), when there is one."""
    rows = []
    for key in ("api", "database", "file-storage", "frontend", "notifications"):
        s = recovery.get(key)
        if key == "frontend":
            rows.append(
                {
                    "service": "Frontend",
                    "rto_min": 5.0,
                    "affected": None,
                    "first_failed_at": None,
                    "recovered_at": None,
                    "recovery_min": None,
                    "verdict": "not measured (no runbook checks the frontend)",
                }
            )
            continue
        if key == "notifications":
            if s and s["affected"]:
                rows.append(
                    {
                        "service": "Notifications",
                        "rto_min": None,
                        "affected": True,
                        "first_failed_at": iso(s["first_failed_at"]),
                        "recovered_at": iso(s["recovered_at"]),
                        "recovery_min": minutes_after(s["recovered_at"], start),
                        "verdict": "no RTO in the runbook document"
                        + ("" if s["recovered_at"] else "; not recovered"),
                    }
                )
            continue
        label = OBJECTIVES[key].service
        rto_min = (OBJECTIVES[key].rto or timedelta(0)).total_seconds() / 60
        if not s or not s["affected"]:
            checked = "checked, never failed" if s else "not checked by any run"
            rows.append(
                {
                    "service": label,
                    "rto_min": rto_min,
                    "affected": False,
                    "first_failed_at": None,
                    "recovered_at": None,
                    "recovery_min": None,
                    "verdict": f"not affected ({checked})",
                }
            )
            continue
        recovered, note = s["recovered_at"], ""
        if recovered is None and resolved_at is not None:
            recovered, note = resolved_at, " (at the incident's resolution)"
        if start is None:
            verdict: dict[str, Any] = {"verdict": "unknown (no incident start)", "recovery_min": None}
        else:
            verdict = rto_verdict(key, start, recovered)
        rows.append(
            {
                "service": label,
                "rto_min": rto_min,
                "affected": True,
                "first_failed_at": iso(s["first_failed_at"]),
                "recovered_at": iso(recovered),
                "recovery_min": verdict.get("recovery_min"),
                "verdict": verdict["verdict"] + note,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "service",
            "rto_min",
            "affected",
            "first_failed_at",
            "recovered_at",
            "recovery_min",
            "verdict",
        ],
    )


def rpo_check(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The database RPO (5 min) from the db-connection evidence: DB_RPO_AT_RISK, the latest run that checked it."""
    seen = [(r, f) for r in runs for f in r.findings if f.get("code") == "DB_RPO_AT_RISK"]
    objective = OBJECTIVES["database"].rpo_text
    if not seen:
        return {
            "service": "Database",
            "rpo": objective,
            "verdict": "not checked",
            "detail": "no db-connection run checked the backups (DB_RPO_AT_RISK)",
            "data": {},
            "run": None,
        }
    worst = next(((r, f) for r, f in seen if f.get("status") == FAILING), None)
    run, finding = worst or seen[-1]
    status = str(finding.get("status"))
    verdict = {"fail": "at risk", "warn": "at risk", "ok": "met"}.get(
        status, f"could not be checked ({status})"
    )
    return {
        "service": "Database",
        "rpo": objective,
        "verdict": verdict,
        "status": status,
        "detail": finding.get("detail") or finding.get("title", ""),
        "data": finding.get("data") or {},
        "run": run.name,
    }


def resolved_time(runs: Sequence[RunRecord]) -> datetime | None:
    """When everything was ok again: the first run after the last run with a fail, if it has none."""
    last_fail = max(
        (i for i, r in enumerate(runs) if any(f.get("status") == FAILING for f in r.findings)), default=None
    )
    if last_fail is None:
        return None
    for r in runs[last_fail + 1 :]:
        if r.status == "ok":
            return r.observed_at
    return None


def response_check(
    runs: Sequence[RunRecord],
    start: datetime | None,
    severity: str,
    given: bool,
    ack_at: datetime | None = None,
    ack_by: str = "",
) -> dict[str, Any]:
    """The response time: to the acknowledgement in the incident record; without one, to the first run."""
    sev = SEVERITIES[severity]
    target_min = sev.response.total_seconds() / 60
    if ack_at is not None and start is not None:
        took = minutes_after(ack_at, start) or 0.0
        return {
            "severity": severity,
            "label": sev.label,
            "target_min": target_min,
            "response_min": took,
            "measured_to": f"acknowledgement by {ack_by}",
            "acknowledged_at": iso(ack_at),
            "verdict": "met" if took <= target_min else "missed",
        }
    first = next((r for r in runs if r.started_at), None)
    if first is None or start is None:
        return {"severity": severity, "target_min": target_min, "response_min": None, "verdict": "no runs"}
    took = minutes_after(first.started_at, start) or 0.0
    note = (
        ""
        if given
        else (
            " (no --started-at was given: the first run is the incident start, so the"
            " response time is 0 by construction)"
        )
    )
    return {
        "severity": severity,
        "label": sev.label,
        "target_min": target_min,
        "response_min": took,
        "measured_to": "the first run (no acknowledgement recorded: `propflow-ops incident ack`)",
        "first_run": first.name,
        "first_run_at": iso(first.started_at),
        "verdict": ("met" if took <= target_min else "missed") + note,
    }


def escalation_table(
    severity: str,
    start: datetime | None,
    resolved_at: datetime | None,
    last_seen: datetime | None,
    record: Any = None,
) -> pd.DataFrame:
    """The policy's steps for the severity: when each fell due, and (with an incident record) what was sent."""
    cols = ["after_min", "action", "due_at", "fell_due"] + (["sent"] if record is not None else [])
    if start is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for s in escalation_steps(severity, start):
        due = s["due_at"]
        if resolved_at is not None:
            fell = "yes, before recovery" if due <= resolved_at else "no: resolved before it fell due"
        else:
            fell = (
                "yes (incident not resolved)"
                if last_seen and due <= last_seen
                else "not yet at the last run (incident not resolved)"
            )
        row = {"after_min": s["after_min"], "action": s["action"], "due_at": iso(due), "fell_due": fell}
        if record is not None:
            row["sent"] = _sent_text([e for e in record.escalations if e.get("step") == s["key"]])
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _sent_text(events: Sequence[Mapping[str, Any]]) -> str:
    sent = [f"{e.get('channel')} at {e.get('at')}" for e in events if e.get("status") == "sent"]
    failed = [
        f"{e.get('channel')} at {e.get('at')} ({e.get('error')})"
        for e in events
        if e.get("status") == "failed"
    ]
    parts = ([f"sent: {', '.join(sent)}"] if sent else []) + (
        [f"failed: {', '.join(failed)}"] if failed else []
    )
    return "; ".join(parts) or "not sent"


def _ticket_text(code: str) -> str:
    """What to fix so a failing condition does not come back (the registry's ticket, else a generic one)."""
    text = codes.ticket(code)
    if text:
        return text
    return f"Find and remove the cause of {code}, and add a check or alarm that catches it earlier"


def follow_up_tickets(review: Review) -> pd.DataFrame:
    """Follow-up tickets the evidence suggests: one per failing root cause (with where its evidence is), one per
    missed objective, one per recommended runbook never run and one per escalation channel that failed."""
    rows: list[dict[str, str]] = []
    for c in review.root_causes.itertuples() if not review.root_causes.empty else []:
        where = next((p["first_seen_in"] for _, p in review.problems.iterrows() if p["code"] == c.code), "")
        rows.append(
            {
                "ticket": _ticket_text(str(c.code)),
                "from": f"{c.code} ({c.runbook}): {c.title}",
                "evidence": f"{where}/evidence.json" if where else "",
            }
        )
    for r in review.rto.itertuples() if not review.rto.empty else []:
        if str(r.verdict).startswith("missed"):  # recovered, but later than the objective
            rows.append(
                {
                    "ticket": f"Shorten {r.service} recovery: {r.verdict}, objective {r.rto_min:g} min",
                    "from": f"RTO {r.service}",
                    "evidence": "this review",
                }
            )
    resp = review.response
    if str(resp.get("verdict", "")).startswith("missed"):
        rows.append(
            {
                "ticket": f"Response took {resp.get('response_min')} min against {resp.get('target_min'):g}: "
                "check paging reaches the on-call engineer",
                "from": "response time",
                "evidence": "incident record" if review.record is not None else "this review",
            }
        )
    for x in review.not_run:
        rows.append(
            {
                "ticket": f"Run {x['runbook']} (recommended, never run): {x['reason']}",
                "from": f"recommended by {x['by']}",
                "evidence": f"{x['by']}/evidence.json",
            }
        )
    if review.record is not None:
        failed = sorted(
            {str(e.get("channel")) for e in review.record.escalations if e.get("status") == "failed"}
            - {str(e.get("channel")) for e in review.record.escalations if e.get("status") == "sent"}
        )
        for channel in failed:
            rows.append(
                {
                    "ticket": f"Fix the {channel} notification channel: escalations to it failed",
                    "from": "escalation",
                    "evidence": "incident record",
                }
            )
    return pd.DataFrame(rows, columns=["ticket", "from", "evidence"])


def people(review: Review) -> pd.DataFrame:
    """Everyone who acted, from the runs' evidence (run.operator, applied steps) and the incident record."""
    did: dict[str, list[str]] = {}

    def add(who: str, what: str) -> None:
        if who and what not in did.setdefault(who, []):
            did[who].append(what)

    record = review.record
    if record is not None:
        add(label(record.opened_by), f"opened the incident ({record.opened_via})")
    for r in review.analysed:
        who = operator_of(r)
        add(who, f"ran {r.slug}" + (f" ({mode_of(r)})" if mode_of(r) != "headless" else ""))
        for a in r.actions:
            if a.get("mode") in ("executed", "failed"):
                add(who, f"applied {a.get('step')} ({a.get('mode')})")
    if record is not None:
        for e in record.events:
            kind = e.get("event")
            text = {
                "ack": "acknowledged",
                "resolve": "resolved",
                "note": "wrote a note",
                "override": f"changed {e.get('field')}",
                "escalation": "sent escalations",
            }.get(str(kind))
            if kind == "action" and e.get("phase") != "started":
                text = f"applied {e.get('step')} ({e.get('mode')})"
            if text and e.get("by"):
                add(label(e["by"]), text)
    rows = [{"who": who, "did": ", ".join(what)} for who, what in did.items()]
    return pd.DataFrame(rows, columns=["who", "did"])


def checklist(review: Review) -> pd.DataFrame:
    """The runbook document's Post-Incident Checklist, pre-filled where the evidence decides."""
    rows: dict[str, tuple[str, str]] = {}
    causes = review.root_causes
    if not causes.empty and (~causes["code"].map(is_symptom)).any():
        codes = ", ".join(f"{c} ({rb})" for c, rb in zip(causes["code"], causes["runbook"], strict=True))
        rows["Root cause identified"] = ("done", f"fail codes with evidence: {codes}")
    elif not causes.empty:
        rows["Root cause identified"] = (
            "open",
            "only triage's component summaries failed: run the runbooks it recommended to name the condition",
        )
    else:
        rows["Root cause identified"] = ("open", "no run reported a fail")
    affected = [r for r in review.rto.itertuples() if r.affected]
    impact = "; ".join(
        f"{r.service} from {r.first_failed_at} to {r.recovered_at or 'not recovered'}" for r in affected
    )
    rows["Impact documented"] = (
        "for people",
        f"affected per the evidence: {impact or 'none measured'}; "
        "users, data and money affected are for people to write",
    )
    rows["Timeline created"] = (
        ("done", f"{len(review.timeline)} events from {len(review.analysed)} runs (this review)")
        if review.analysed
        else ("open", "no runs")
    )
    recorded = recorded_actions(review.record)
    executed = [
        (r.name, a)
        for r in review.analysed
        for a in r.actions
        if a.get("mode") == "executed" and (str(a.get("step")), str(a.get("at"))) not in recorded
    ]
    executed += [
        ("incident record", e)
        for e in action_events(review.record)
        if e.get("phase") != "started" and e.get("mode") == "executed"
    ]
    failed = [a["step"] for r in review.analysed for a in r.actions if a.get("mode") == "failed"]
    steps = ", ".join(str(a.get("step")) for _, a in executed)
    if executed and review.resolved_at is not None:
        rows["Fix implemented"] = (
            "done",
            f"executed: {steps}; everything ok again at {iso(review.resolved_at)}",
        )
    elif executed:
        rows["Fix implemented"] = ("open", f"executed: {steps}, but the last runs still fail")
    elif review.resolved_at is not None:
        rows["Fix implemented"] = (
            "for people",
            "recovered, but no remediation step was executed through "
            "propflow-ops: record the fix that was made",
        )
    else:
        rows["Fix implemented"] = ("open", "no remediation step executed and not recovered")
    if failed:
        rows["Fix implemented"] = (
            rows["Fix implemented"][0],
            rows["Fix implemented"][1] + f"; failed steps: {', '.join(failed)}",
        )
    errors = sorted(
        {f"{f['code']} ({r.slug})" for r in review.analysed for f in r.findings if f.get("status") == "error"}
    )
    hint = []
    if errors:
        hint.append(f"checks that could not run: {', '.join(errors)}")
    if review.not_run:
        hint.append("recommended but never run: " + ", ".join(x["runbook"] for x in review.not_run))
    if not causes.empty and not (~causes["code"].map(is_symptom)).any():
        hint.append("no runbook named the condition")
    rows["Runbook updated"] = (
        "for people",
        "; ".join(hint)
        if hint
        else "the runbooks found and showed the problem; update them if a step was missing",
    )
    rows["Team debriefed"] = ("for people", "")
    n = len(review.follow_ups)
    rows["Follow-up tickets created"] = (
        "for people",
        f"suggested by the evidence: {n} ticket(s), listed under 'Follow-up tickets'"
        if n
        else "suggested by the evidence: none",
    )
    return pd.DataFrame(
        [
            {"item": item, "state": rows[item][0], "evidence": redact_text(rows[item][1])}
            for item in POST_INCIDENT_CHECKLIST
        ],
        columns=["item", "state", "evidence"],
    )


def recommended_not_run(runs: Sequence[RunRecord]) -> list[dict[str, str]]:
    ran = {r.slug for r in runs}
    out: list[dict[str, str]] = []
    for r in runs:
        reasons = (r.evidence or {}).get("recommendation_reasons") or {}
        for slug in (r.evidence or {}).get("recommended_runbooks") or []:
            if slug not in ran and slug not in {x["runbook"] for x in out}:
                out.append({"runbook": slug, "reason": str(reasons.get(slug, "")), "by": r.name})
    return out


def build_review(incident_id: str = "", output_dir: str | os.PathLike[str] | None = None) -> Review:
    """Everything the review shows, from the run folders of one incident (empty id: the latest incident) and
    its incident record (start, severity, acknowledgement, resolution, notes, escalations, operators)."""
    from propflow_ops import incident_record as ir

    incident_id = incident_id or latest_incident(output_dir) or ""
    folder = incident_folder(incident_id, output_dir) if incident_id else output_root(None) / "-"
    runs = load_runs(folder) if incident_id else []
    review = Review(incident_id=incident_id, folder=folder, runs=runs)
    record = ir.load(ir.LocalStore(folder.parent), incident_id) if incident_id else None
    review.record = record if record is not None and record.exists else None
    review.analysed = [r for r in runs if r.slug != REVIEW_SLUG and r.evidence is not None]
    review.integrity = integrity_table(runs)
    start, given = incident_start(review.analysed)
    review.severity = incident_severity(review.analysed)
    if review.record is not None and review.record.started_at is not None:
        start, given = review.record.started_at, True
        review.severity = review.record.severity or review.severity
    review.started_at, review.started_at_given = start, given
    review.runs_table = runs_table(runs, start)
    review.problems = problem_history(review.analysed)
    review.root_causes = root_causes(review.problems)
    review.recovery = service_recovery(review.analysed)
    all_ok_at = resolved_time(review.analysed)
    review.resolved_at = all_ok_at
    if review.record is not None and review.record.resolved_at is not None:
        review.resolved_at = review.record.resolved_at
        review.resolved_by = label(review.record.resolved_by)
    review.rto = rto_table(review.recovery, start, review.resolved_at if review.resolved_by else None)
    review.rpo = rpo_check(review.analysed)
    ack_at = review.record.acknowledged_at if review.record is not None else None
    review.response = response_check(
        review.analysed,
        start,
        review.severity,
        given,
        ack_at,
        label(review.record.acknowledged_by) if ack_at else "",
    )
    last_seen = max((r.observed_at for r in review.analysed if r.observed_at), default=None)
    review.escalation = escalation_table(review.severity, start, review.resolved_at, last_seen, review.record)
    review.timeline = build_timeline(
        review.analysed,
        review.problems,
        review.recovery,
        start,
        all_ok_at,
        review.escalation,
        review.record,
        review.resolved_at,
    )
    review.not_run = recommended_not_run(review.analysed)
    review.people = people(review)
    review.changes = changes_table(review)
    review.follow_ups = follow_up_tickets(review)
    review.checklist = checklist(review)
    if not incident_id:
        review.notes.append("no incident named and none found in the output folder")
    elif not runs:
        review.notes.append(f"no run folders under {folder}")
    return review


def findings(review: Review) -> list[Finding]:
    """What the review judges, as findings (every one present whatever its status)."""
    out: list[Finding] = []
    if not review.runs:
        reason = review.notes[0] if review.notes else "no runs"
        out.append(Finding.skipped("EVIDENCE_TAMPERED", "Evidence integrity (SHA256SUMS)", reason))
        out.append(Finding.skipped("INCIDENT_NOT_RESOLVED", "Everything ok again", reason))
        return out
    bad = review.problem_files
    unreadable = (
        review.integrity[review.integrity["state"] == "unreadable"] if not review.integrity.empty else bad
    )
    if not bad.empty or not unreadable.empty:
        listing = "; ".join(f"{r.run}/{r.file}: {r.state}" for r in pd.concat([bad, unreadable]).itertuples())
        out.append(
            Finding.fail(
                "EVIDENCE_TAMPERED",
                "Evidence files changed or missing since the run wrote them",
                listing,
                files=pd.concat([bad, unreadable]).to_dict(orient="records"),
            )
        )
    else:
        n = len(review.runs)
        out.append(
            Finding.ok(
                "EVIDENCE_TAMPERED",
                "Evidence integrity (SHA256SUMS)",
                f"every file of {n} run folder(s) matches its SHA256SUMS",
            )
        )
    if review.resolved_at is not None:
        out.append(
            Finding.ok(
                "INCIDENT_NOT_RESOLVED",
                "Resolved" if review.resolved_by else "Everything ok again",
                f"at {iso(review.resolved_at)}, T+{minutes_after(review.resolved_at, review.started_at)} min"
                + (f", by {review.resolved_by}" if review.resolved_by else ""),
            )
        )
    elif review.problems.empty:
        out.append(Finding.ok("INCIDENT_NOT_RESOLVED", "No run reported a fail", "nothing to recover from"))
    else:
        out.append(
            Finding.fail(
                "INCIDENT_NOT_RESOLVED",
                "The latest runs still report problems",
                "no run after the last failing one is all ok",
            )
        )
    for row in review.rto.itertuples():
        if row.service == "Notifications":
            continue
        code = f"RTO_{str(row.service).upper().replace(' ', '_')}_MISSED"
        title = f"{row.service} recovery time objective ({row.rto_min:g} min)"
        verdict = str(row.verdict)
        if verdict == "met":
            out.append(
                Finding.ok(code, title, f"recovered in {row.recovery_min} min", recovery_min=row.recovery_min)
            )
        elif verdict in ("missed", "not recovered"):
            took = f"recovered in {row.recovery_min} min" if row.recovery_min is not None else "not recovered"
            out.append(Finding.fail(code, title, took, recovery_min=row.recovery_min))
        else:
            out.append(Finding.skipped(code, title, verdict))
    rpo = review.rpo
    if rpo["verdict"] == "at risk":
        out.append(
            Finding.fail(
                "RPO_AT_RISK",
                "Database recovery point objective (5 min)",
                str(rpo["detail"]),
                **dict(rpo.get("data") or {}),
            )
        )
    elif rpo["verdict"] == "met":
        out.append(Finding.ok("RPO_AT_RISK", "Database recovery point objective (5 min)", str(rpo["detail"])))
    else:
        out.append(
            Finding.skipped("RPO_AT_RISK", "Database recovery point objective (5 min)", str(rpo["detail"]))
        )
    resp = review.response
    title = f"Response time for {resp['severity']} (target {resp['target_min']:g} min)"
    to = "acknowledged" if str(resp.get("measured_to", "")).startswith("acknowledgement") else "first run"
    if str(resp["verdict"]).startswith("missed"):
        out.append(Finding.fail("RESPONSE_TIME_MISSED", title, f"{to} after {resp['response_min']} min"))
    elif str(resp["verdict"]).startswith("met"):
        note = str(resp["verdict"])[3:].strip(" ()")
        out.append(
            Finding.ok(
                "RESPONSE_TIME_MISSED",
                title,
                f"{to} after {resp['response_min']} min" + (f" ({note})" if note else ""),
            )
        )
    else:
        out.append(Finding.skipped("RESPONSE_TIME_MISSED", title, str(resp["verdict"])))
    return out
