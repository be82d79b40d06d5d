"""Each scenario changes the world as it claims, seen through public clients.

Scenarios that touch different components are injected together (one switch per
batch) to keep the module fast; each scenario still has its own test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from propflow_ops.sandbox import SCENARIOS, Sandbox
from propflow_ops.sandbox.canaries import (
    TWILIO_ACCOUNT_SID,
    WHATSAPP_PHONE_NUMBER_ID,
)

from .helpers import (
    API,
    ECS,
    RDS,
    alembic_state,
    aws,
    basic,
    engine,
    http,
    log_events,
    metric,
    p95,
    redis_client,
    service,
    task_env,
    tasks,
)

Env = Mapping[str, str]
BATCHES: tuple[tuple[str, ...], ...] = (
    (
        "api-oom",
        "db-backups-off",
        "s3-write-denied",
        "redis-maxclients",
        "twilio-low-balance",
        "migration-pending",
    ),
    (
        "api-bad-deploy",
        "db-pool-exhausted",
        "s3-orphans",
        "redis-memory-pressure",
        "twilio-auth-failed",
        "migration-multiple-heads",
        "ws-reconnect-storm",
    ),
    (
        "api-latency-high",
        "db-idle-in-transaction",
        "db-long-query",
        "s3-policy-overbroad",
        "whatsapp-token-expired",
        "migration-unknown-revision",
        "ws-handshake-failing",
    ),
    ("db-down", "s3-bucket-missing", "redis-down", "notify-send-errors"),
    (
        "db-url-mismatch",
        "notify-config-missing",
        "migration-object-exists",
        "schema-drift",
        "otp-endpoint-failing",
    ),
)
BATCH_OF = {name: batch for batch in BATCHES for name in batch}
CHECKS: dict[str, Callable[[Env, Sandbox], None]] = {}


def check(name: str) -> Callable[[Callable[[Env, Sandbox], None]], Callable[[Env, Sandbox], None]]:
    def register(fn: Callable[[Env, Sandbox], None]) -> Callable[[Env, Sandbox], None]:
        CHECKS[name] = fn
        return fn

    return register


def test_every_scenario_is_checked_and_batched() -> None:
    assert set(CHECKS) == set(SCENARIOS) - {"healthy"}
    assert set(BATCH_OF) == set(CHECKS)


@pytest.mark.parametrize("name", [n for batch in BATCHES for n in batch])
def test_scenario(name: str, sandbox: Sandbox, sandbox_env: dict[str, str]) -> None:
    batch = BATCH_OF[name]
    if sandbox.scenarios != batch:
        sandbox.use(*batch)
    CHECKS[name](sandbox_env, sandbox)


def errors(records: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if r.get("level") == "ERROR" and all(r.get(k) == v for k, v in match.items())]


# --- ECS / API ------------------------------------------------------------------------------


@check("api-oom")
def _api_oom(env: Env, sb: Sandbox) -> None:
    status, body = http("GET", env["PROPFLOW_API_URL"] + "/health")
    assert status == 503
    svc = service(env)
    assert svc["desiredCount"] == 2 and svc["runningCount"] < 2
    stopped = tasks(env, "STOPPED")
    oom = [t for t in stopped if "OutOfMemoryError" in t["stoppedReason"]]
    assert len(oom) == 2
    assert all(
        t["containers"][0]["exitCode"] == 137 and t["stopCode"] == "EssentialContainerExited" for t in oom
    )
    assert all(dt.datetime.now(dt.UTC) - t["stoppedAt"] < dt.timedelta(minutes=20) for t in oom)
    assert len(tasks(env, "RUNNING")) == 1
    assert max(metric(env, "AWS/ECS", "MemoryUtilization", ECS, 15, "Maximum")) > 90
    assert min(metric(env, "AWS/ECS", "MemoryUtilization", ECS, 14)) > 90
    records, _ = log_events(env, 15)
    assert len(errors(records)) >= 60


@check("api-bad-deploy")
def _api_bad_deploy(env: Env, sb: Sandbox) -> None:
    svc = service(env)
    primary = svc["deployments"][0]
    assert primary["status"] == "PRIMARY" and primary["rolloutState"] == "FAILED"
    assert "circuit breaker" in primary["rolloutStateReason"]
    assert svc["taskDefinition"].endswith(":4") and primary["taskDefinition"] == svc["taskDefinition"]
    assert svc["runningCount"] < svc["desiredCount"]
    failed = [t for t in tasks(env, "STOPPED") if t["taskDefinitionArn"] == svc["taskDefinition"]]
    assert len(failed) == 3 and all(t["containers"][0]["exitCode"] == 1 for t in failed)
    assert any("failed container health checks" in e["message"] for e in svc["events"])


@check("api-latency-high")
def _api_latency_high(env: Env, sb: Sandbox) -> None:
    assert min(metric(env, "PropFlow/API", "Latency", API, 19)) > 1500
    assert min(metric(env, "AWS/RDS", "CPUUtilization", RDS, 19)) > 80
    assert min(metric(env, "AWS/ECS", "CPUUtilization", ECS, 19)) > 85
    records, _ = log_events(env, 20)
    latencies = [r["latency_ms"] for r in records if r.get("event") == "request" and r.get("latency_ms")]
    assert p95(latencies) > 500
    assert sum("slow query" in r["message"] for r in records) >= 20
    with engine(env).connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("maintenance_requests")}
        assert "ix_maintenance_requests_property_id" not in indexes
        seq, idx, tup = conn.execute(
            sa.text(
                "SELECT seq_scan, coalesce(idx_scan, 0), seq_tup_read FROM pg_stat_user_tables "
                "WHERE relname = 'maintenance_requests'"
            )
        ).one()
    assert seq >= 100 and seq > 10 * idx and tup > 1_000_000


# --- PostgreSQL -----------------------------------------------------------------------------


@check("db-down")
def _db_down(env: Env, sb: Sandbox) -> None:
    with pytest.raises(sa.exc.OperationalError):
        with engine(env).connect():
            pass
    db = aws(env, "rds").describe_db_instances(DBInstanceIdentifier="propflow-db")["DBInstances"][0]
    assert db["DBInstanceStatus"] != "available"
    status, body = http("GET", env["PROPFLOW_API_URL"] + "/health")
    assert status == 503 and body["database"] != "ok"
    records, _ = log_events(env, 15)
    assert any("Connection refused" in r["message"] for r in errors(records))


@check("db-pool-exhausted")
def _db_pool_exhausted(env: Env, sb: Sandbox) -> None:
    with engine(env).connect() as conn:
        used = conn.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        ).scalar_one()
        maximum = int(conn.execute(sa.text("SHOW max_connections")).scalar_one())
    assert used >= 0.9 * maximum
    records, _ = log_events(env, 15)
    assert any("QueuePool limit" in r["message"] for r in records)
    assert any("too many clients" in r["message"] for r in records)


def _sessions(env: Env) -> list[Any]:
    with engine(env).connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT state, query, application_name, now() - state_change AS age FROM pg_stat_activity "
                    "WHERE application_name = 'propflow-api'"
                )
            )
        )


@check("db-idle-in-transaction")
def _db_idle_in_transaction(env: Env, sb: Sandbox) -> None:
    idle = [s for s in _sessions(env) if s.state == "idle in transaction"]
    assert idle and "UPDATE maintenance_requests" in idle[0].query


@check("db-long-query")
def _db_long_query(env: Env, sb: Sandbox) -> None:
    assert any(s.state == "active" and "pg_sleep" in s.query for s in _sessions(env))


@check("db-url-mismatch")
def _db_url_mismatch(env: Env, sb: Sandbox) -> None:
    db = aws(env, "rds").describe_db_instances(DBInstanceIdentifier="propflow-db")["DBInstances"][0]
    url = sa.engine.make_url(task_env(env)["DATABASE_URL"])
    assert url.host == "propflow-db-old.cluster-xyz.us-east-1.rds.amazonaws.com"
    assert url.host != db["Endpoint"]["Address"]


@check("db-backups-off")
def _db_backups_off(env: Env, sb: Sandbox) -> None:
    db = aws(env, "rds").describe_db_instances(DBInstanceIdentifier="propflow-db")["DBInstances"][0]
    assert db["BackupRetentionPeriod"] == 0
    assert dt.datetime.now(dt.UTC) - db["LatestRestorableTime"] > dt.timedelta(minutes=5)


# --- S3 -------------------------------------------------------------------------------------


def _policy(env: Env) -> dict[str, Any]:
    import json

    return json.loads(aws(env, "s3").get_bucket_policy(Bucket="propflow-uploads")["Policy"])


@check("s3-bucket-missing")
def _s3_bucket_missing(env: Env, sb: Sandbox) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        aws(env, "s3").head_bucket(Bucket="propflow-uploads")
    assert info.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
    records, _ = log_events(env, 15)
    assert len([r for r in errors(records, event="upload") if r.get("error_type") == "NoSuchBucket"]) >= 30


@check("s3-write-denied")
def _s3_write_denied(env: Env, sb: Sandbox) -> None:
    deny = [s for s in _policy(env)["Statement"] if s["Effect"] == "Deny"]
    assert (
        deny
        and "s3:PutObject" in str(deny[0]["Action"])
        and "propflow-ecs-task-role" in str(deny[0]["Principal"])
    )
    records, _ = log_events(env, 15)
    assert any(r.get("error_type") == "AccessDenied" for r in errors(records, event="upload"))


@check("s3-policy-overbroad")
def _s3_policy_overbroad(env: Env, sb: Sandbox) -> None:
    statements = _policy(env)["Statement"]
    assert any(s["Action"] == "s3:*" for s in statements)
    assert any(s["Principal"] == "*" for s in statements)


@check("s3-orphans")
def _s3_orphans(env: Env, sb: Sandbox) -> None:
    s3 = aws(env, "s3")
    objects = [
        o
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="propflow-uploads")
        for o in page.get("Contents", [])
    ]
    with engine(env).connect() as conn:
        referenced = {r[0] for r in conn.execute(sa.text("SELECT s3_key FROM photos"))}
    week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    orphans = [o for o in objects if o["Key"] not in referenced and o["LastModified"] < week_ago]
    assert len(orphans) == 30
    uploads = s3.list_multipart_uploads(Bucket="propflow-uploads").get("Uploads", [])
    assert len(uploads) == 3 and all(u["Initiated"] < week_ago for u in uploads)


# --- Redis / WebSocket ----------------------------------------------------------------------


@check("redis-down")
def _redis_down(env: Env, sb: Sandbox) -> None:
    with pytest.raises(redis.ConnectionError):
        redis_client(env).ping()
    cluster = aws(env, "elasticache").describe_cache_clusters(CacheClusterId="propflow-redis")[
        "CacheClusters"
    ][0]
    assert cluster["CacheClusterStatus"] != "available"
    records, _ = log_events(env, 15)
    assert len([r for r in records if r.get("event") == "ws_reconnect"]) >= 100


@check("redis-maxclients")
def _redis_maxclients(env: Env, sb: Sandbox) -> None:
    r = redis_client(env)
    info = r.info()
    maxclients = int(r.config_get("maxclients")["maxclients"] or 0)
    assert info["connected_clients"] >= maxclients - 3
    assert info["rejected_connections"] > 0


@check("redis-memory-pressure")
def _redis_memory_pressure(env: Env, sb: Sandbox) -> None:
    info = redis_client(env).info()
    assert info["maxmemory"] > 0 and info["used_memory"] >= 0.95 * info["maxmemory"]
    assert info["evicted_keys"] > 0


@check("ws-handshake-failing")
def _ws_handshake_failing(env: Env, sb: Sandbox) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as info:
        connect(env["PROPFLOW_API_URL"].replace("http://", "ws://") + "/ws/test-token", open_timeout=5)
    assert info.value.response.status_code == 503


@check("ws-reconnect-storm")
def _ws_reconnect_storm(env: Env, sb: Sandbox) -> None:
    records, _ = log_events(env, 120)
    now = dt.datetime.now(dt.UTC)

    def rate(lo: int, hi: int) -> float:
        n = sum(
            1
            for r in records
            if r.get("event") == "ws_reconnect"
            and lo <= (now - dt.datetime.fromisoformat(r["ts"])).total_seconds() / 60 < hi
        )
        return n / (hi - lo)

    assert rate(0, 15) >= 10 * max(rate(30, 120), 0.1)


# --- notifications --------------------------------------------------------------------------


def _twilio(env: Env, path: str) -> tuple[int, Any]:
    return http(
        "GET",
        f"{env['PROPFLOW_TWILIO_API_URL']}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}{path}",
        headers=basic(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"]),
    )


@check("twilio-auth-failed")
def _twilio_auth_failed(env: Env, sb: Sandbox) -> None:
    status, body = _twilio(env, ".json")
    assert status == 401 and body["code"] == 20003


@check("twilio-low-balance")
def _twilio_low_balance(env: Env, sb: Sandbox) -> None:
    status, body = _twilio(env, "/Balance.json")
    assert status == 200 and body["balance"] == "3.17" and body["currency"] == "USD"


@check("whatsapp-token-expired")
def _whatsapp_token_expired(env: Env, sb: Sandbox) -> None:
    status, body = http(
        "GET",
        f"{env['PROPFLOW_META_GRAPH_URL']}/{WHATSAPP_PHONE_NUMBER_ID}?fields=status",
        headers={"Authorization": f"Bearer {env['WHATSAPP_TOKEN']}"},
    )
    assert status == 401 and body["error"]["code"] == 190 and body["error"]["type"] == "OAuthException"


@check("notify-send-errors")
def _notify_send_errors(env: Env, sb: Sandbox) -> None:
    status, body = _twilio(env, "/Messages.json?PageSize=50")
    bad = [m for m in body["messages"] if m["status"] in ("failed", "undelivered")]
    assert status == 200 and len(bad) > len(body["messages"]) / 2
    assert {m["error_code"] for m in bad} >= {30003, 30005, 30007, 21211, 21610, 21408}
    records, _ = log_events(env, 15)
    providers = {r.get("provider") for r in errors(records, event="notification")}
    assert providers == {"twilio", "whatsapp"}


@check("notify-config-missing")
def _notify_config_missing(env: Env, sb: Sandbox) -> None:
    names = set(task_env(env))
    assert "TWILIO_AUTH_TOKEN" not in names and "WHATSAPP_PHONE_NUMBER_ID" not in names
    assert "TWILIO_ACCOUNT_SID" in names


@check("otp-endpoint-failing")
def _otp_endpoint_failing(env: Env, sb: Sandbox) -> None:
    status, _ = http("POST", env["PROPFLOW_API_URL"] + "/api/v1/auth/login/otp", {"phone": "+10000000000"})
    assert status == 500


# --- migrations -----------------------------------------------------------------------------


@check("migration-pending")
def _migration_pending(env: Env, sb: Sandbox) -> None:
    current, heads, script = alembic_state(env)
    assert len(heads) == 1 and current == {script.get_revision(heads[0]).down_revision}


@check("migration-multiple-heads")
def _migration_multiple_heads(env: Env, sb: Sandbox) -> None:
    _current, heads, _script = alembic_state(env)
    assert len(heads) == 2


@check("migration-unknown-revision")
def _migration_unknown_revision(env: Env, sb: Sandbox) -> None:
    current, _heads, script = alembic_state(env)
    known = {rev.revision for rev in script.walk_revisions()}
    assert current and not current & known


@check("migration-object-exists")
def _migration_object_exists(env: Env, sb: Sandbox) -> None:
    current, heads, script = alembic_state(env)
    assert current == {script.get_revision(heads[0]).down_revision}
    with engine(env).connect() as conn:
        assert sa.inspect(conn).has_table("notifications")
    records, _ = log_events(env, 15)
    assert any('relation "notifications" already exists' in r["message"] for r in errors(records))


@check("schema-drift")
def _schema_drift(env: Env, sb: Sandbox) -> None:
    with engine(env).connect() as conn:
        inspector = sa.inspect(conn)
        assert "legacy_code" in {c["name"] for c in inspector.get_columns("properties")}
        assert "rent_cents" not in {c["name"] for c in inspector.get_columns("units")}
