"""Fault scenarios: each changes real state of the sandbox world (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import math
import random
import textwrap
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import logs as L
from .aws import TASK_ROLE_ARN, deploy, task_environment

if TYPE_CHECKING:
    from .core import Sandbox

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OLD_DB_HOST = "propflow-db-old.cluster-xyz.us-east-1.rds.amazonaws.com"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    codes: tuple[str, ...]
    inject: Callable[[Sandbox], None]


class UnknownScenarioError(ValueError):
    pass


def _ago(sb: Sandbox, minutes: float) -> dt.datetime:
    return sb.now - dt.timedelta(minutes=minutes)


def _rng() -> random.Random:
    return random.Random(17)


def _logs(sb: Sandbox) -> L.LogBuilder:
    assert sb.logs is not None
    return sb.logs


def _event(sb: Sandbox, minutes_ago: float, message: str) -> None:
    service = sb.aws.service()
    service.events.insert(0, sb.aws.service_event(_ago(sb, minutes_ago), message))
    service.events.sort(key=lambda e: e["createdAt"], reverse=True)


# --- ECS / API ------------------------------------------------------------------------------


def api_oom(sb: Sandbox) -> None:
    aws = sb.aws
    first, second = aws.state.task_ids[:2]
    for task_id, minutes in ((first, 14), (second, 6)):
        aws.stop_task(
            task_id,
            reason=OOM_REASON,
            exit_code=137,
            stopped_at=_ago(sb, minutes),
            container_reason=OOM_REASON,
        )
        _event(sb, minutes, f"(service propflow-api) has stopped 1 running tasks: (task {task_id}).")
    replacement = aws.run_task(aws.service().task_definition, _ago(sb, 5))
    _event(sb, 5, f"(service propflow-api) has started 1 tasks: (task {replacement}).")
    aws.set_service_counts(running=1, pending=1)
    rng = _rng()
    aws.replace_series("ecs_memory", sb.now, 15, lambda _m: rng.uniform(93.0, 99.5))
    L.oom_spike(_logs(sb))
    sb.http_state.api_down = True
    aws.rollout.model.oom = True  # a new deployment's tasks OOM too: it never reaches the desired count


def api_bad_deploy(sb: Sandbox) -> None:
    aws = sb.aws
    old_deployment = aws.service().deployments[0]["id"]
    new_td = aws.register_task_definition("1.16.0", aws.current_environment())
    aws.rollout.model.failing.add(new_td.rsplit("/", 1)[-1])  # deployed again, its tasks fail again
    dep_id = deploy(
        aws,
        new_td,
        _ago(sb, 13),
        rollout="FAILED",
        reason="ECS deployment circuit breaker: tasks failed to start.",
        running=0,
        failed=3,
    )
    aws.service().deployments[1].update(runningCount=1)
    aws.stop_task(
        aws.state.task_ids[1],
        reason=f"Scaling activity initiated by (deployment {dep_id})",
        exit_code=0,
        stopped_at=_ago(sb, 12),
        stop_code="ServiceSchedulerInitiated",
    )
    for minutes in (12, 8, 4):
        task_id = aws.run_task(new_td, _ago(sb, minutes))
        aws.stop_task(
            task_id,
            reason="Essential container in task exited",
            exit_code=1,
            stopped_at=_ago(sb, minutes - 0.7),
        )
        _event(sb, minutes - 0.5, f"(service propflow-api) (task {task_id}) failed container health checks.")
        L.bad_deploy_spike(_logs(sb), L.stream_name(task_id), minutes=1)
    _event(sb, 2, f"(service propflow-api) (deployment {dep_id}) deployment failed: tasks failed to start.")
    _event(sb, 13, f"(service propflow-api) deployment {old_deployment} replaced by {dep_id}.")
    service = aws.service()
    service.running_count, service.pending_count = 1, 0
    aws.ecs_backend().clusters["propflow"].running_tasks_count = 1


def api_latency_high(sb: Sandbox) -> None:
    rng = _rng()
    aws = sb.aws
    aws.replace_series("api_latency", sb.now, 20, lambda _m: rng.uniform(1650.0, 2600.0))
    aws.replace_series("rds_cpu", sb.now, 20, lambda _m: rng.uniform(84.0, 97.0))
    aws.replace_series("ecs_cpu", sb.now, 20, lambda _m: rng.uniform(86.0, 96.0))
    aws.replace_series("rds_connections", sb.now, 20, lambda _m: rng.uniform(30.0, 36.0))
    L.latency_spike(_logs(sb))
    assert sb.pg is not None
    sb.pg.execute("DROP INDEX IF EXISTS ix_maintenance_requests_property_id")
    try:
        with sb.pg.admin(sb.pg.dbname) as conn:
            conn.execute("SELECT pg_stat_reset_single_table_counters('maintenance_requests'::regclass)")
    except Exception:  # noqa: BLE001 - not superuser on an external server; the burst still dominates
        pass
    with sb.pg.connect(autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        for i in range(150):
            conn.execute(
                "SELECT id, status FROM maintenance_requests WHERE property_id = %s", (i % 25 + 1,)
            ).fetchall()


# --- PostgreSQL -----------------------------------------------------------------------------


def db_down(sb: Sandbox) -> None:
    assert sb.pg is not None
    if sb.pg.external_url:
        sb.pg.block_connections()
    else:
        sb.pg.stop_server()
    sb.aws.rds_instance().status = "storage-full"
    L.db_down_spike(_logs(sb))


def db_pool_exhausted(sb: Sandbox) -> None:
    assert sb.pg is not None
    max_conn = sb.pg.max_connections()
    current = sb.pg.client_backends() - 1
    target = math.ceil(0.9 * max_conn)
    sb.pg.hold_connections(max(0, target - current))
    L.pool_exhausted_spike(_logs(sb))


def db_idle_in_transaction(sb: Sandbox) -> None:
    assert sb.pg is not None
    sb.pg.idle_in_transaction()


def db_long_query(sb: Sandbox) -> None:
    assert sb.pg is not None
    sb.pg.long_query()


def db_url_mismatch(sb: Sandbox) -> None:
    env = sb.aws.current_environment()
    env["DATABASE_URL"] = env["DATABASE_URL"].replace(sb.aws.state.rds_host, OLD_DB_HOST)
    deploy(sb.aws, sb.aws.register_task_definition("1.15.0", env), _ago(sb, 25))


def db_backups_off(sb: Sandbox) -> None:
    instance = sb.aws.rds_instance()
    instance.backup_retention_period = 0
    sb.aws.set_latest_restorable_time(_ago(sb, 26 * 60))


# --- S3 -------------------------------------------------------------------------------------


def s3_bucket_missing(sb: Sandbox) -> None:
    s3 = sb.aws.client("s3")
    keys = [{"Key": o["Key"]} for o in s3.list_objects_v2(Bucket="propflow-uploads").get("Contents", [])]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket="propflow-uploads", Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    s3.delete_bucket(Bucket="propflow-uploads")
    L.upload_error_spike(_logs(sb), "NoSuchBucket")


def _policy(*statements: dict[str, Any]) -> str:
    import json

    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_TASK_ROLE = {
    "Sid": "AllowApiTaskObjectAccess",
    "Effect": "Allow",
    "Principal": {"AWS": TASK_ROLE_ARN},
    "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
    "Resource": "arn:aws:s3:::propflow-uploads/*",
}


def s3_write_denied(sb: Sandbox) -> None:
    deny = {
        "Sid": "DenyUploadsDuringMigration",
        "Effect": "Deny",
        "Principal": {"AWS": TASK_ROLE_ARN},
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::propflow-uploads/*",
    }
    sb.aws.client("s3").put_bucket_policy(Bucket="propflow-uploads", Policy=_policy(ALLOW_TASK_ROLE, deny))
    L.upload_error_spike(_logs(sb), "AccessDenied")


def s3_policy_overbroad(sb: Sandbox) -> None:
    doc_example = {
        "Sid": "AllowECSWrite",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789:role/ecsTaskRole"},
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::propflow-uploads/*",
    }
    public = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::propflow-uploads/*",
    }
    s3 = sb.aws.client("s3")
    s3.delete_public_access_block(Bucket="propflow-uploads")
    s3.put_bucket_policy(Bucket="propflow-uploads", Policy=_policy(doc_example, public))


def s3_orphans(sb: Sandbox) -> None:
    from .dataset import orphan_keys

    rng = _rng()
    for key in orphan_keys(30):
        sb.aws.put_object(key, sb.now - dt.timedelta(days=rng.uniform(8.0, 40.0)))
    s3 = sb.aws.client("s3")
    for key in orphan_keys(3, seed=5):
        upload = s3.create_multipart_upload(Bucket="propflow-uploads", Key=key, ContentType="image/jpeg")
        s3.upload_part(
            Bucket="propflow-uploads",
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"\xff\xd8partial",
        )


# --- Redis / WebSocket ----------------------------------------------------------------------


def redis_down(sb: Sandbox) -> None:
    assert sb.redis is not None
    if sb.redis.external_url:
        raise RuntimeError("redis-down needs the embedded Redis (PROPFLOW_REDIS_URL is set)")
    sb.redis.stop_server()
    sb.aws.cache_cluster().cache_cluster_status = "rebooting cache cluster nodes"
    L.redis_down_spike(_logs(sb))


def redis_maxclients(sb: Sandbox) -> None:
    assert sb.redis is not None
    sb.redis.fill_clients(maxclients=30)
    b = _logs(sb)
    b.per_minute(
        10,
        3,
        lambda ts: b.add(
            ts,
            "ERROR",
            "ws_connect",
            "redis: ERR max number of clients reached",
            method="GET",
            path="/ws/wst_0000",
            status=1011,
            latency_ms=3.0,
            error_type="ConnectionError",
            client_id=b.client_id(),
        ),
    )


def redis_memory_pressure(sb: Sandbox) -> None:
    assert sb.redis is not None
    sb.redis.fill_memory()


def ws_handshake_failing(sb: Sandbox) -> None:
    sb.http_state.ws_failing = True
    L.ws_handshake_spike(_logs(sb))


def ws_reconnect_storm(sb: Sandbox) -> None:
    L.reconnect_storm(_logs(sb))


# --- notifications --------------------------------------------------------------------------


def twilio_auth_failed(sb: Sandbox) -> None:
    sb.http_state.twilio_auth_failed = True


def twilio_low_balance(sb: Sandbox) -> None:
    sb.http_state.twilio_balance = "3.17"


def whatsapp_token_expired(sb: Sandbox) -> None:
    sb.http_state.whatsapp_token_expired = True


def notify_send_errors(sb: Sandbox) -> None:
    from .standins import failing_messages

    sb.http_state.twilio_messages = failing_messages()
    L.notify_error_spike(_logs(sb))


def notify_config_missing(sb: Sandbox) -> None:
    env = sb.aws.current_environment()
    for name in ("TWILIO_AUTH_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"):
        env.pop(name, None)
    deploy(sb.aws, sb.aws.register_task_definition("1.15.1", env), _ago(sb, 30))


def otp_endpoint_failing(sb: Sandbox) -> None:
    sb.http_state.otp_failing = True


# --- migrations -----------------------------------------------------------------------------


def migration_pending(sb: Sandbox) -> None:
    from alembic import command

    command.downgrade(sb.alembic_config(), "-1")


BRANCH_MIGRATION = '''\
"""add phone_verified to users

