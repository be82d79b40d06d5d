"""The post-incident review: everything the runs of one incident left, read back and judged.

Pure functions over the run folders of ``<output-dir>/<incident-id>/`` (CONTRACT.md section 4):

- every run folder is checked against its ``SHA256SUMS`` (tampered, missing and unlisted files);
- the timeline: each run, the first time each problem was seen, each remediation step executed,
  when each problem cleared and when everything was ok again;
- root causes: the ``fail`` codes of the runbooks (triage's per-component codes are symptoms) with
  their evidence;
- the Recovery Time Objectives per service (API 15 min, database 1 h, file storage 1 h, frontend
  5 min), from the incident start to the first run after the problem in which that service's codes
  were all non-fail; the database RPO from the ``db-connection`` evidence (``DB_RPO_AT_RISK``);
- the response time against the severity's target and the escalation steps that fell due;
- the Post-Incident Checklist, pre-filled where the evidence decides an item, the rest left for people.

An observation (a problem seen, a problem cleared) is dated by the finish of the run that reported
it: that is when the evidence existed. Actions carry their own time.

``review_main`` is ``propflow-ops review INCIDENT_ID``: it runs the ``post-incident`` notebook through
the runner (so the review is itself an evidence report) and the notebook writes ``postmortem.md``
beside its ``evidence.json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.findings import EVIDENCE_PATH_ENV, Finding, iso
from propflow_ops.incident import (
    OBJECTIVES,
    POST_INCIDENT_CHECKLIST,
    SEVERITIES,
    BadInput,
    Checklist,
    escalation_steps,
    recorded_time,
    rto_verdict,
)
from propflow_ops.operator import label
from propflow_ops.redact import redact_text
from propflow_ops.run.folder import output_root, verify_sums
from propflow_ops.run.request import RunRequest

REVIEW_SLUG = "post-incident"
POSTMORTEM = "postmortem.md"
EVIDENCE_FILES = ("report.ipynb", "report.html", "evidence.json")

SERVICE_LABELS = {"api": "API", "database": "Database", "file-storage": "File Storage", "frontend": "Frontend",
                  "notifications": "Notifications"}
FAILING = "fail"


def service_of(code: str) -> str | None:
    """The service of the Recovery Time Objectives table a finding code belongs to (None: none)."""
    return codes.service_of(code)


def is_symptom(code: str) -> bool:
    """Triage's one-per-component codes summarise; the runbooks' codes name conditions."""
    return code.startswith("TRIAGE_")


# ---------------------------------------------------------------- loading


@dataclass
class RunRecord:
    """One run folder of the incident, as found on disk."""

    name: str
    folder: Path
    slug: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    evidence: dict[str, Any] | None
    integrity: dict[str, str]
    problem: str | None = None  # why the evidence could not be read

    @property
    def observed_at(self) -> datetime | None:
        return self.finished_at or self.started_at

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list((self.evidence or {}).get("findings") or [])

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list((self.evidence or {}).get("actions") or [])

    @property
    def intact(self) -> bool:
        return all(state == "ok" for state in self.integrity.values())


def incident_folder(incident_id: str, output_dir: str | os.PathLike[str] | None = None) -> Path:
    return output_root(str(output_dir) if output_dir else None) / incident_id


def latest_incident(output_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The incident whose newest run is the most recent (the default when no incident is named)."""
    root = output_root(str(output_dir) if output_dir else None)
    if not root.is_dir():
        return None
    best: tuple[str, str] | None = None
    for inc in root.iterdir():
        if not inc.is_dir() or inc.name.startswith("."):
            continue
        runs = [p.name for p in inc.iterdir() if p.is_dir() and not p.name.startswith(".")
                and not p.name.split("-", 1)[-1].startswith(REVIEW_SLUG)]
        if runs and (best is None or max(runs) > best[0]):
            best = (max(runs), inc.name)
    return best[1] if best else None


def check_integrity(folder: Path) -> dict[str, str]:
    """file -> ok | tampered | missing (listed in SHA256SUMS) | unlisted (present but not covered)."""
    result = dict(verify_sums(folder))
    listed = set(result)
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != "SHA256SUMS" and p.name not in listed and not p.name.startswith("."):
            result[p.name] = "unlisted"
    return result


def load_run(folder: Path) -> RunRecord:
    integrity = check_integrity(folder)
    slug = folder.name.split("-", 1)[1] if "-" in folder.name else folder.name
    evidence: dict[str, Any] | None = None
    problem = None
    path = folder / "evidence.json"
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            evidence = loaded if isinstance(loaded, dict) else None
            if evidence is None:
                problem = "evidence.json is not a JSON object"
        except (OSError, ValueError) as exc:
            problem = f"evidence.json cannot be read: {type(exc).__name__}"
    else:
        problem = "evidence.json is missing"
    run = (evidence or {}).get("run") or {}
    if evidence and evidence.get("runbook"):
        slug = str(evidence["runbook"])
    return RunRecord(
        name=folder.name,
        folder=folder,
        slug=slug,
        status=str((evidence or {}).get("status") or "unreadable"),
        started_at=recorded_time(run.get("started_at")),
        finished_at=recorded_time(run.get("finished_at")),
        evidence=evidence,
        integrity=integrity,
        problem=problem,
    )


