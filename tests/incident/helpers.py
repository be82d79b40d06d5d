"""Fabricated run folders and a fixed clock for the incident tests (no kernel)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from propflow_ops.run.folder import write_sums

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
ALICE = {"aws_arn": "arn:aws:iam::111122223333:user/alice", "user": "alice", "host": "laptop-a"}
BOB = {"aws_arn": "unknown", "user": "bob", "host": "laptop-b"}


def z(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fabricate_run(
    root: Path,
    incident: str,
    slug: str,
    at_min: float,
    findings: list[tuple[str, str]],
    *,
    recommended: tuple[str, ...] = (),
    operator: dict[str, Any] | None = None,
    actions: tuple[tuple[str, str, float], ...] = (),
    severity: str = "P0",
    detail: str = "",
) -> Path:
    begin = at(at_min)
    folder = root / incident / f"{begin.strftime('%Y%m%dT%H%M%SZ')}-{slug}"
    folder.mkdir(parents=True)
    evidence = {
        "schema": "propflow-ops.evidence/1",
        "runbook": slug,
        "title": slug,
        "status": "problems" if any(s == "fail" for _, s in findings) else "ok",
        "incident": {"id": incident, "severity": severity, "started_at": z(T0)},
        "run": {
            "started_at": z(begin),
            "finished_at": z(begin + timedelta(seconds=30)),
            "mode": "headless",
            "operator": operator or ALICE,
        },
        "parameters": {},
        "findings": [
            {"code": c, "status": s, "title": f"{c} title", "detail": detail or f"{c} detail", "data": {}}
            for c, s in findings
        ],
        "actions": [
            {"step": step, "mode": mode, "command": "aws ecs ...", "detail": "done", "at": z(at(m))}
            for step, mode, m in actions
        ],
        "recommended_runbooks": list(recommended),
        "recommendation_reasons": {r: f"because {r}" for r in recommended},
    }
    (folder / "evidence.json").write_text(json.dumps(evidence), encoding="utf-8")
    (folder / "report.ipynb").write_text('{"cells": []}', encoding="utf-8")
    write_sums(folder, ["report.ipynb", "evidence.json"])
    return folder