Revision ID: 7c8d9e0fab17
Revises: 4a5b6c7d8e95
Create Date: {date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7c8d9e0fab17"
down_revision = "4a5b6c7d8e95"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("phone_verified", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("users", "phone_verified")
'''


def migration_multiple_heads(sb: Sandbox) -> None:
    path = sb.versions_dir / "7c8d9e0fab17_add_phone_verified_to_users.py"
    path.write_text(textwrap.dedent(BRANCH_MIGRATION).format(date=_ago(sb, 90).strftime("%Y-%m-%d %H:%M:%S")))


def migration_unknown_revision(sb: Sandbox) -> None:
    assert sb.pg is not None
    sb.pg.execute("UPDATE alembic_version SET version_num = 'e4f5a6b7c8d9'")


def migration_object_exists(sb: Sandbox) -> None:
    assert sb.pg is not None
    sb.pg.execute("UPDATE alembic_version SET version_num = '4a5b6c7d8e95'")
    L.migration_exists_spike(_logs(sb), L.stream_name(str(uuid.UUID(int=_rng().getrandbits(128), version=4))))


def schema_drift(sb: Sandbox) -> None:
    assert sb.pg is not None
    sb.pg.execute("ALTER TABLE properties ADD COLUMN legacy_code varchar(20)")
    sb.pg.execute("ALTER TABLE units DROP COLUMN rent_cents")


def healthy(sb: Sandbox) -> None:
    """No fault."""


_ALL: tuple[Scenario, ...] = (
    Scenario("healthy", "no fault: every component healthy", (), healthy),
    Scenario(
        "api-oom",
        "API tasks OOM-killed (exit 137), 1/2 running, memory > 90%, /health 503",
        ("API_HEALTH_FAILING", "ECS_SERVICE_DEGRADED", "ECS_TASK_OOM", "ECS_MEMORY_HIGH", "LOG_ERROR_SPIKE"),
        api_oom,
    ),
    Scenario(
        "api-bad-deploy",
        "new task definition rolled out and failed (circuit breaker), tasks exit 1",
        ("ECS_DEPLOYMENT_FAILED", "ECS_SERVICE_DEGRADED"),
        api_bad_deploy,
    ),
    Scenario(
        "api-latency-high",
        "p95 latency ~2 s, CPU high on RDS and ECS, index dropped, seq scans",
        ("API_LATENCY_HIGH", "DB_SLOW_QUERIES", "RDS_CPU_HIGH", "ECS_CPU_HIGH", "DB_MISSING_INDEX"),
        api_latency_high,
    ),
    Scenario(
        "db-down",
        "PostgreSQL stopped, RDS status storage-full, connection refused in logs",
        ("RDS_NOT_AVAILABLE", "DB_UNREACHABLE", "API_HEALTH_FAILING"),
        db_down,
    ),
    Scenario(
        "db-pool-exhausted",
        "connections held at >= 90% of max_connections, pool errors in logs",
        ("DB_POOL_EXHAUSTED",),
        db_pool_exhausted,
    ),
    Scenario(
        "db-idle-in-transaction",
        "a propflow-api session idle in transaction holding a row lock",
        ("DB_IDLE_IN_TRANSACTION",),
        db_idle_in_transaction,
    ),
    Scenario(
        "db-long-query",
        "a propflow-api session running SELECT pg_sleep(3600)",
        ("DB_LONG_RUNNING_QUERY",),
        db_long_query,
    ),
    Scenario(
        "db-url-mismatch",
        "service on a task definition whose DATABASE_URL names an old host",
        ("DB_URL_MISMATCH",),
        db_url_mismatch,
    ),
    Scenario(
        "db-backups-off",
        "RDS BackupRetentionPeriod 0, latest restorable time a day old",
        ("DB_RPO_AT_RISK",),
        db_backups_off,
    ),
    Scenario(
        "s3-bucket-missing",
        "uploads bucket deleted, NoSuchBucket upload errors in logs",
        ("S3_BUCKET_MISSING", "UPLOAD_ERRORS_IN_LOGS"),
        s3_bucket_missing,
    ),
    Scenario(
        "s3-write-denied",
        "bucket policy explicitly denies s3:PutObject to the task role",
        ("S3_WRITE_DENIED", "UPLOAD_ERRORS_IN_LOGS"),
        s3_write_denied,
    ),
    Scenario(
        "s3-policy-overbroad",
        "the runbook's own s3:* policy plus a public GetObject statement",
        ("S3_POLICY_OVERBROAD",),
        s3_policy_overbroad,
    ),
    Scenario(
        "s3-orphans",
        "old uploads no photos row references, stale incomplete multipart uploads",
        ("S3_ORPHANED_UPLOADS",),
        s3_orphans,
    ),
    Scenario(
        "redis-down",
        "Redis stopped, ElastiCache not available, WebSocket disconnect storm",
        ("REDIS_NOT_AVAILABLE", "REDIS_UNREACHABLE", "WS_RECONNECT_SPIKE"),
        redis_down,
    ),
    Scenario(
        "redis-maxclients",
        "Redis maxclients 30 nearly all taken, connections rejected",
        ("REDIS_CLIENTS_EXHAUSTED",),
        redis_maxclients,
    ),
    Scenario(
        "redis-memory-pressure",
        "Redis maxmemory 4 MB full with allkeys-lru evicting keys",
        ("REDIS_MEMORY_PRESSURE",),
        redis_memory_pressure,
    ),
    Scenario(
        "ws-handshake-failing",
        "/ws/<token> refuses the upgrade with 503",
        ("WS_HANDSHAKE_FAILING",),
        ws_handshake_failing,
    ),
    Scenario(
        "ws-reconnect-storm",
        "10x the normal ws_disconnect/ws_reconnect rate for 15 minutes",
        ("WS_RECONNECT_SPIKE",),
        ws_reconnect_storm,
    ),
    Scenario(
        "twilio-auth-failed",
        "Twilio rejects the configured credentials (401, code 20003)",
        ("TWILIO_AUTH_FAILED",),
        twilio_auth_failed,
    ),
    Scenario("twilio-low-balance", "Twilio balance 3.17 USD", ("TWILIO_BALANCE_LOW",), twilio_low_balance),
    Scenario(
        "whatsapp-token-expired",
        "Meta Graph returns 401 OAuthException code 190 (token expired)",
        ("WHATSAPP_API_FAILING",),
        whatsapp_token_expired,
    ),
    Scenario(
        "notify-send-errors",
        "most recent SMS failed/undelivered, notification errors in logs",
        ("NOTIFY_SEND_ERRORS",),
        notify_send_errors,
    ),
    Scenario(
        "notify-config-missing",
        "service on a task definition without TWILIO_AUTH_TOKEN and WHATSAPP_PHONE_NUMBER_ID",
        ("NOTIFY_CONFIG_MISSING",),
        notify_config_missing,
    ),
    Scenario(
        "otp-endpoint-failing",
        "POST /api/v1/auth/login/otp returns 500",
        ("OTP_ENDPOINT_FAILING",),
        otp_endpoint_failing,
    ),
    Scenario(
        "migration-pending",
        "database one revision behind head (alembic downgrade -1)",
        ("MIGRATION_PENDING",),
        migration_pending,
    ),
    Scenario(
        "migration-multiple-heads",
        "a second migration branching off head's parent",
        ("MIGRATION_MULTIPLE_HEADS",),
        migration_multiple_heads,
    ),
    Scenario(
        "migration-unknown-revision",
        "alembic_version names a revision no script knows",
        ("MIGRATION_UNKNOWN_REVISION",),
        migration_unknown_revision,
    ),
    Scenario(
        "migration-object-exists",
        "one behind head with its table present; DuplicateTable in logs",
        ("MIGRATION_OBJECT_EXISTS", "MIGRATION_PENDING"),
        migration_object_exists,
    ),
    Scenario(
        "schema-drift",
        "manual ALTER TABLE: a column added, one the models have dropped",
        ("SCHEMA_DRIFT",),
        schema_drift,
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}


def validate(names: Iterable[str]) -> tuple[str, ...]:
    """The names in order, without duplicates or ``healthy``; UnknownScenarioError for a bad one."""
    out: list[str] = []
    for name in names:
        if name not in SCENARIOS:
            raise UnknownScenarioError(
                f"unknown scenario {name!r}; choose from: {', '.join(sorted(SCENARIOS))}"
            )
        if name != "healthy" and name not in out:
            out.append(name)
    return tuple(out)


__all__ = ["SCENARIOS", "Scenario", "UnknownScenarioError", "validate", "task_environment"]