def load_runs(folder: Path) -> list[RunRecord]:
    """Every published run folder of the incident (temporary '.tmp-' folders are runs in progress), in time order."""
    if not folder.is_dir():
        return []
    runs = [load_run(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return sorted(runs, key=lambda r: (r.started_at is None, r.started_at or datetime.min, r.name))


# ---------------------------------------------------------------- the analysis


@dataclass
class Review:
    incident_id: str
    folder: Path
    runs: list[RunRecord] = field(default_factory=list)  # every run folder, the reviews included
    analysed: list[RunRecord] = field(default_factory=list)  # the runs the incident is judged on
    started_at: datetime | None = None
    started_at_given: bool = False
    severity: str = "P1"
    resolved_at: datetime | None = None
    integrity: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    timeline: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    root_causes: pd.DataFrame = field(default_factory=pd.DataFrame)
    recovery: dict[str, dict[str, Any]] = field(default_factory=dict)
    rto: pd.DataFrame = field(default_factory=pd.DataFrame)
    rpo: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    escalation: pd.DataFrame = field(default_factory=pd.DataFrame)
    checklist: pd.DataFrame = field(default_factory=pd.DataFrame)
    not_run: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    record: Any = None  # the incident record's state (propflow_ops.incident_record.IncidentState), if any
    resolved_by: str = ""  # who resolved it (the record), empty when resolution is read from the evidence
    follow_ups: pd.DataFrame = field(default_factory=pd.DataFrame)
    people: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)  # every applied step (record and evidence)

    @property
    def problem_files(self) -> pd.DataFrame:
        if self.integrity.empty:
            return self.integrity
        return self.integrity[self.integrity["state"].isin(["tampered", "missing"])]


def _minutes(at: datetime | None, start: datetime | None) -> float | None:
    if at is None or start is None:
        return None
    return round((at - start).total_seconds() / 60, 1)


def integrity_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    rows = [
        {"run": r.name, "file": name, "state": state}
        for r in runs
        for name, state in r.integrity.items()
    ]
    for r in runs:
        if r.problem and not any(row["run"] == r.name and row["file"] == "evidence.json"
                                 and row["state"] in ("missing", "tampered") for row in rows):
            rows.append({"run": r.name, "file": "evidence.json", "state": "unreadable"})
    return pd.DataFrame(rows, columns=["run", "file", "state"])


def incident_start(runs: Sequence[RunRecord]) -> tuple[datetime | None, bool]:
    """The incident start (earliest started_at in the evidence), and whether someone gave it.

    A run started without ``--started-at`` takes the moment its notebook began (after the runner started
    the run) as the incident start; an incident start before the first run was therefore given by someone.
    """
    starts = [t for r in runs if (t := recorded_time(((r.evidence or {}).get("incident") or {}).get("started_at")))]
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
        rows.append({
            "run": r.name,
            "runbook": r.slug,
            "mode": mode_of(r),
            "started_at": iso(r.started_at),
            "t_plus_min": _minutes(r.started_at, start),
            "status": r.status,
            "fails": ", ".join(fails),
            "executed": ", ".join(executed),
            "intact": r.intact,
        })
    return pd.DataFrame(rows, columns=["run", "runbook", "mode", "started_at", "t_plus_min", "status", "fails",
                                       "executed", "intact"])


def mode_of(run: RunRecord) -> str:
    """How the run was made: headless (run), fleet (worker) or interactive (published from JupyterLab)."""
    return str(((run.evidence or {}).get("run") or {}).get("mode") or "headless")


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
                        "code": code, "service": service_of(code) or "other", "first_seen_at": r.observed_at,
                        "first_seen_in": r.name, "runbook": r.slug, "title": f.get("title", ""),
                        "detail": f.get("detail", ""), "data": f.get("data") or {},
                        "last_failed_at": r.observed_at, "cleared_at": None, "cleared_in": None,
                    }
                else:
                    row.update(last_failed_at=r.observed_at, cleared_at=None, cleared_in=None)
            elif row is not None and row["cleared_at"] is None and status in ("ok", "warn"):
                row.update(cleared_at=r.observed_at, cleared_in=r.name)
    cols = ["code", "service", "first_seen_at", "first_seen_in", "runbook", "title", "detail", "data",
            "last_failed_at", "cleared_at", "cleared_in"]
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
            s = state.setdefault(svc, {"affected": False, "first_failed_at": None, "recovered_at": None,
                                       "recovered_in": None, "last_failed_at": None})
            if FAILING in statuses:
                if not s["affected"]:
                    s.update(affected=True, first_failed_at=r.observed_at)
                s.update(last_failed_at=r.observed_at, recovered_at=None, recovered_in=None)
            elif s["affected"] and s["recovered_at"] is None and any(x in ("ok", "warn") for x in statuses):
                s.update(recovered_at=r.observed_at, recovered_in=r.name)
    return state


