from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from checks.logframes import frame, line
from propflow_ops.checks import db

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ENDPOINT = "propflow-db.abc.us-east-1.rds.amazonaws.com"


def instance(**kw):
    return {
        "DBInstanceIdentifier": "propflow-db",
        "DBInstanceStatus": "available",
        "Engine": "postgres",
        "Endpoint": {"Address": ENDPOINT, "Port": 5432},
        "MultiAZ": True,
        "BackupRetentionPeriod": 7,
        "LatestRestorableTime": NOW - timedelta(minutes=2),
    } | kw


def test_rds_available():
    assert db.rds_available(instance()).status == "ok"
    f = db.rds_available(instance(DBInstanceStatus="storage-full"))
    assert f.status == "fail" and "storage-full" in f.title
    assert db.rds_available({}, name="propflow-db").status == "fail"  # RDS answered: no such instance
    assert db.rds_available(None, name="propflow-db").status == "skipped"  # never asked
    assert db.rds_available(RuntimeError("timeout")).status == "error"


def test_rpo():
    assert db.rpo_at_risk(instance(), now=NOW).status == "ok"
    off = db.rpo_at_risk(instance(BackupRetentionPeriod=0), now=NOW)
    assert off.status == "fail" and "OFF" in off.title
    stale = db.rpo_at_risk(instance(LatestRestorableTime=NOW - timedelta(minutes=26)), now=NOW)
    assert stale.status == "fail" and stale.data["lag_minutes"] == 26.0
    assert (
        db.rpo_at_risk(
            instance(LatestRestorableTime=NOW - timedelta(minutes=26)), now=NOW, rpo_minutes=30
        ).status
        == "ok"
    )


def test_connectivity():
    from propflow_ops.errors import FetchError
    from propflow_ops.records import DbPing
    from propflow_ops.results import Fetched

    answered = Fetched(DbPing(3.2, "16.4", "db.internal"), None, "db.internal", 0.0032)
    f = db.connectivity(answered)
    assert f.status == "ok" and f.data == {"latency_ms": 3.2, "host": "db.internal"} and "3 ms" in f.title
    refused = FetchError("OperationalError: connection refused", unreachable=True)
    f = db.connectivity(Fetched(None, refused, "db.internal", 0.001))
    assert f.status == "fail" and f.detail == "db.internal: OperationalError: connection refused"
    assert f.data == {"latency_ms": 1.0, "host": "db.internal"}
    denied = FetchError("OperationalError: password authentication failed for user", unreachable=False)
    assert db.connectivity(Fetched(None, denied, "db.internal", 0.002)).status == "fail"
    assert db.connectivity(Fetched(None, None, "database (not configured)")).status == "skipped"
    assert db.connectivity(None).status == "skipped"
    assert db.connectivity(answered, configured=False).status == "skipped"
    assert list(db.ping_table(answered).iloc[0]) == ["db.internal", "", True, 3.2, "16.4", None]
    row = db.ping_table(Fetched(None, refused, "db.internal", 0.001)).iloc[0]
    assert (row["ok"], row["error"], row["server_version"]) == (False, str(refused), None)


def activity(*rows):
    cols = [
        "pid",
        "application_name",
        "state",
        "backend_type",
        "wait_event_type",
        "wait_event",
        "age_s",
        "xact_age_s",
        "query_age_s",
        "query",
    ]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], columns=cols)


IDLE = (11, "propflow-api", "idle", "client backend", "Client", "ClientRead", 5.0, None, 5.0, "SELECT 1")
IDLE_TX = (
    12,
    "propflow-api",
    "idle in transaction",
    "client backend",
    "Client",
    "ClientRead",
    95.0,
    100.0,
    96.0,
    "UPDATE maintenance_requests SET status = 'open' WHERE id = 7",
)
LONG = (
    13,
    "propflow-api",
    "active",
    "client backend",
    "Timeout",
    "PgSleep",
    45.0,
    45.0,
    45.0,
    "SELECT pg_sleep(3600)",
)
AUTOVAC = (14, "", "active", "autovacuum worker", None, None, 400.0, 400.0, 400.0, "autovacuum: VACUUM x")


def test_idle_in_transaction():
    assert db.idle_in_transaction(activity(IDLE, LONG)).status == "ok"
    f = db.idle_in_transaction(activity(IDLE, IDLE_TX))
    assert f.status == "fail" and f.data["sessions"][0]["pid"] == 12
    assert db.idle_in_transaction(activity(IDLE_TX), max_idle_s=120).status == "ok"


def test_long_running_queries_ignore_background_workers():
    assert db.long_running_queries(activity(IDLE, AUTOVAC)).status == "ok"
    f = db.long_running_queries(activity(IDLE, LONG, AUTOVAC))
    assert f.status == "fail" and "pg_sleep" in f.detail
    assert db.long_running_queries(activity(LONG), max_query_s=60).status == "ok"


def test_activity_summary_counts_client_sessions():
    s = db.activity_summary(activity(IDLE, IDLE, IDLE_TX, AUTOVAC))
    assert s["sessions"].sum() == 3 and s.iloc[0]["sessions"] == 2


def test_pool_exhausted_by_count_or_by_log_lines():
    sessions = activity(*[IDLE] * 36)
    quiet = frame([line(1)])
    f = db.pool_exhausted(sessions, 40, quiet)
    assert f.status == "fail" and f.data["used_pct"] == 90.0
    assert db.pool_exhausted(activity(*[IDLE] * 10), 40, quiet).status == "ok"
    noisy = frame([line(1, "ERROR", "QueuePool limit of size 20 overflow 10 reached, connection timed out")])
    f = db.pool_exhausted(activity(*[IDLE] * 10), 40, noisy)
    assert f.status == "fail" and f.data["pool_error_lines"] == 1
    assert db.pool_exhausted(RuntimeError("down"), RuntimeError("down"), quiet).status == "error"


def test_url_mismatch_shows_hosts_never_the_url():
    good = f"postgresql://propflow:s3cret-pw@{ENDPOINT}:5432/propflow"
    assert db.url_mismatch(good, instance()).status == "ok"
    bad = "postgresql://propflow:s3cret-pw@propflow-db-old.cluster-xyz.rds.amazonaws.com:5432/propflow"
    f = db.url_mismatch({"url": bad, "task_definition": "propflow-api:4"}, instance())
    assert f.status == "fail" and "propflow-db-old" in f.detail
    assert "s3cret" not in repr(f.to_json())
    assert db.url_mismatch({"url": None, "task_definition": "propflow-api:5"}, instance()).status == "fail"
    assert db.url_mismatch(RuntimeError("AccessDenied"), instance()).status == "error"


def test_connection_error_lines_and_query_ages():
    df = frame(
        [
            line(3, "ERROR", "QueuePool limit of size 20 overflow 10 reached"),
            line(2, "ERROR", "FATAL:  sorry, too many clients already"),
            line(1, "ERROR", "connection failed: Connection refused"),
            line(1),
        ]
    )
    assert db.connection_error_lines(df)["kind"].tolist() == [
        "pool exhausted",
        "too many clients",
        "connection refused",
    ]
    ages = db.query_ages(activity(IDLE, LONG))
    assert ages.tolist() == [45.0] and "pg_sleep" in ages.index[0]


def test_connection_refused_lines():
    df = frame(
        [line(1, "ERROR", 'connection to server at "10.0.3.12", port 5432 failed: Connection refused')]
    )
    assert db.connection_errors_in_logs(df).status == "fail"
    assert db.connection_errors_in_logs(frame([line(1)])).status == "ok"
