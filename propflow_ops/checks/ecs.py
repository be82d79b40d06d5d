"""ECS checks: service state, deployments, stopped tasks (OOM), utilisation metrics.

Inputs are what ``aws ecs describe-services`` / ``describe-tasks`` return (dicts,
or the DataFrames the sources make of them) and metric frames (``timestamp``,
``value``). A fetch that failed is passed as the exception: the check returns
``Finding.error``. Pure: nothing here talks to AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.findings import Finding
from propflow_ops.results import takes_fetched

MEMORY_HIGH_PCT = 90.0
CPU_HIGH_PCT = 80.0
#: A utilisation metric is "high" when at least this many datapoints exceed the threshold
#: (one noisy minute is not an incident), or the latest one does.
MIN_BREACHING_POINTS = 3
OOM_EXIT_CODE = 137
OOM_MARKERS = ("outofmemory", "out of memory", "oomkilled")

TASK_COLUMNS = [
    "task",
    "task_definition",
    "last_status",
    "started_at",
    "stopped_at",
    "stop_code",
    "stopped_reason",
    "exit_codes",
    "container_reasons",
    "oom",
]


def _short(arn: Any) -> str:
    return str(arn or "").rsplit("/", 1)[-1]


def _records(rows: Any) -> list[dict[str, Any]]:
    if rows is None or isinstance(rows, BaseException):
        return []
    if isinstance(rows, pd.DataFrame):
        return [dict(r) for r in rows.to_dict(orient="records")]
    if isinstance(rows, Mapping):
        return [dict(rows)]
    return [dict(r) for r in rows]


def _is_oom(reason: str, exit_codes: Iterable[Any], container_reasons: Iterable[str]) -> bool:
    texts = [reason.lower(), *(str(r).lower() for r in container_reasons)]
    if any(m in t for t in texts for m in OOM_MARKERS):
        return True
    return any(_int(c) == OOM_EXIT_CODE for c in exit_codes)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def _from_container_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``sources.ecs.stopped_tasks`` rows (one per container) -> task dicts shaped like describe-tasks."""
    tasks: dict[str, dict[str, Any]] = {}
    for r in df.to_dict(orient="records"):
        arn = str(r.get("taskArn"))
        t = tasks.setdefault(
            arn,
            {
                k: r.get(k)
                for k in (
                    "taskArn",
                    "taskDefinitionArn",
                    "lastStatus",
                    "startedAt",
                    "stoppedAt",
                    "stopCode",
                    "stoppedReason",
                )
            }
            | {"containers": []},
        )
        t["containers"].append(
            {
                "name": r.get("container"),
                "exitCode": _int(r.get("exitCode")),
                "reason": r.get("reason") if isinstance(r.get("reason"), str) else None,
            }
        )
    return list(tasks.values())


