"""evidence.json as published: what the notebook wrote, or rebuilt from what is known when it could not,
with the run's status, error and timing."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from propflow_ops import __version__
from propflow_ops import incident as incident_mod
from propflow_ops.findings import SCHEMA, iso, jsonable, utcnow
from propflow_ops.redact import redact, redact_text
from propflow_ops.runbooks import Runbook


def final_evidence(
    rb: Runbook, params: Mapping[str, Any], workdir: Path, error: str | None, started: datetime, t0: float
) -> dict[str, Any]:
    """evidence.json as the notebook left it, or rebuilt from what is known when it could not."""
    path = workdir / "evidence.json"
    ev: dict[str, Any] | None = None
    if path.exists():
        try:
            ev = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            ev = None
    if ev is None:
        sev = str(params["severity"])
        started_at = incident_mod.parse_time(str(params["started_at"]))
        clock = incident_mod.clock(str(params["incident_id"]), sev, started_at)
        ev = {
            "schema": SCHEMA,
            "runbook": rb.slug,
            "title": rb.title,
            "status": "error",
            "incident": {
                k: clock[k] for k in ("id", "severity", "started_at", "response_due_at", "escalation_due")
            },
            "run": {"target": {}},
            "parameters": redact(jsonable(dict(params))),
            "findings": [],
            "actions": [],
            "recommended_runbooks": [],
        }
    if error:
        ev["status"] = "error"
        ev["error"] = redact_text(error)
    elif ev.get("status") not in ("ok", "problems"):
        ev["status"] = "error"
        ev["error"] = "the notebook did not reach its summary"
    finished = utcnow()
    run = ev.setdefault("run", {})
    run.update(
        {
            "started_at": iso(started),
            "finished_at": iso(finished),
            "duration_s": round(time.monotonic() - t0, 3),
            "propflow_ops_version": __version__,
        }
    )
    run.setdefault("target", {})
    return redact(ev)
