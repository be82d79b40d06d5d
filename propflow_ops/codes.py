"""The registry of finding codes: one table from which triage's attribution and recommendations, the runbooks'
follow-ups, the post-incident review (service for the RTO table, follow-up tickets) and the contract test derive.

A row is a code, or a family (a prefix ending in ``_``) that answers for codes not listed one by one (an
evidence file from another version): exact code first, else the longest family prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from propflow_ops.runbooks import RUNBOOKS


@dataclass(frozen=True)
class Code:
    code: str
    runbook: str | None  # the runbook that owns the condition (triage attributes a sub-check to it)
    component: str | None  # the triage component (grid row) the condition falls under
    service: str | None  # the service of the Recovery Time Objectives table it speaks for
    follow_up: str | None = None  # the runbook to open next when it fails (with why)
    why: str = ""
    ticket: str | None = None  # what to fix so it does not come back (postmortem follow-up ticket)

    @property
    def follow_up_severity(self) -> str | None:
        """The default severity of the follow-up runbook."""
        return RUNBOOKS[self.follow_up].severity if self.follow_up else None


_REDIS = "Right-size Redis (memory, maxclients) and alarm on its metrics"
_WS = "Fix the WebSocket handshake/reconnect cause and alarm on the reconnect rate"
_MIGRATION = "Check Alembic heads and run migrations in CI before deploy (one head, upgrade/downgrade tested)"

C = Code
TABLE: tuple[Code, ...] = (
    # api-down
    C(
        "API_HEALTH_FAILING",
        "api-down",
        "TRIAGE_API",
        "api",
        "api-down",
        "/health is failing",
        "Alarm on /health failures (CloudWatch synthetic or ALB health) and find why it failed",
    ),
    C(
        "ECS_SERVICE_DEGRADED",
        "api-down",
        "TRIAGE_ECS",
        "api",
        ticket="Find why tasks stopped; enable the ECS deployment circuit breaker with rollback",
    ),
    C(
        "ECS_TASK_OOM",
        "api-down",
        "TRIAGE_ECS",
        "api",
        "api-down",
        "tasks are being OOM-killed",
        "Raise the task memory limit or fix the memory growth; alarm on MemoryUtilization above 80%",
    ),
    C(
        "ECS_MEMORY_HIGH",
        "api-down",
        "TRIAGE_ECS",
        "api",
        ticket="Right-size task memory and alarm on MemoryUtilization above 80%",
    ),
    C(
        "ECS_DEPLOYMENT_FAILED",
        "api-down",
        "TRIAGE_ECS",
        "api",
        "api-down",
        "a deployment failed",
        "Enable the ECS deployment circuit breaker (rollback) and gate deploys on /health",
    ),
    C(
        "ECS_CPU_HIGH",
        "api-down",
        "TRIAGE_ECS",
        "api",
        ticket="Scale the service on CPU (target tracking) and profile the hot endpoints",
    ),
    C(
        "LOG_ERROR_SPIKE",
        None,
        "TRIAGE_ERRORS",
        "api",
        ticket="Triage the top error messages of the window into bugs; alarm on the error rate",
    ),
    C("ERRORS_RATE_HIGH", "api-down", "TRIAGE_ERRORS", None),
    # db-connection
    C(
        "RDS_NOT_AVAILABLE",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "db-connection",
        "the RDS instance is not available",
        "Review the RDS event log; enable Multi-AZ if it is off",
    ),
    C(
        "DB_UNREACHABLE",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "db-connection",
        "the database does not answer",
        "Make the database reachable path monitored (connection check alarm) and fix its cause",
    ),
    C("DB_CONNECTION_REFUSED", "db-connection", "TRIAGE_DATABASE", "database"),
    C(
        "DB_POOL_EXHAUSTED",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "db-connection",
        "database connections are exhausted",
        "Size the connection pool against max_connections (or add RDS Proxy); alarm at 80%",
    ),
    C(
        "DB_IDLE_IN_TRANSACTION",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        ticket="Set idle_in_transaction_session_timeout and fix the code path that holds them",
    ),
    C(
        "DB_LONG_RUNNING_QUERY",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        ticket="Set statement_timeout for the app role and fix or index the long query",
    ),
    C(
        "DB_URL_MISMATCH",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "db-connection",
        "the service points at another database host",
        "Make the task definition's DATABASE_URL come from one source (SSM/Secrets Manager)",
    ),
    C(
        "DB_RPO_AT_RISK",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        ticket="Turn on automated backups with point-in-time recovery; alarm on backup age",
    ),
    # api-latency
    C(
        "API_LATENCY_HIGH",
        "api-latency",
        "TRIAGE_ERRORS",
        "api",
        "api-latency",
        "the API is slow",
        "Alarm on p95 latency above 500 ms and fix the slowest endpoints",
    ),
    C(
        "DB_SLOW_QUERIES",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "api-latency",
        "slow queries in the logs",
        "Tune the slow statements named in the evidence",
    ),
    C(
        "DB_MISSING_INDEX",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        "api-latency",
        "sequential scans dominate a large table",
        "Add the missing index the evidence names (through an Alembic migration)",
    ),
    C(
        "RDS_CPU_HIGH",
        "db-connection",
        "TRIAGE_DATABASE",
        "database",
        ticket="Find the top statements (pg_stat_statements) and tune or scale the instance",
    ),
    # photo-upload
    C(
        "S3_BUCKET_MISSING",
        "photo-upload",
        "TRIAGE_S3",
        "file-storage",
        ticket="Protect the uploads bucket from deletion (policy, Terraform prevent_destroy)",
    ),
    C(
        "S3_WRITE_DENIED",
        "photo-upload",
        "TRIAGE_S3",
        "file-storage",
        ticket="Fix the task role's s3:PutObject grant and test uploads in CI",
    ),
    C(
        "S3_POLICY_OVERBROAD",
        "photo-upload",
        "TRIAGE_S3",
        "file-storage",
        ticket="Replace the s3:* bucket policy with the least-privilege one shown in the report",
    ),
    C("S3_PUBLIC_ACCESS_OPEN", "photo-upload", "TRIAGE_S3", "file-storage"),
    C(
        "UPLOAD_ERRORS_IN_LOGS",
        "photo-upload",
        "TRIAGE_S3",
        "file-storage",
        ticket="Fix the upload errors named in the logs; alarm on their rate",
    ),
    C(
        "S3_ORPHANED_UPLOADS",
        "photo-upload",
        "TRIAGE_S3",
        "file-storage",
        ticket="Schedule the orphaned-uploads cleanup and abort stale multipart uploads (lifecycle)",
    ),
    # websocket
    C("REDIS_NOT_AVAILABLE", "websocket", "TRIAGE_REDIS", "api", ticket=_REDIS),
    C("REDIS_UNREACHABLE", "websocket", "TRIAGE_REDIS", "api", ticket=_REDIS),
    C("REDIS_MEMORY_PRESSURE", "websocket", "TRIAGE_REDIS", "api", ticket=_REDIS),
    C("REDIS_CLIENTS_EXHAUSTED", "websocket", "TRIAGE_REDIS", "api", ticket=_REDIS),
    C("WS_HANDSHAKE_FAILING", "websocket", "TRIAGE_WEBSOCKET", "api", ticket=_WS),
    C("WS_RECONNECT_SPIKE", "websocket", "TRIAGE_WEBSOCKET", "api", ticket=_WS),
    # notifications
    C(
        "NOTIFY_CONFIG_MISSING",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Put the notification credentials in the task definition's secrets",
    ),
    C(
        "TWILIO_AUTH_FAILED",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Rotate the Twilio credentials into Secrets Manager and monitor auth failures",
    ),
    C(
        "TWILIO_BALANCE_LOW",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Turn on Twilio auto-recharge and alarm on the balance",
    ),
    C(
        "WHATSAPP_API_FAILING",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Use a system-user WhatsApp token (no expiry) and alarm on Graph API errors",
    ),
    C(
        "NOTIFY_SEND_ERRORS",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Fix the send errors named in the evidence (numbers, templates, limits)",
    ),
    C(
        "OTP_ENDPOINT_FAILING",
        "notifications",
        "TRIAGE_NOTIFICATIONS",
        "notifications",
        ticket="Add a synthetic OTP check to the deploy pipeline",
    ),
    # migration
    C("MIGRATION_PENDING", "migration", "TRIAGE_MIGRATIONS", "database", ticket=_MIGRATION),
    C("MIGRATION_MULTIPLE_HEADS", "migration", "TRIAGE_MIGRATIONS", "database", ticket=_MIGRATION),
    C("MIGRATION_UNKNOWN_REVISION", "migration", "TRIAGE_MIGRATIONS", "database", ticket=_MIGRATION),
    C(
        "MIGRATION_OBJECT_EXISTS",
        "migration",
        "TRIAGE_MIGRATIONS",
        "database",
        "migration",
        "a migration failed",
        _MIGRATION,
    ),
    C(
        "SCHEMA_DRIFT",
        "migration",
        "TRIAGE_MIGRATIONS",
        "database",
        ticket="Generate a migration for the drift between the models and the database",
    ),
    # every runbook
    C(
        "AWS_UNREACHABLE",
        None,
        None,
        None,
        ticket="Make sure the runbooks can reach the AWS APIs from where they run (VPC endpoints, IAM)",
    ),
    C("LOGS_UNPARSED", None, None, None),
    # triage: one per component (a symptom summary; its sub-checks carry the runbook)
    C("TRIAGE_API", None, "TRIAGE_API", "api"),
    C("TRIAGE_ECS", None, "TRIAGE_ECS", "api"),
    C("TRIAGE_DATABASE", None, "TRIAGE_DATABASE", "database"),
    C("TRIAGE_REDIS", None, "TRIAGE_REDIS", "api"),
    C("TRIAGE_WEBSOCKET", None, "TRIAGE_WEBSOCKET", None),
    C("TRIAGE_S3", None, "TRIAGE_S3", "file-storage"),
    C("TRIAGE_ERRORS", None, "TRIAGE_ERRORS", "api"),
    C("TRIAGE_NOTIFICATIONS", None, "TRIAGE_NOTIFICATIONS", "notifications"),
    C("TRIAGE_MIGRATIONS", None, "TRIAGE_MIGRATIONS", "database"),
    # families: codes not listed one by one
    C("API_", "api-down", "TRIAGE_API", "api"),
    C("ECS_", "api-down", "TRIAGE_ECS", "api"),
    C("ERRORS_", "api-down", "TRIAGE_ERRORS", None),
    C("DB_", "db-connection", "TRIAGE_DATABASE", "database"),
    C("RDS_", "db-connection", "TRIAGE_DATABASE", "database"),
    C("REDIS_", "websocket", "TRIAGE_REDIS", "api", ticket=_REDIS),
    C("WS_", "websocket", "TRIAGE_WEBSOCKET", "api", ticket=_WS),
    C("S3_", "photo-upload", "TRIAGE_S3", "file-storage"),
    C("UPLOAD_", "photo-upload", "TRIAGE_S3", "file-storage"),
    C("NOTIFY_", "notifications", "TRIAGE_NOTIFICATIONS", "notifications"),
    C("TWILIO_", "notifications", "TRIAGE_NOTIFICATIONS", "notifications"),
    C("WHATSAPP_", "notifications", "TRIAGE_NOTIFICATIONS", "notifications"),
    C("OTP_", "notifications", "TRIAGE_NOTIFICATIONS", "notifications"),
    C("MIGRATION_", "migration", "TRIAGE_MIGRATIONS", "database", ticket=_MIGRATION),
)
del C

REGISTRY: dict[str, Code] = {c.code: c for c in TABLE}
_FAMILIES = sorted((c for c in TABLE if c.code.endswith("_")), key=lambda c: -len(c.code))


def lookup(code: str) -> Code | None:
    """The code's row: the code itself, else the longest family prefix; None when the registry does not know it."""
    if code in REGISTRY:
        return REGISTRY[code]
    return next((c for c in _FAMILIES if code.startswith(c.code)), None)


def codes() -> tuple[str, ...]:
    """Every code listed one by one (families left out)."""
    return tuple(c.code for c in TABLE if not c.code.endswith("_"))


def runbook_of(code: str) -> str | None:
    row = lookup(code)
    return row.runbook if row else None


def service_of(code: str) -> str | None:
    row = lookup(code)
    return row.service if row else None


def follow_up(code: str) -> tuple[str, str] | None:
    """(runbook, why) to open next when ``code`` fails, for the codes listed one by one."""
    row = REGISTRY.get(code)
    return (row.follow_up, row.why) if row and row.follow_up else None


def follow_ups() -> dict[str, tuple[str, str]]:
    return {c.code: (c.follow_up, c.why) for c in TABLE if c.follow_up}


def ticket(code: str) -> str | None:
    row = lookup(code)
    return row.ticket if row else None
