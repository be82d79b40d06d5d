"""ECS: the service, its events, stopped/running tasks, task definitions.

moto notes: ``list_tasks(serviceName=...)`` ignores the service, so tasks are
also filtered here by ``group == "service:<name>"`` or the task definition
family; exit codes, stop codes and times only exist where the sandbox set them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import botocore.exceptions
import pandas as pd

from propflow_ops.sources import aws
from propflow_ops.urls import url_host

TASK_COLUMNS = [
    "taskArn",
    "lastStatus",
    "desiredStatus",
    "stoppedReason",
    "stopCode",
    "stoppedAt",
    "startedAt",
    "createdAt",
    "taskDefinitionArn",
    "group",
    "container",
    "exitCode",
    "reason",
]
_TIME_COLUMNS = ("stoppedAt", "startedAt", "createdAt")


def _ecs(client: Any) -> Any:
    return client or aws.client("ecs")


def _utc_ts(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def service(cluster: str, service: str, *, client: Any = None) -> dict[str, Any]:
    """describe_services for one service, as a plain dict.

    Keys: ``found`` (False, with ``failure``, when ECS does not know it), status,
    desiredCount, runningCount, pendingCount, taskDefinition, launchType,
    deployments (id, status, taskDefinition, desiredCount, runningCount,
    pendingCount, failedTasks, rolloutState, rolloutStateReason, createdAt,
    updatedAt), events (id, createdAt, message), serviceArn, clusterArn.
    """
    resp = _ecs(client).describe_services(cluster=cluster, services=[service])
    found = resp.get("services", [])
    if not found:
        failures = resp.get("failures", [])
        reason = failures[0].get("reason", "MISSING") if failures else "MISSING"
        return {"found": False, "cluster": cluster, "service": service, "failure": reason}
    svc = found[0]
    deployments = [
        {
            "id": d.get("id"),
            "status": d.get("status"),
            "taskDefinition": d.get("taskDefinition"),
            "desiredCount": d.get("desiredCount"),
            "runningCount": d.get("runningCount"),
            "pendingCount": d.get("pendingCount"),
            "failedTasks": d.get("failedTasks", 0),
            "rolloutState": d.get("rolloutState"),
            "rolloutStateReason": d.get("rolloutStateReason"),
            "createdAt": d.get("createdAt"),
            "updatedAt": d.get("updatedAt"),
        }
        for d in svc.get("deployments", [])
    ]
    events = [
        {"id": e.get("id"), "createdAt": e.get("createdAt"), "message": e.get("message", "")}
        for e in svc.get("events", [])
    ]
    return {
        "found": True,
        "cluster": cluster,
        "service": svc.get("serviceName", service),
        "serviceArn": svc.get("serviceArn"),
        "clusterArn": svc.get("clusterArn"),
        "status": svc.get("status"),
        "desiredCount": svc.get("desiredCount", 0),
        "runningCount": svc.get("runningCount", 0),
        "pendingCount": svc.get("pendingCount", 0),
        "taskDefinition": svc.get("taskDefinition"),
        "launchType": svc.get("launchType"),
        "deployments": deployments,
        "events": events,
    }


def service_events(svc: dict[str, Any]) -> pd.DataFrame:
    """The service's events (from :func:`service`) as (createdAt UTC, message), newest first."""
    rows = [
        {"createdAt": _utc_ts(e.get("createdAt")), "message": e.get("message", "")}
        for e in svc.get("events", [])
    ]
    df = pd.DataFrame(rows, columns=["createdAt", "message"])
    df["createdAt"] = pd.to_datetime(df["createdAt"], utc=True).astype("datetime64[ns, UTC]")
    df["message"] = df["message"].astype(str)
    return df.sort_values("createdAt", ascending=False, kind="stable").reset_index(drop=True)