def rto_table(recovery: Mapping[str, Mapping[str, Any]], start: datetime | None,
              resolved_at: datetime | None = None) -> pd.DataFrame:
    """Per service: recovery from the evidence (first run with its codes non-fail); a service the evidence
    never saw recover counts to the incident's resolution (``incident resolve``), when there is one."""
    rows = []
    for key in ("api", "database", "file-storage", "frontend", "notifications"):
        s = recovery.get(key)
        if key == "frontend":
            rows.append({"service": "Frontend", "rto_min": 5.0, "affected": None, "first_failed_at": None,
                         "recovered_at": None, "recovery_min": None,
                         "verdict": "not measured (no runbook checks the frontend)"})
            continue
        if key == "notifications":
            if s and s["affected"]:
                rows.append({"service": "Notifications", "rto_min": None, "affected": True,
                             "first_failed_at": iso(s["first_failed_at"]), "recovered_at": iso(s["recovered_at"]),
                             "recovery_min": _minutes(s["recovered_at"], start),
                             "verdict": "no RTO in the runbook document"
                             + ("" if s["recovered_at"] else "; not recovered")})
            continue
        label = OBJECTIVES[key].service
        rto_min = (OBJECTIVES[key].rto or timedelta(0)).total_seconds() / 60
        if not s or not s["affected"]:
            checked = "checked, never failed" if s else "not checked by any run"
            rows.append({"service": label, "rto_min": rto_min, "affected": False, "first_failed_at": None,
                         "recovered_at": None, "recovery_min": None, "verdict": f"not affected ({checked})"})
            continue
        recovered, note = s["recovered_at"], ""
        if recovered is None and resolved_at is not None:
            recovered, note = resolved_at, " (at the incident's resolution)"
        if start is None:
            verdict: dict[str, Any] = {"verdict": "unknown (no incident start)", "recovery_min": None}
        else:
            verdict = rto_verdict(key, start, recovered)
        rows.append({"service": label, "rto_min": rto_min, "affected": True,
                     "first_failed_at": iso(s["first_failed_at"]), "recovered_at": iso(recovered),
                     "recovery_min": verdict.get("recovery_min"), "verdict": verdict["verdict"] + note})
    return pd.DataFrame(rows, columns=["service", "rto_min", "affected", "first_failed_at", "recovered_at",
                                       "recovery_min", "verdict"])


