"""The simulated PropFlow production ("sandbox") and its fault scenarios.

``Sandbox`` starts, in this process, moto's AWS server (ECS cluster
``propflow``/service ``propflow-api``, task definitions, log group
``/ecs/propflow-api`` with structured JSON logs, CloudWatch metrics, RDS
``propflow-db``, S3 ``propflow-uploads``, ElastiCache ``propflow-redis``), a
real PostgreSQL (embedded, or a database of its own on the server named by
``PROPFLOW_SANDBOX_DATABASE_URL``), a real Redis (embedded, or an empty db it
claims on ``PROPFLOW_SANDBOX_REDIS_URL``) and HTTP stand-ins for the PropFlow API,
Twilio and Meta Graph. ``Sandbox.env`` points every client at it; target
variables in the environment (``PROPFLOW_DATABASE_URL``, ``AWS_PROFILE``, ...) are
ignored, see :mod:`.isolation`.

Scenarios (``Sandbox.use(*names)`` resets to healthy, then injects):

- ``healthy``: no fault.
- ``api-oom``: both tasks stopped OutOfMemoryError/exit 137 (stopCode EssentialContainerExited), one
  replacement running (1/2), MemoryUtilization 93-99% for 15 min, 502/SIGKILL ERROR logs, /health 503.
- ``api-bad-deploy``: revision 4 deployed, PRIMARY deployment rolloutState FAILED (circuit breaker),
  three new tasks stopped with exit 1, health-check events, 1/2 running.
- ``api-latency-high``: PropFlow/API Latency 1.6-2.6 s and RDS CPU 84-97%, ECS CPU 86-96% for 20 min,
  slow request/"slow query" log lines, index ix_maintenance_requests_property_id dropped and 150
  real sequential scans of maintenance_requests (50k rows).
- ``db-down``: PostgreSQL stopped (pg_ctl), RDS status storage-full, "Connection refused" logs,
  /health 503 (database).
- ``db-pool-exhausted``: real sessions held up to 90% of max_connections (40), QueuePool and
  "too many clients" ERROR logs.
- ``db-idle-in-transaction``: a propflow-api session idle in transaction after an UPDATE.
- ``db-long-query``: a propflow-api session running SELECT pg_sleep(3600).
- ``db-url-mismatch``: service on a new revision whose DATABASE_URL host is propflow-db-old.
- ``db-backups-off``: RDS BackupRetentionPeriod 0, LatestRestorableTime 26 h old.
- ``s3-bucket-missing``: bucket emptied and deleted, NoSuchBucket upload errors in logs.
- ``s3-write-denied``: explicit Deny s3:PutObject for the task role, AccessDenied upload logs.
- ``s3-policy-overbroad``: the runbook's s3:* example plus a Principal "*" GetObject statement,
  public access block removed.
- ``s3-orphans``: 30 unreferenced objects 8-40 days old and 3 incomplete multipart uploads.
- ``redis-down``: Redis stopped, ElastiCache status "rebooting cache cluster nodes", ws disconnects.
- ``redis-maxclients``: maxclients 30 with 28 taken, rejected_connections > 0.
- ``redis-memory-pressure``: maxmemory 4 MB, allkeys-lru, filled until keys are evicted.
- ``ws-handshake-failing``: /ws/<token> answers 503, handshake ERROR logs.
- ``ws-reconnect-storm``: ~14 ws_disconnect + 14 ws_reconnect a minute for 15 min.
- ``twilio-auth-failed``: Twilio answers 401 code 20003.
- ``twilio-low-balance``: Twilio balance 3.17 USD.
- ``whatsapp-token-expired``: Graph answers 401 OAuthException code 190/463.
- ``notify-send-errors``: 2/3 of recent Twilio messages failed/undelivered, notification ERROR logs.
- ``notify-config-missing``: service on a revision without TWILIO_AUTH_TOKEN/WHATSAPP_PHONE_NUMBER_ID.
- ``otp-endpoint-failing``: POST /api/v1/auth/login/otp answers 500.
- ``migration-pending``: real ``alembic downgrade -1``.
- ``migration-multiple-heads``: a second migration file off head's parent in the working copy.
- ``migration-unknown-revision``: alembic_version = e4f5a6b7c8d9 (no such script).
- ``migration-object-exists``: alembic_version one behind head while its table exists,
  DuplicateTable ERROR logs.
- ``schema-drift``: properties.legacy_code added, units.rent_cents dropped by hand.

After ``update_service`` the service rolls out as ECS would, within about a second, or does not when the world
keeps it from running (api-bad-deploy's bad revision, api-oom's dying task): see :mod:`.converge`.

Nothing in ``propflow_ops.checks`` or ``propflow_ops.sources`` imports this package.
"""

from __future__ import annotations

from .canaries import ALL_CANARIES
from .core import Sandbox
from .scenarios import SCENARIOS, Scenario, UnknownScenarioError

__all__ = ["ALL_CANARIES", "SCENARIOS", "Sandbox", "Scenario", "UnknownScenarioError"]
