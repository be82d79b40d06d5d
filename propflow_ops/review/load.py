"""The review's input, read back: the run folders of ``<output-dir>/<incident-id>/`` (each checked against
its ``SHA256SUMS``), and the incident record's ``action`` events."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from propflow_ops.incident import (
    recorded_time,
)
from propflow_ops.operator import label
from propflow_ops.run.folder import output_root, verify_sums

REVIEW_SLUG = "post-incident"
POSTMORTEM = "postmortem.md"
EVIDENCE_FILES = ("report.ipynb", "report.html", "evidence.json")


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
        runs = [
            p.name
            for p in inc.iterdir()
            if p.is_dir()
            and not p.name.startswith(".")
            and not p.name.split("-", 1)[-1].startswith(REVIEW_SLUG)
        ]
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


def mode_of(run: RunRecord) -> str:
    """How the run was made: headless (run), fleet (worker) or interactive (published from JupyterLab)."""
    return str(((run.evidence or {}).get("run") or {}).get("mode") or "headless")


def operator_of(run: RunRecord) -> str:
    """Who made the run (evidence.json ``run.operator``), as the review names people."""
    who = ((run.evidence or {}).get("run") or {}).get("operator")
    return label(who) if who else ""


def action_events(record: Any) -> list[dict[str, Any]]:
    """The incident record's ``action`` events: each applied step, written before it started and after it ended
    (headless runs and JupyterLab alike; a closed tab or a dead kernel still leaves them)."""
    return [e for e in (record.events if record is not None else []) if e.get("event") == "action"]