def rpo_check(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The database RPO (5 min) from the db-connection evidence: DB_RPO_AT_RISK, the latest run that checked it."""
    seen = [(r, f) for r in runs for f in r.findings if f.get("code") == "DB_RPO_AT_RISK"]
    objective = OBJECTIVES["database"].rpo_text
    if not seen:
        return {"service": "Database", "rpo": objective, "verdict": "not checked",
                "detail": "no db-connection run checked the backups (DB_RPO_AT_RISK)", "data": {}, "run": None}
    worst = next(((r, f) for r, f in seen if f.get("status") == FAILING), None)
    run, finding = worst or seen[-1]
    status = str(finding.get("status"))
    verdict = {"fail": "at risk", "warn": "at risk", "ok": "met"}.get(status, f"could not be checked ({status})")
    return {"service": "Database", "rpo": objective, "verdict": verdict, "status": status,
            "detail": finding.get("detail") or finding.get("title", ""), "data": finding.get("data") or {},
            "run": run.name}


def resolved_time(runs: Sequence[RunRecord]) -> datetime | None:
    """When everything was ok again: the first run after the last run with a fail, if it has none."""
    last_fail = max((i for i, r in enumerate(runs) if any(f.get("status") == FAILING for f in r.findings)),
                    default=None)
    if last_fail is None:
        return None
    for r in runs[last_fail + 1:]:
        if r.status == "ok":
            return r.observed_at
    return None


def response_check(runs: Sequence[RunRecord], start: datetime | None, severity: str,
                   given: bool, ack_at: datetime | None = None, ack_by: str = "") -> dict[str, Any]:
    """The response time: to the acknowledgement in the incident record; without one, to the first run."""
    sev = SEVERITIES[severity]
    target_min = sev.response.total_seconds() / 60
    if ack_at is not None and start is not None:
        took = _minutes(ack_at, start) or 0.0
        return {"severity": severity, "label": sev.label, "target_min": target_min, "response_min": took,
                "measured_to": f"acknowledgement by {ack_by}", "acknowledged_at": iso(ack_at),
                "verdict": "met" if took <= target_min else "missed"}
    first = next((r for r in runs if r.started_at), None)
    if first is None or start is None:
        return {"severity": severity, "target_min": target_min, "response_min": None, "verdict": "no runs"}
    took = _minutes(first.started_at, start) or 0.0
    note = "" if given else (" (no --started-at was given: the first run is the incident start, so the"
                             " response time is 0 by construction)")
    return {"severity": severity, "label": sev.label, "target_min": target_min, "response_min": took,
            "measured_to": "the first run (no acknowledgement recorded: `propflow-ops incident ack`)",
            "first_run": first.name, "first_run_at": iso(first.started_at),
            "verdict": ("met" if took <= target_min else "missed") + note}


def escalation_table(severity: str, start: datetime | None, resolved_at: datetime | None,
                     last_seen: datetime | None, record: Any = None) -> pd.DataFrame:
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
            fell = ("yes (incident not resolved)" if last_seen and due <= last_seen
                    else "not yet at the last run (incident not resolved)")
        row = {"after_min": s["after_min"], "action": s["action"], "due_at": iso(due), "fell_due": fell}
        if record is not None:
            row["sent"] = _sent_text([e for e in record.escalations if e.get("step") == s["key"]])
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _sent_text(events: Sequence[Mapping[str, Any]]) -> str:
    sent = [f"{e.get('channel')} at {e.get('at')}" for e in events if e.get("status") == "sent"]
    failed = [f"{e.get('channel')} at {e.get('at')} ({e.get('error')})" for e in events if e.get("status") == "failed"]
    parts = ([f"sent: {', '.join(sent)}"] if sent else []) + ([f"failed: {', '.join(failed)}"] if failed else [])
    return "; ".join(parts) or "not sent"


def operator_of(run: RunRecord) -> str:
    """Who made the run (evidence.json ``run.operator``), as the review names people."""
    who = ((run.evidence or {}).get("run") or {}).get("operator")
    return label(who) if who else ""


_RECORD_KINDS = {"opened": "incident opened", "override": "override", "ack": "acknowledged", "note": "note",
                 "resolve": "resolved", "escalation": "escalation", "notify": "notification"}


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


def action_events(record: Any) -> list[dict[str, Any]]:
    """The incident record's ``action`` events: each applied step, written before it started and after it ended
    (headless runs and JupyterLab alike; a closed tab or a dead kernel still leaves them)."""
    return [e for e in (record.events if record is not None else []) if e.get("event") == "action"]


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
            done = any(x.get("step") == e.get("step") and x.get("by_label") == e.get("by_label")
                       and str(x.get("at") or "") >= str(e.get("at") or "") for x in ended)
            if done:
                continue
            outcome = "started, no end recorded (tab closed or kernel died mid-step?)"
        else:
            outcome = str(e.get("mode") or e.get("phase"))
        rows.append({"at": e.get("at"), "step": e.get("step"), "runbook": e.get("runbook") or "",
                     "outcome": outcome, "by": e.get("by_label") or label(e.get("by")),
                     "how": e.get("run_mode") or "", "reason": e.get("reason") or "",
                     "verification": _verification_text(e) if e.get("verification") else "",
                     "detail": e.get("detail") or ""})
    recorded = _recorded_actions(review.record)
    for r in review.analysed:
        for a in r.actions:
            if a.get("mode") in ("executed", "failed") and (str(a.get("step")), str(a.get("at"))) not in recorded:
                rows.append({"at": a.get("at"), "step": a.get("step"), "runbook": r.slug, "outcome": a.get("mode"),
                             "by": operator_of(r), "how": mode_of(r), "reason": a.get("reason") or "",
                             "verification": "", "detail": a.get("detail") or ""})
    cols = ["at", "step", "runbook", "outcome", "by", "how", "reason", "verification", "detail"]
    return pd.DataFrame(sorted(rows, key=lambda x: str(x["at"])), columns=cols)


def _recorded_actions(record: Any) -> set[tuple[str, str]]:
    """(step, at) of the actions the record holds: the same step in a run's evidence is not shown twice."""
    return {(str(e.get("step")), str(e.get("at"))) for e in action_events(record) if e.get("phase") != "started"}


def build_timeline(runs: Sequence[RunRecord], problems: pd.DataFrame, recovery: Mapping[str, Mapping[str, Any]],
                   start: datetime | None, resolved_at: datetime | None,
                   escalation: pd.DataFrame, record: Any = None,
                   horizon_at: datetime | None = None) -> pd.DataFrame:
    """Every run (with who made it), problem seen and cleared, applied step, service recovered; with an
    incident record also its opening, acknowledgement, notes, escalations sent/failed and resolution."""
    events: list[dict[str, Any]] = []

    def add(at: datetime | None, kind: str, what: str, run: str = "") -> None:
        if at is not None:
            events.append({"at": at, "kind": kind, "what": redact_text(what), "run": run})

    if start is not None:
        add(start, "incident start", "incident started (from the incident record)" if record is not None
            else "incident started (from the runs' started_at)")
    for at, kind, what in record_events(record):
        add(at, kind, what)
    recorded = _recorded_actions(record)
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
            if a.get("mode") in ("executed", "failed") and (str(a.get("step")), str(a.get("at"))) not in recorded:
                add(recorded_time(a.get("at")) or r.observed_at, f"action {a.get('mode')}",
                    f"{a.get('step')}: {a.get('detail') or a.get('command') or ''}" + (f"; by {who}" if who else ""),
                    r.name)
    for _, p in problems.iterrows():
        add(p["first_seen_at"], "problem seen", f"{p['code']} ({p['runbook']}): {p['title']}", p["first_seen_in"])
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
    order = {"incident start": 0, "incident opened": 0, "escalation due": 1, "escalation sent": 1,
             "escalation failed": 1, "run": 2, "problem seen": 3, "action started": 4, "action executed": 4,
             "action failed": 4, "action refused": 4,
             "problem cleared": 5, "service recovered": 6, "all ok": 7, "resolved": 8}
    events.sort(key=lambda e: (e["at"], order.get(e["kind"], 9)))
    df = pd.DataFrame(events, columns=["at", "kind", "what", "run"])
    df.insert(1, "t_plus_min", [_minutes(t, start) for t in df["at"]])
    df["at"] = [iso(t) for t in df["at"]]
    return df


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
        rows.append({"ticket": _ticket_text(str(c.code)), "from": f"{c.code} ({c.runbook}): {c.title}",
                     "evidence": f"{where}/evidence.json" if where else ""})
    for r in review.rto.itertuples() if not review.rto.empty else []:
        if str(r.verdict).startswith("missed"):  # recovered, but later than the objective
            rows.append({"ticket": f"Shorten {r.service} recovery: {r.verdict}, objective {r.rto_min:g} min",
                         "from": f"RTO {r.service}", "evidence": "this review"})
    resp = review.response
    if str(resp.get("verdict", "")).startswith("missed"):
        rows.append({"ticket": f"Response took {resp.get('response_min')} min against {resp.get('target_min'):g}: "
                               "check paging reaches the on-call engineer", "from": "response time",
                     "evidence": "incident record" if review.record is not None else "this review"})
    for x in review.not_run:
        rows.append({"ticket": f"Run {x['runbook']} (recommended, never run): {x['reason']}",
                     "from": f"recommended by {x['by']}", "evidence": f"{x['by']}/evidence.json"})
    if review.record is not None:
        failed = sorted({str(e.get("channel")) for e in review.record.escalations if e.get("status") == "failed"}
                        - {str(e.get("channel")) for e in review.record.escalations if e.get("status") == "sent"})
        for channel in failed:
            rows.append({"ticket": f"Fix the {channel} notification channel: escalations to it failed",
                         "from": "escalation", "evidence": "incident record"})
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
            text = {"ack": "acknowledged", "resolve": "resolved", "note": "wrote a note",
                    "override": f"changed {e.get('field')}", "escalation": "sent escalations"}.get(str(kind))
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
        rows["Root cause identified"] = ("open", "only triage's component summaries failed: run the runbooks it "
                                                 "recommended to name the condition")
    else:
        rows["Root cause identified"] = ("open", "no run reported a fail")
    affected = [r for r in review.rto.itertuples() if r.affected]
    impact = "; ".join(f"{r.service} from {r.first_failed_at} to {r.recovered_at or 'not recovered'}" for r in affected)
    rows["Impact documented"] = ("for people", f"affected per the evidence: {impact or 'none measured'}; "
                                               "users, data and money affected are for people to write")
    rows["Timeline created"] = (("done", f"{len(review.timeline)} events from {len(review.analysed)} runs "
                                          "(this review)") if review.analysed else ("open", "no runs"))
    recorded = _recorded_actions(review.record)
    executed = [(r.name, a) for r in review.analysed for a in r.actions if a.get("mode") == "executed"
                and (str(a.get("step")), str(a.get("at"))) not in recorded]
    executed += [("incident record", e) for e in action_events(review.record)
                 if e.get("phase") != "started" and e.get("mode") == "executed"]
    failed = [a["step"] for r in review.analysed for a in r.actions if a.get("mode") == "failed"]
    steps = ", ".join(str(a.get("step")) for _, a in executed)
    if executed and review.resolved_at is not None:
        rows["Fix implemented"] = ("done", f"executed: {steps}; everything ok again at {iso(review.resolved_at)}")
    elif executed:
        rows["Fix implemented"] = ("open", f"executed: {steps}, but the last runs still fail")
    elif review.resolved_at is not None:
        rows["Fix implemented"] = ("for people", "recovered, but no remediation step was executed through "
                                                 "propflow-ops: record the fix that was made")
    else:
        rows["Fix implemented"] = ("open", "no remediation step executed and not recovered")
    if failed:
        rows["Fix implemented"] = (rows["Fix implemented"][0],
                                   rows["Fix implemented"][1] + f"; failed steps: {', '.join(failed)}")
    errors = sorted({f"{f['code']} ({r.slug})" for r in review.analysed for f in r.findings
                     if f.get("status") == "error"})
    hint = []
    if errors:
        hint.append(f"checks that could not run: {', '.join(errors)}")
    if review.not_run:
        hint.append("recommended but never run: " + ", ".join(x["runbook"] for x in review.not_run))
    if not causes.empty and not (~causes["code"].map(is_symptom)).any():
        hint.append("no runbook named the condition")
    rows["Runbook updated"] = ("for people", "; ".join(hint) if hint else
                               "the runbooks found and showed the problem; update them if a step was missing")
    rows["Team debriefed"] = ("for people", "")
    n = len(review.follow_ups)
    rows["Follow-up tickets created"] = ("for people", f"suggested by the evidence: {n} ticket(s), listed under "
                                                       "'Follow-up tickets'" if n else "suggested by the evidence: none")
    return pd.DataFrame(
        [{"item": item, "state": rows[item][0], "evidence": redact_text(rows[item][1])}
         for item in POST_INCIDENT_CHECKLIST],
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
    review.response = response_check(review.analysed, start, review.severity, given, ack_at,
                                     label(review.record.acknowledged_by) if ack_at else "")
    last_seen = max((r.observed_at for r in review.analysed if r.observed_at), default=None)
    review.escalation = escalation_table(review.severity, start, review.resolved_at, last_seen, review.record)
    review.timeline = build_timeline(review.analysed, review.problems, review.recovery, start,
                                     all_ok_at, review.escalation, review.record, review.resolved_at)
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


# ---------------------------------------------------------------- findings and display


def findings(review: Review) -> list[Finding]:
    """What the review judges, as findings (every one present whatever its status)."""
    out: list[Finding] = []
    if not review.runs:
        reason = review.notes[0] if review.notes else "no runs"
        out.append(Finding.skipped("EVIDENCE_TAMPERED", "Evidence integrity (SHA256SUMS)", reason))
        out.append(Finding.skipped("INCIDENT_NOT_RESOLVED", "Everything ok again", reason))
        return out
    bad = review.problem_files
    unreadable = review.integrity[review.integrity["state"] == "unreadable"] if not review.integrity.empty else bad
    if not bad.empty or not unreadable.empty:
        listing = "; ".join(f"{r.run}/{r.file}: {r.state}" for r in pd.concat([bad, unreadable]).itertuples())
        out.append(Finding.fail("EVIDENCE_TAMPERED", "Evidence files changed or missing since the run wrote them",
                                listing, files=pd.concat([bad, unreadable]).to_dict(orient="records")))
    else:
        n = len(review.runs)
        out.append(Finding.ok("EVIDENCE_TAMPERED", "Evidence integrity (SHA256SUMS)",
                              f"every file of {n} run folder(s) matches its SHA256SUMS"))
    if review.resolved_at is not None:
        out.append(Finding.ok("INCIDENT_NOT_RESOLVED", "Resolved" if review.resolved_by else "Everything ok again",
                              f"at {iso(review.resolved_at)}, T+{_minutes(review.resolved_at, review.started_at)} min"
                              + (f", by {review.resolved_by}" if review.resolved_by else "")))
    elif review.problems.empty:
        out.append(Finding.ok("INCIDENT_NOT_RESOLVED", "No run reported a fail", "nothing to recover from"))
    else:
        out.append(Finding.fail("INCIDENT_NOT_RESOLVED", "The latest runs still report problems",
                                "no run after the last failing one is all ok"))
    for row in review.rto.itertuples():
        if row.service == "Notifications":
            continue
        code = f"RTO_{str(row.service).upper().replace(' ', '_')}_MISSED"
        title = f"{row.service} recovery time objective ({row.rto_min:g} min)"
        verdict = str(row.verdict)
        if verdict == "met":
            out.append(Finding.ok(code, title, f"recovered in {row.recovery_min} min", recovery_min=row.recovery_min))
        elif verdict in ("missed", "not recovered"):
            took = f"recovered in {row.recovery_min} min" if row.recovery_min is not None else "not recovered"
            out.append(Finding.fail(code, title, took, recovery_min=row.recovery_min))
        else:
            out.append(Finding.skipped(code, title, verdict))
    rpo = review.rpo
    if rpo["verdict"] == "at risk":
        out.append(Finding.fail("RPO_AT_RISK", "Database recovery point objective (5 min)", str(rpo["detail"]),
                                **dict(rpo.get("data") or {})))
    elif rpo["verdict"] == "met":
        out.append(Finding.ok("RPO_AT_RISK", "Database recovery point objective (5 min)", str(rpo["detail"])))
    else:
        out.append(Finding.skipped("RPO_AT_RISK", "Database recovery point objective (5 min)", str(rpo["detail"])))
    resp = review.response
    title = f"Response time for {resp['severity']} (target {resp['target_min']:g} min)"
    to = "acknowledged" if str(resp.get("measured_to", "")).startswith("acknowledgement") else "first run"
    if str(resp["verdict"]).startswith("missed"):
        out.append(Finding.fail("RESPONSE_TIME_MISSED", title, f"{to} after {resp['response_min']} min"))
    elif str(resp["verdict"]).startswith("met"):
        note = str(resp["verdict"])[3:].strip(" ()")
        out.append(Finding.ok("RESPONSE_TIME_MISSED", title, f"{to} after {resp['response_min']} min"
                              + (f" ({note})" if note else "")))
    else:
        out.append(Finding.skipped("RESPONSE_TIME_MISSED", title, str(resp["verdict"])))
    return out


def summary_text(review: Review) -> str:
    if not review.runs:
        return f"Nothing to review: {'; '.join(review.notes) or 'no runs'}."
    start = iso(review.started_at) or "unknown"
    resolved = (f"everything ok again at {iso(review.resolved_at)} (T+{_minutes(review.resolved_at, review.started_at)} min)"
                if review.resolved_at else "NOT resolved at the last run")
    causes = ", ".join(review.root_causes["code"]) if not review.root_causes.empty else "none reported"
    bad = len(review.problem_files)
    return (f"Incident {review.incident_id} ({review.severity}), started {start}"
            f"{'' if review.started_at_given else ' (no start given: first run)'}; {len(review.analysed)} runbook runs;"
            f" {resolved}. Problems: {causes}."
            + (f" {bad} evidence file(s) TAMPERED OR MISSING." if bad else " Evidence intact."))


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
        ax.text(0.5, 0.5, "no runs to show", ha="center", va="center", transform=ax.transAxes, color="#616161")
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    ypos = {lane: i for i, lane in enumerate(reversed(lanes))}
    last = max(r.observed_at for r in runs if r.observed_at)
    for svc, s in affected:
        y = ypos[SERVICE_LABELS.get(svc, svc)]
        end = s["recovered_at"] or last
        ax.barh(y, mdates.date2num(end) - mdates.date2num(review.started_at), left=mdates.date2num(review.started_at),
                height=0.5, color=STATUS_COLOURS["fail"], alpha=0.85 if s["recovered_at"] else 0.45,
                hatch=None if s["recovered_at"] else "//")
        ax.text(mdates.date2num(end), y, " recovered" if s["recovered_at"] else " not recovered",
                va="center", fontsize=8)
    colours = {"ok": STATUS_COLOURS["ok"], "problems": STATUS_COLOURS["fail"], "error": STATUS_COLOURS["error"]}
    for r in runs:
        if r.started_at is None:
            continue
        y = ypos[r.slug]
        end = r.finished_at or r.started_at
        ax.plot([num(r.started_at), num(end)], [y, y], color=colours.get(r.status, "#9e9e9e"), lw=6, solid_capstyle="butt")
        ax.plot([num(r.started_at)], [y], marker="o", color=colours.get(r.status, "#9e9e9e"), ms=7)
        for a in r.actions:
            if a.get("mode") in ("executed", "failed"):
                at = recorded_time(a.get("at")) or end
                ax.plot([num(at)], [y + 0.3], marker="v", color="#1565c0" if a["mode"] == "executed" else "#6a1b9a", ms=9)
                ax.annotate(str(a.get("step")), (mdates.date2num(at), y + 0.3), xytext=(4, 2),
                            textcoords="offset points", fontsize=7)
    ax.axvline(num(review.started_at), color="#424242", ls=":", lw=1)
    if review.resolved_at is not None:
        ax.axvline(num(review.resolved_at), color=STATUS_COLOURS["ok"], ls="--", lw=1.2, label="everything ok again")
    for e in review.escalation.itertuples():
        due = recorded_time(e.due_at)
        if due is not None and due <= (review.resolved_at or last):
            ax.axvline(num(due), color="#ef6c00", ls="-.", lw=1, label=f"escalation: {e.action}")
    ax.set_yticks(list(ypos.values()), list(ypos.keys()))
    ax.set_ylim(-0.7, len(lanes) - 0.2)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz="UTC"))
    ax.set_xlabel("UTC (bars: service failing from incident start; dots: runs coloured by status; v: actions)")
    ax.grid(True, axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return fig


def checklist_view(review: Review) -> Checklist:
    done = frozenset(review.checklist.loc[review.checklist["state"] == "done", "item"]) if not review.checklist.empty \
        else frozenset()
    return Checklist(done=done)


# ---------------------------------------------------------------- postmortem.md


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
        + ("" if review.started_at_given else " (no start time was given; the first run is taken as the start)"),
        (f"- Resolved: {iso(review.resolved_at)} by {review.resolved_by}" if review.resolved_by else
         f"- Everything ok again: {iso(review.resolved_at) or 'NOT RESOLVED at the last run'}")
        + (f" (T+{_minutes(review.resolved_at, review.started_at)} min)" if review.resolved_at else ""),
        f"- Runs reviewed: {len(review.analysed)}{_modes_text(review)}; evidence: "
        + (f"**{len(review.problem_files)} file(s) tampered or missing**" if len(review.problem_files)
           else "intact (every SHA256SUMS verified)"),
        "",
        "## Summary",
        "",
        summary_text(review),
        "",
        "## Root causes (fail codes and their evidence)",
        "",
        _md_table(review.root_causes, ["code", "runbook", "first_seen_at", "title", "detail", "evidence"])
        if not review.root_causes.empty else "_no run reported a fail_\n",
        "## Changes applied",
        "",
        _md_table(review.changes, ["at", "step", "runbook", "outcome", "by", "how", "reason", "verification"])
        if not review.changes.empty else "_no remediation step was applied_\n",
        "## Timeline (UTC)",
        "",
        _md_table(review.timeline, ["at", "t_plus_min", "kind", "what"]),
        "## Recovery Time Objectives",
        "",
        _md_table(review.rto, ["service", "rto_min", "first_failed_at", "recovered_at", "recovery_min", "verdict"]),
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
        "\n".join(f"- [ ] {t['ticket']} (from {t['from']}" + (f"; evidence: `{t['evidence']}`" if t["evidence"] else "")
                  + ")" for t in review.follow_ups.to_dict("records")) + "\n" if not review.follow_ups.empty
        else "_none suggested by the evidence_\n",
        "## People",
        "",
        _md_table(review.people) if not review.people.empty else "_no operator recorded_\n",
    ]
    if review.not_run:
        parts += ["## Recommended runbooks that were never run", "",
                  _md_table(pd.DataFrame(review.not_run)), ""]
    integrity = review.problem_files
    if not integrity.empty:
        parts += ["## Evidence integrity", "", _md_table(integrity), ""]
    parts += ["## Post-Incident Checklist", ""]
    for row in review.checklist.itertuples():
        box = "x" if row.state == "done" else " "
        tail = f" ({row.state})" if row.state != "done" else ""
        parts.append(f"- [{box}] {row.item}{tail}" + (f": {row.evidence}" if row.evidence else ""))
    parts += ["", f"_Generated by propflow-ops review from the run folders under `{review.folder.name}/`._", ""]
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
        return ("Interactive session: postmortem.md is written by `propflow-ops review "
                f"{review.incident_id or 'INCIDENT_ID'}`; the text is below.")
    path = Path(target).with_name(POSTMORTEM)
    path.write_text(postmortem_markdown(review), encoding="utf-8")
    return f"wrote {POSTMORTEM} beside this report ({len(path.read_text(encoding='utf-8').splitlines())} lines)"


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


