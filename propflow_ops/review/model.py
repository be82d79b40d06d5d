"""What a review holds (:class:`Review`) and the words it judges in: the services of the Recovery Time
Objectives, what counts as failing, what is a symptom, minutes after the incident start."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.review.load import RunRecord

SERVICE_LABELS = {
    "api": "API",
    "database": "Database",
    "file-storage": "File Storage",
    "frontend": "Frontend",
    "notifications": "Notifications",
}
FAILING = "fail"


def service_of(code: str) -> str | None:
    """The service of the Recovery Time Objectives table a finding code belongs to (None: none)."""
    return codes.service_of(code)


def is_symptom(code: str) -> bool:
    """Triage's one-per-component codes summarise; the runbooks' codes name conditions."""
    return code.startswith("TRIAGE_")


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


def minutes_after(at: datetime | None, start: datetime | None) -> float | None:
    if at is None or start is None:
        return None
    return round((at - start).total_seconds() / 60, 1)
