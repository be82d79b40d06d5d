"""Public-client views of the sandbox world (boto3, SQLAlchemy, redis-py, urllib), as a runbook sees it."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import boto3
import redis
import sqlalchemy as sa
from botocore.config import Config

UTC = dt.UTC


def aws(env: Mapping[str, str], service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 1}),
    )


def http(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def engine(env: Mapping[str, str]) -> sa.Engine:
    return sa.create_engine(
        env["PROPFLOW_DATABASE_URL"], connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool
    )


def redis_client(env: Mapping[str, str]) -> redis.Redis:
    return redis.Redis.from_url(env["PROPFLOW_REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def log_events(env: Mapping[str, str], minutes: float) -> tuple[list[dict[str, Any]], list[str]]:
    """(JSON records, plain-text lines) of the last ``minutes`` minutes."""
    start = int((dt.datetime.now(UTC) - dt.timedelta(minutes=minutes)).timestamp() * 1000)
    logs = aws(env, "logs")
    records: list[dict[str, Any]] = []
    text: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": "/ecs/propflow-api", "startTime": start}
    while True:
        page = logs.filter_log_events(**kwargs)
        for event in page["events"]:
            try:
                records.append(json.loads(event["message"]))
            except ValueError:
                text.append(event["message"])
        if not page.get("nextToken"):
            return records, text
        kwargs["nextToken"] = page["nextToken"]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def metric(
    env: Mapping[str, str],
    namespace: str,
    name: str,
    dims: dict[str, str],
    minutes: int,
    stat: str = "Average",
) -> list[float]:
    now = dt.datetime.now(UTC)
    resp = aws(env, "cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - dt.timedelta(minutes=minutes),
        EndTime=now,
        Period=60,
        Statistics=[stat],
    )
    return [p[stat] for p in sorted(resp["Datapoints"], key=lambda p: p["Timestamp"])]


ECS = {"ClusterName": "propflow", "ServiceName": "propflow-api"}
RDS = {"DBInstanceIdentifier": "propflow-db"}
API = {"Service": "propflow-api"}


def service(env: Mapping[str, str]) -> dict[str, Any]:
    return aws(env, "ecs").describe_services(cluster="propflow", services=["propflow-api"])["services"][0]


def tasks(env: Mapping[str, str], status: str) -> list[dict[str, Any]]:
    ecs = aws(env, "ecs")
    arns = ecs.list_tasks(cluster="propflow", serviceName="propflow-api", desiredStatus=status)["taskArns"]
    return ecs.describe_tasks(cluster="propflow", tasks=arns)["tasks"] if arns else []


def task_env(env: Mapping[str, str]) -> dict[str, str]:
    ecs = aws(env, "ecs")
    td = ecs.describe_task_definition(taskDefinition=service(env)["taskDefinition"])["taskDefinition"]
    return {e["name"]: e["value"] for e in td["containerDefinitions"][0]["environment"]}


def alembic_state(env: Mapping[str, str]) -> tuple[set[str], list[str], Any]:
    """(database revisions, script heads, script directory)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(AlembicConfig(env["PROPFLOW_ALEMBIC_CONFIG"]))
    with engine(env).connect() as conn:
        current = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    return current, list(script.get_heads()), script