# ---------------------------------------------------------------- the command


def review_request(incident_id: str, output_dir: str | None, html: bool = True,
                   env: Mapping[str, str] | None = None, read_from: Path | None = None) -> RunRequest:
    """The post-incident run over the incident's runs; BadInput when there is nothing to review.

    With an incident record the run takes its severity and start from it (nothing to override); without one
    (run folders from before the record existed) from the runs, and the review opens the record."""
    from propflow_ops import incident_record as ir

    folder = incident_folder(incident_id, str(read_from) if read_from else output_dir)
    if "/" in incident_id or incident_id.startswith(".") or not incident_id:
        raise BadInput(f"not an incident id: {incident_id!r}")
    runs = [r for r in load_runs(folder) if r.slug != REVIEW_SLUG]
    state = ir.load(ir.LocalStore(folder.parent), incident_id)
    recorded = state.exists
    if not runs and not action_events(state):  # steps applied in a lab session that never saved: reviewed
        raise BadInput(f"no runs of incident {incident_id} under {folder.parent}")
    start, _ = incident_start([r for r in runs if r.evidence is not None])
    return RunRequest(
        slug=REVIEW_SLUG,
        incident=incident_id,
        severity=None if recorded else incident_severity(runs),
        started_at=None if recorded or not start else iso(start),
        params=[("review_incident", incident_id)],
        output_dir=output_dir,
        html=html,
        announce=True,
        # the kernel reads the runs here (for the S3 store: its private copy of the incident's complete runs)
        env={**(env or {}), "PROPFLOW_OUTPUT_DIR": str(folder.parent)},
    )