@takes_fetched
def tasks_table(tasks: Any) -> pd.DataFrame:
    """One row per task with what matters for "why did it stop" (boto3 task dicts, or the
    one-row-per-container frame of ``sources.ecs.stopped_tasks``)."""
    if isinstance(tasks, pd.DataFrame) and set(TASK_COLUMNS) <= set(tasks.columns):
        return tasks[TASK_COLUMNS].copy()
    if isinstance(tasks, pd.DataFrame) and "taskArn" in tasks.columns and "exitCode" in tasks.columns:
        tasks = _from_container_rows(tasks)
    rows = []
    for t in _records(tasks):
        containers = t.get("containers") or []
        exit_codes = [c.get("exitCode") for c in containers if c.get("exitCode") is not None]
        reasons = [
            str(c.get("reason")) for c in containers if isinstance(c.get("reason"), str) and c.get("reason")
        ]
        reason = str(t.get("stoppedReason")) if isinstance(t.get("stoppedReason"), str) else ""
        rows.append(
            {
                "task": _short(t.get("taskArn") or t.get("task")),
                "task_definition": _short(t.get("taskDefinitionArn") or t.get("task_definition")),
                "last_status": t.get("lastStatus") or t.get("last_status"),
                "started_at": t.get("startedAt") or t.get("started_at"),
                "stopped_at": t.get("stoppedAt") or t.get("stopped_at"),
                "stop_code": t.get("stopCode") or t.get("stop_code"),
                "stopped_reason": reason,
                "exit_codes": exit_codes,
                "container_reasons": reasons,
                "oom": _is_oom(reason, exit_codes, reasons),
            }
        )
    df = pd.DataFrame(rows, columns=TASK_COLUMNS)
    df["oom"] = df["oom"].astype(bool)
    for col in ("started_at", "stopped_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.sort_values("stopped_at", ascending=False, na_position="last").reset_index(drop=True)


def in_window(
    table: pd.DataFrame, start: datetime | None, end: datetime | None = None, column: str = "stopped_at"
) -> pd.DataFrame:
    """Rows whose ``column`` falls in [start, end] (rows without a time are kept: better seen than lost)."""
    if start is None or table.empty:
        return table
    times = pd.to_datetime(table[column], utc=True)
    keep = times.isna() | (times >= pd.Timestamp(start))
    if end is not None:
        keep &= times.isna() | (times <= pd.Timestamp(end))
    return table[keep]


@takes_fetched
def service_degraded(service: Mapping[str, Any] | BaseException | None, *, name: str = "") -> Finding:
    """``ECS_SERVICE_DEGRADED``: the service is missing/inactive, or runs fewer tasks than desired."""
    code, title = "ECS_SERVICE_DEGRADED", "ECS service running count"
    if isinstance(service, BaseException):
        return Finding.error(code, title, service)
    if service is None:  # never fetched (a missing service is ``found`` False)
        return Finding.skipped(code, title, "the service was not described")
    if not service or service.get("found") is False:
        why = (service or {}).get("failure") or "MISSING"
        return Finding.fail(
            code, "ECS service not found", f"service {name!r} not found in the cluster ({why})"
        )
    status = str(service.get("status") or "")
    desired = int(service.get("desiredCount") or 0)
    running = int(service.get("runningCount") or 0)
    pending = int(service.get("pendingCount") or 0)
    data = {
        "status": status,
        "desired": desired,
        "running": running,
        "pending": pending,
        "task_definition": _short(service.get("taskDefinition")),
    }
    label = service.get("serviceName") or name
    if status and status != "ACTIVE":
        return Finding.fail(code, f"ECS service is {status}", f"{label}: status {status}", **data)
    if running < desired:
        return Finding.fail(
            code,
            f"ECS service degraded: {running}/{desired} tasks running",
            f"{label}: {running} running, {pending} pending, {desired} desired",
            **data,
        )
    if desired == 0:
        return Finding.warn(code, "ECS service scaled to zero", f"{label}: desired count is 0", **data)
    return Finding.ok(
        code,
        f"ECS service at desired count ({running}/{desired})",
        f"{label}: {running} running, {pending} pending",
        **data,
    )


@takes_fetched
def deployments_table(service: Mapping[str, Any] | BaseException | None) -> pd.DataFrame:
    """The service's deployments (PRIMARY first) with rolloutState; empty when the fetch failed."""
    if not isinstance(service, Mapping):
        service = None
    cols = [
        "id",
        "status",
        "task_definition",
        "rollout_state",
        "desired",
        "running",
        "pending",
        "failed_tasks",
        "created_at",
        "updated_at",
        "rollout_state_reason",
    ]
    rows = [
        {
            "id": d.get("id"),
            "status": d.get("status"),
            "task_definition": _short(d.get("taskDefinition")),
            "rollout_state": d.get("rolloutState"),
            "desired": d.get("desiredCount"),
            "running": d.get("runningCount"),
            "pending": d.get("pendingCount"),
            "failed_tasks": d.get("failedTasks"),
            "created_at": d.get("createdAt"),
            "updated_at": d.get("updatedAt"),
            "rollout_state_reason": d.get("rolloutStateReason"),
        }
        for d in (service or {}).get("deployments") or []
    ]
    return pd.DataFrame(rows, columns=cols)


@takes_fetched
def deployment_failed(service: Mapping[str, Any] | BaseException | None) -> Finding:
    """``ECS_DEPLOYMENT_FAILED``: a deployment whose rolloutState is FAILED; ``warn`` while an
    in-progress rollout has failed tasks."""
    code, title = "ECS_DEPLOYMENT_FAILED", "ECS deployments"
    if isinstance(service, BaseException):
        return Finding.error(code, title, service)
    if not service or service.get("found") is False:
        return Finding.skipped(code, title, "no service to inspect")
    deps = list(service.get("deployments") or [])
    data = {"deployments": deployments_table(service).to_dict(orient="records")}
    failed = [d for d in deps if str(d.get("rolloutState") or "").upper() == "FAILED"]
    if failed:
        d = failed[0]
        return Finding.fail(
            code,
            f"Deployment failed: {_short(d.get('taskDefinition'))}",
            f"deployment {d.get('id')} ({d.get('status')}) rolloutState FAILED: "
            f"{d.get('rolloutStateReason') or 'no reason given'}; failed tasks "
            f"{d.get('failedTasks', 0)}",
            **data,
        )
    struggling = [
        d
        for d in deps
        if str(d.get("rolloutState") or "").upper() == "IN_PROGRESS" and int(d.get("failedTasks") or 0) > 0
    ]
    if struggling:
        d = struggling[0]
        return Finding.warn(
            code,
            "Deployment in progress with failed tasks",
            f"deployment {d.get('id')} of {_short(d.get('taskDefinition'))}: "
            f"{d.get('failedTasks')} tasks failed so far",
            **data,
        )
    primary = next((d for d in deps if d.get("status") == "PRIMARY"), deps[0] if deps else {})
    return Finding.ok(
        code,
        "No failed deployment",
        f"{len(deps)} deployment(s); primary {_short(primary.get('taskDefinition'))} "
        f"rolloutState {primary.get('rolloutState') or 'n/a'}",
        **data,
    )


@takes_fetched
def task_oom(tasks: Any, *, start: datetime | None = None, end: datetime | None = None) -> Finding:
    """``ECS_TASK_OOM``: a task stopped in the window for OutOfMemory (in a reason) or exit code 137."""
    code, title = "ECS_TASK_OOM", "Tasks stopped for out-of-memory"
    if isinstance(tasks, BaseException):
        return Finding.error(code, title, tasks)
    if tasks is None:  # never fetched (none stopped is an empty frame)
        return Finding.skipped(code, title, "the stopped tasks were not listed")
    table = in_window(tasks_table(tasks), start, end)
    oom = table[table["oom"].astype(bool)]
    data = {"stopped_tasks": len(table), "oom_tasks": oom["task"].tolist()}
    if len(oom):
        last = oom.iloc[0]
        return Finding.fail(
            code,
            f"{len(oom)} task(s) OOM-killed in the window",
            f"latest {last['task']} at {last['stopped_at']:%H:%M} UTC: {last['stopped_reason']} "
            f"(exit codes {last['exit_codes']})",
            **data,
        )
    return Finding.ok(
        code,
        "No task stopped for out-of-memory",
        f"{len(table)} stopped task(s) in the window, none OutOfMemory or exit 137",
        **data,
    )


def utilisation_high(
    series: pd.DataFrame | BaseException | None,
    *,
    code: str,
    what: str,
    threshold: float,
    min_points: int = MIN_BREACHING_POINTS,
) -> Finding:
    """``fail`` when at least ``min_points`` datapoints (or the latest one) exceed ``threshold`` percent."""
    title = f"{what} against {threshold:g}%"
    if isinstance(series, BaseException):
        return Finding.error(code, title, series)
    if series is None or len(series) == 0 or "value" not in series:
        return Finding.error(code, title, f"no {what} datapoints in the window (is the metric published?)")
    values = pd.to_numeric(series["value"], errors="coerce").dropna()
    if values.empty:
        return Finding.error(code, title, f"no {what} datapoints in the window")
    ordered = series.sort_values("timestamp") if "timestamp" in series else series
    latest = float(pd.to_numeric(ordered["value"], errors="coerce").dropna().iloc[-1])
    above = int((values > threshold).sum())
    data = {
        "threshold": threshold,
        "max": float(values.max()),
        "mean": round(float(values.mean()), 2),
        "latest": latest,
        "points": int(len(values)),
        "points_above": above,
    }
    if above >= min(min_points, len(values)) or latest > threshold:
        return Finding.fail(
            code,
            f"{what} above {threshold:g}%",
            f"peak {values.max():.1f}%, latest {latest:.1f}%, {above} of {len(values)} "
            f"datapoints above {threshold:g}%",
            **data,
        )
    return Finding.ok(
        code,
        f"{what} below {threshold:g}%",
        f"peak {values.max():.1f}%, mean {values.mean():.1f}%, latest {latest:.1f}%",
        **data,
    )


@takes_fetched
def memory_high(
    series: pd.DataFrame | BaseException | None, *, threshold: float = MEMORY_HIGH_PCT
) -> Finding:
    """``ECS_MEMORY_HIGH``: MemoryUtilization above 90% (the runbook document's OOM signal)."""
    return utilisation_high(series, code="ECS_MEMORY_HIGH", what="ECS MemoryUtilization", threshold=threshold)


@takes_fetched
def cpu_high(series: pd.DataFrame | BaseException | None, *, threshold: float = CPU_HIGH_PCT) -> Finding:
    """``ECS_CPU_HIGH``: CPUUtilization above 80%."""
    return utilisation_high(series, code="ECS_CPU_HIGH", what="ECS CPUUtilization", threshold=threshold)


@takes_fetched
def events_table(events: Any, *, start: datetime | None = None, limit: int = 20) -> pd.DataFrame:
    """Service events (newest first) since ``start``: a list of events, or the service dict holding them."""
    if isinstance(events, Mapping):
        events = events.get("events") or []
    rows = [{"at": e.get("createdAt"), "message": e.get("message")} for e in _records(events)]
    df = pd.DataFrame(rows, columns=["at", "message"])
    df["at"] = pd.to_datetime(df["at"], utc=True)
    df = df.sort_values("at", ascending=False)
    if start is not None:
        df = df[df["at"] >= pd.Timestamp(start)]
    return df.head(limit).reset_index(drop=True)


def previous_revision(current: str, revisions: Iterable[str], explicit: int | None = None) -> str | None:
    """The task definition to roll back to: ``family:explicit`` when given (and ACTIVE), else the highest
    ACTIVE revision below the current one. ``revisions`` are ARNs or ``family:rev`` strings."""
    cur = _short(current)
    family, _, cur_rev = cur.rpartition(":")
    revs: dict[int, str] = {}
    for r in revisions:
        fam, _, rev = _short(r).rpartition(":")
        if fam == family and rev.isdigit():
            revs[int(rev)] = f"{fam}:{rev}"
    if explicit:
        return revs.get(int(explicit))
    if not cur_rev.isdigit():
        return None
    lower = [r for r in revs if r < int(cur_rev)]
    return revs[max(lower)] if lower else None