def _family_of(task_definition_arn: str | None) -> str | None:
    if not task_definition_arn:
        return None
    name = task_definition_arn.rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def _all_pages(call: Any, key: str, **kwargs: Any) -> list[Any]:
    """Every item under ``key`` of a paginated ECS list call: follows ``nextToken``, and stops when the
    service hands back the token it was given (rather than asking for the same page forever)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        if token:
            kwargs["nextToken"] = token
        resp = call(**kwargs)
        items.extend(resp.get(key) or [])
        new_token = resp.get("nextToken")
        if not new_token or new_token == token:
            return items
        token = new_token


def _list_task_arns(ecs: Any, cluster: str, desired: str, **filters: str) -> list[str]:
    return _all_pages(ecs.list_tasks, "taskArns", cluster=cluster, desiredStatus=desired, **filters)


def _describe(ecs: Any, cluster: str, arns: Iterable[str]) -> list[dict[str, Any]]:
    unique = list(dict.fromkeys(arns))
    tasks: list[dict[str, Any]] = []
    for i in range(0, len(unique), 100):
        resp = ecs.describe_tasks(cluster=cluster, tasks=unique[i : i + 100])
        tasks.extend(resp.get("tasks", []))
    return tasks


def _belongs(task: dict[str, Any], name: str) -> bool:
    return task.get("group") == f"service:{name}" or _family_of(task.get("taskDefinitionArn")) == name


def _task_rows(tasks: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for t in tasks:
        base = {
            "taskArn": t.get("taskArn"),
            "lastStatus": t.get("lastStatus"),
            "desiredStatus": t.get("desiredStatus"),
            "stoppedReason": t.get("stoppedReason"),
            "stopCode": t.get("stopCode"),
            "stoppedAt": _utc_ts(t.get("stoppedAt")),
            "startedAt": _utc_ts(t.get("startedAt")),
            "createdAt": _utc_ts(t.get("createdAt")),
            "taskDefinitionArn": t.get("taskDefinitionArn"),
            "group": t.get("group"),
        }
        containers = t.get("containers") or [{}]
        for c in containers:
            rows.append(
                {**base, "container": c.get("name"), "exitCode": c.get("exitCode"), "reason": c.get("reason")}
            )
    df = pd.DataFrame(rows, columns=TASK_COLUMNS)
    for col in _TIME_COLUMNS:
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    df["exitCode"] = pd.array(
        [None if v is None or v != v else int(v) for v in df["exitCode"].tolist()], dtype="Int64"
    )
    return df


def _tasks(
    cluster: str, service_or_family: str, statuses: Iterable[str], client: Any
) -> list[dict[str, Any]]:
    ecs = _ecs(client)
    arns: list[str] = []
    for desired in statuses:
        for key in ("serviceName", "family"):
            try:
                arns.extend(_list_task_arns(ecs, cluster, desired, **{key: service_or_family}))
            except botocore.exceptions.ClientError as exc:
                # The name is a family but not a service (or the other way round).
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in ("ServiceNotFoundException", "ClientException", "InvalidParameterException"):
                    raise
    return [t for t in _describe(ecs, cluster, arns) if _belongs(t, service_or_family)]


def stopped_tasks(
    cluster: str, service_or_family: str, since: datetime | None = None, *, client: Any = None
) -> pd.DataFrame:
    """Stopped tasks of a service (or task family), one row per container, newest first.

    Lists desiredStatus STOPPED and RUNNING (a task can be stopped while still
    desired RUNNING), describes them in chunks of 100 and keeps the ones whose
    ``group`` is ``service:<name>`` or whose family is ``<name>``, with
    ``lastStatus == "STOPPED"`` and (when ``since`` is given) stopped at or after
    it (tasks without a stop time are kept). Columns: :data:`TASK_COLUMNS`.
    """
    tasks = [
        t
        for t in _tasks(cluster, service_or_family, ("STOPPED", "RUNNING"), client)
        if t.get("lastStatus") == "STOPPED" or t.get("desiredStatus") == "STOPPED"
    ]
    df = _task_rows(tasks)
    if since is not None and len(df):
        cutoff = pd.Timestamp(since)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
        df = df[df["stoppedAt"].isna() | (df["stoppedAt"] >= cutoff)]
    return df.sort_values("stoppedAt", ascending=False, kind="stable", na_position="last").reset_index(
        drop=True
    )


def running_tasks(cluster: str, service_or_family: str, *, client: Any = None) -> pd.DataFrame:
    """Tasks of a service (or family) that are not stopped, one row per container."""
    tasks = [
        t
        for t in _tasks(cluster, service_or_family, ("RUNNING",), client)
        if t.get("lastStatus") != "STOPPED" and t.get("desiredStatus") != "STOPPED"
    ]
    return _task_rows(tasks).reset_index(drop=True)


def task_definition(family_or_arn: str, *, client: Any = None) -> dict[str, Any]:
    """describe_task_definition: the ``taskDefinition`` dict (latest ACTIVE revision for a family).

    Holds environment values as ECS returns them: keep it in memory, pass it
    through :func:`task_environment`, never display or write it whole.
    """
    resp = _ecs(client).describe_task_definition(taskDefinition=family_or_arn)
    td: dict[str, Any] = resp["taskDefinition"]
    return td


def current_task_definition(
    cluster: str, name: str, family: str = "", *, client: Any = None
) -> dict[str, Any]:
    """The task definition the service runs now, else the family's latest ACTIVE revision (a service ECS
    does not know, or one without a task definition). LookupError when neither is there to read."""
    svc = service(cluster, name, client=client)
    ref = (svc.get("taskDefinition") if svc.get("found") else None) or family
    if not ref:
        raise LookupError(f"service {name} not found in cluster {cluster} ({svc.get('failure')})")
    return task_definition(str(ref), client=client)


def task_environment(
    task_definition: dict[str, Any], *, include_values: bool = True
) -> dict[str, str | None]:
    """The containers' environment merged (later containers win), plus secrets by name.

    Secrets (``secrets``: valueFrom a parameter/secret ARN) appear with value
    None. With ``include_values=False`` every value is None (names only). The
    result holds secret values: for in-memory callers only (checks use
    ``redact`` before anything is displayed or written).
    """
    env: dict[str, str | None] = {}
    for container in task_definition.get("containerDefinitions", []):
        for item in container.get("environment", []) or []:
            name = item.get("name")
            if name:
                env[name] = item.get("value") if include_values else None
        for item in container.get("secrets", []) or []:
            name = item.get("name")
            if name:
                env[name] = None
    return env


def task_definition_revisions(family: str, *, client: Any = None) -> list[str]:
    """ARNs of the family's ACTIVE revisions, newest first (paginated)."""
    ecs = _ecs(client)
    arns: list[str] = _all_pages(
        ecs.list_task_definitions, "taskDefinitionArns", familyPrefix=family, status="ACTIVE", sort="DESC"
    )

    def revision(arn: str) -> int:
        try:
            return int(arn.rsplit(":", 1)[-1])
        except ValueError:
            return -1

    # familyPrefix is a prefix: keep this family only; sort newest first ourselves
    # (moto ignores ``sort``).
    same = [a for a in arns if _family_of(a) == family]
    return sorted(dict.fromkeys(same), key=revision, reverse=True)


@dataclass
class TaskDatabaseUrl:
    """The DATABASE_URL of the service's current task definition. ``url`` stays in memory: never shown."""

    task_definition: str | None = None
    url: str | None = field(default=None, repr=False)
    env: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def host(self) -> str | None:
        return url_host(self.url)

    def __repr__(self) -> str:
        return f"TaskDatabaseUrl(task_definition={self.task_definition!r}, host={self.host!r})"


def task_database_url(cluster: str, name: str, family: str) -> TaskDatabaseUrl:
    """The service's current task definition (else the family's latest) and its DATABASE_URL."""
    td = current_task_definition(cluster, name, family)
    env = task_environment(td)
    label = f"{td.get('family')}:{td.get('revision')}"
    url = env.get("DATABASE_URL")
    return TaskDatabaseUrl(label, str(url) if url else None, env)