def review_main(incident_id: str, output_dir: str | None, html: bool = True,
                env: Mapping[str, str] | None = None) -> int:
    """``propflow-ops review INCIDENT_ID``: the post-incident notebook over the incident's runs."""
    from propflow_ops import store as store_mod
    from propflow_ops.run.temporaries import private_workdir, sweep_temporaries
    from propflow_ops.runner import run

    loc = store_mod.location(output_dir)
    copy: Path | None = None
    try:
        if isinstance(loc, store_mod.S3Url):  # every run of the incident in the store, whoever made it
            sweep_temporaries(None)
            copy = private_workdir()
            got = store_mod.mirror(loc, incident_id, copy)
            if got["incomplete"]:
                print(f"propflow-ops: {len(got['incomplete'])} run folder(s) of {incident_id} in {loc} have no "
                      f"SHA256SUMS (incomplete, left out): {', '.join(got['incomplete'])}", file=sys.stderr)
        else:
            sweep_temporaries(loc)  # what dead runs left (also when there is nothing to review)
        try:
            req = review_request(incident_id, str(loc), html, env, read_from=copy)
        except BadInput as exc:
            print(f"propflow-ops: error: {exc}", file=sys.stderr)
            return 2
        result = run(req)
    finally:
        if copy is not None:
            import shutil

            shutil.rmtree(copy, ignore_errors=True)
    ev = result.evidence
    print(f"review of {incident_id}: {result.status}" + (f"; {result.error}" if result.error else ""))
    for f in ev.get("findings", []):
        if f["status"] in ("fail", "error"):
            print(f"  {f['status'].upper():5} {f['code']}: {f['title']}: {f.get('detail', '')}")
    pm = result.path / POSTMORTEM
    written = pm.exists() if isinstance(pm, Path) else store_mod.exists(pm)
    print(f"postmortem: {pm}" if written else "postmortem: not written (see the report)")
    print(result.path)
    return result.exit_code
