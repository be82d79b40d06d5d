"""Triage judgements on hand-made signals: folding, error attribution, recommendations and their order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from propflow_ops.checks import triage as t
from propflow_ops.errors import NoAnswer
from propflow_ops.findings import Finding, Status
from propflow_ops.records import HttpAnswer
from propflow_ops.results import Fetched

END = datetime(2026, 11, 26, 3, 15, tzinfo=UTC)
SINCE = END - timedelta(minutes=15)


def component(code: str, *subs: Finding) -> Finding:
    return t.fold(code, list(subs), what=code)


def test_fold_takes_the_worst_status_and_names_the_problems():
    f = component(
        "TRIAGE_DATABASE",
        Finding.ok("DB_UNREACHABLE", "answers"),
        Finding.warn("DB_RPO_AT_RISK", "old"),
        Finding.fail("DB_POOL_EXHAUSTED", "full"),
        Finding.error("DB_URL_MISMATCH", "cannot read", "boom"),
    )
    assert f.status is Status.FAIL and f.title == "TRIAGE_DATABASE: full"
    assert f.detail.startswith(
        "DB_POOL_EXHAUSTED fail: full; DB_URL_MISMATCH error: cannot read; DB_RPO_AT_RISK warn: old"
    )
    # one status order (findings.STATUS_ORDER): a check that could not run outranks a risk
    both = component(
        "TRIAGE_DATABASE",
        Finding.warn("DB_RPO_AT_RISK", "old"),
        Finding.error("DB_URL_MISMATCH", "cannot read", "boom"),
    )
    assert both.status is Status.ERROR and both.title == "TRIAGE_DATABASE: cannot read"
    runbooks = {c["code"]: c["runbook"] for c in f.data["checks"]}
    assert runbooks == dict.fromkeys(
        ["DB_UNREACHABLE", "DB_RPO_AT_RISK", "DB_POOL_EXHAUSTED", "DB_URL_MISMATCH"], "db-connection"
    )
    assert component("TRIAGE_S3", Finding.ok("S3_BUCKET_MISSING", "there")).status is Status.OK
    assert component("TRIAGE_S3", Finding.error("S3_BUCKET_MISSING", "x", "no answer")).status is Status.ERROR
    assert component("TRIAGE_S3", Finding.skipped("S3_BUCKET_MISSING", "x", "n/a")).status is Status.SKIPPED


@pytest.mark.parametrize(
    "code,slug",
    [
        ("API_HEALTH_FAILING", "api-down"),
        ("ECS_TASK_OOM", "api-down"),
        ("API_LATENCY_HIGH", "api-latency"),
        ("DB_POOL_EXHAUSTED", "db-connection"),
        ("RDS_NOT_AVAILABLE", "db-connection"),
        ("REDIS_UNREACHABLE", "websocket"),
        ("WS_RECONNECT_SPIKE", "websocket"),
        ("S3_ORPHANED_UPLOADS", "photo-upload"),
        ("UPLOAD_ERRORS_IN_LOGS", "photo-upload"),
        ("TWILIO_BALANCE_LOW", "notifications"),
        ("OTP_ENDPOINT_FAILING", "notifications"),
        ("MIGRATION_PENDING", "migration"),
        ("SCHEMA_DRIFT", "migration"),
        ("SOMETHING", None),
    ],
)
def test_owner(code, slug):
    assert t.owner(code) == slug


def test_recommendations_most_severe_first_and_the_dependency_before_the_api():
    found = [
        component("TRIAGE_WEBSOCKET", Finding.fail("WS_RECONNECT_SPIKE", "spike")),  # P2
        component("TRIAGE_S3", Finding.warn("S3_POLICY_OVERBROAD", "s3:*")),  # P1
        component("TRIAGE_ECS", Finding.fail("ECS_SERVICE_DEGRADED", "1/2")),  # P0
        component("TRIAGE_DATABASE", Finding.fail("DB_UNREACHABLE", "refused")),  # P0, the dependency
        component("TRIAGE_REDIS", Finding.ok("REDIS_UNREACHABLE", "pong")),
    ]
    recs = t.recommendations(found)
    assert [s for s, _ in recs] == ["db-connection", "api-down", "photo-upload", "websocket"]
    reasons = dict(recs)
    assert reasons["db-connection"] == "P0: DB_UNREACHABLE fail: refused"
    assert reasons["photo-upload"] == "P1: S3_POLICY_OVERBROAD warn: s3:*"
    assert t.recommendations([component("TRIAGE_API", Finding.ok("API_HEALTH_FAILING", "200"))]) == []


def test_a_health_body_naming_a_dependency_points_at_its_runbook_not_api_down():
    health = Fetched(
        HttpAnswer(
            "http://x/health",
            503,
            3.0,
            body={"status": "degraded", "database": "ok", "redis": "error: refused"},
        )
    )
    assert t.health_dependencies(health) == ["redis"]
    found = [t.api(health)]
    assert found[0].status is Status.FAIL
    recs = t.recommendations(found, health=health)
    assert [s for s, _ in recs] == ["websocket"] and "naming redis" in recs[0][1]


def test_when_the_api_is_down_probes_through_it_point_at_api_down():
    health = Fetched(
        HttpAnswer("http://x/health", 503, 3.0, body={"status": "error", "detail": "no healthy upstream"})
    )
    found = [
        t.api(health),
        component("TRIAGE_WEBSOCKET", Finding.fail("WS_HANDSHAKE_FAILING", "503")),
        component("TRIAGE_NOTIFICATIONS", Finding.fail("OTP_ENDPOINT_FAILING", "503")),
        component("TRIAGE_ERRORS", Finding.fail("API_LATENCY_HIGH", "slow")),
    ]
    recs = t.recommendations(found, health=health)
    assert [s for s, _ in recs] == ["api-down"]
    assert "WS_HANDSHAKE_FAILING fails with the API" in recs[0][1]


def logs(rows: list[tuple[int, str, str, int | None, float | None]]) -> pd.DataFrame:
    """(minutes before END, level, event, status, latency_ms) -> a frame shaped like sources.logs."""
    return pd.DataFrame(
        {
            "timestamp": [pd.Timestamp(END - timedelta(minutes=m)) for m, *_ in rows],
            "level": [r[1] for r in rows],
            "event": [r[2] for r in rows],
            "method": ["GET"] * len(rows),
            "path": ["/api/v1/properties"] * len(rows),
            "status": pd.array([r[3] for r in rows], dtype="Int64"),
            "latency_ms": pd.array([r[4] for r in rows], dtype="Float64"),
            "message": ["m"] * len(rows),
        }
    )


def test_errors_are_attributed_to_where_they_come_from():
    healthy = [(m, "INFO", "request", 200, 120.0) for m in range(1, 15) for _ in range(20)]
    uploads = [(m, "ERROR", "upload", 500, 140.0) for m in range(1, 15) for _ in range(6)]
    old = [(40, "ERROR", "request", 500, 100.0)] * 200  # before the recent window: not counted
    f = t.errors(logs(healthy + uploads + old), since=SINCE, end=END)
    rate = next(c for c in f.data["checks"] if c["code"] == "ERRORS_RATE_HIGH")
    assert rate["status"] == "fail" and rate["runbook"] == "photo-upload"
    assert [s for s, _ in t.recommendations([f])] == ["photo-upload"]
    quiet = t.errors(logs(healthy + old), since=SINCE, end=END)
    assert quiet.status is Status.OK


def test_latency_over_the_threshold_recommends_api_latency():
    slow = [(m, "INFO", "request", 200, 1800.0) for m in range(1, 15) for _ in range(20)]
    f = t.errors(logs(slow), since=SINCE, end=END)
    assert f.status is Status.FAIL
    assert [s for s, _ in t.recommendations([f])] == ["api-latency"]
    assert t.errors(logs(slow), since=SINCE, end=END, latency_p95_ms=5000).status is Status.OK
    assert t.errors(RuntimeError("logs unreachable"), since=SINCE, end=END).status is Status.ERROR


def test_trend_frames_count_errors_per_minute_with_empty_minutes():
    rows = [
        (2, "ERROR", "request", 500, 10.0),
        (2, "ERROR", "request", 500, 10.0),
        (5, "INFO", "request", 200, 90.0),
    ]
    frames = t.trend_frames(logs(rows), since=SINCE, end=END)
    errs = frames["errors_per_min"].set_index("timestamp")["value"]
    assert len(errs) == 16 and errs.sum() == 2 and errs[pd.Timestamp(END - timedelta(minutes=2))] == 2
    assert list(frames["p95_ms"]["value"]) == [90.0, 10.0]
    assert t.trend_frames(RuntimeError("x"), since=SINCE, end=END)["p95_ms"].empty


@pytest.mark.parametrize(
    "probe,status",
    [
        (Fetched(HttpAnswer("u", 422, 3.0)), "ok"),
        (Fetched(HttpAnswer("u", 500, 3.0, problem="HTTP 500")), "fail"),
        (
            Fetched(None, NoAnswer("ConnectionRefusedError: refused", unreachable=True, attempts=1), "u"),
            "fail",
        ),
        (Fetched(None, NoAnswer("unsupported URL scheme 'file'"), "u"), "error"),
        (RuntimeError("x"), "error"),
        (None, "skipped"),
        (Fetched(), "skipped"),
        (
            Fetched(
                HttpAnswer("u", 302, 1.0, problem="HTTP 302 redirect to login.example:443, not followed")
            ),
            "warn",
        ),
        (
            Fetched(HttpAnswer("u", 307, 1.0, problem="HTTP 307 redirect to 10.0.0.9:80, not followed")),
            "warn",
        ),
    ],
)
def test_otp_route_probe(probe, status):
    assert t.otp_route_probe(probe).status.value == status


def test_otp_route_redirect_names_where_it_points():
    f = t.otp_route_probe(
        Fetched(HttpAnswer("u", 302, 1.0, problem="HTTP 302 redirect to login.example:443, not followed"))
    )
    assert "login.example:443" in f.detail and f.data == {"status": 302, "latency_ms": 1.0}


def test_index_only_drift_is_a_latency_hint_not_a_migration_failure():
    drift = SimpleNamespace(
        diffs=pd.DataFrame(
            [
                {
                    "change": "remove_index",
                    "table": "maintenance_requests",
                    "name": "ix_mr_property_id",
                    "detail": "",
                }
            ]
        )
    )
    f = t.index_only_drift(Finding.fail("SCHEMA_DRIFT", "drift"), drift)
    assert f.status is Status.WARN and f.data["runbook"] == "api-latency"
    columns = SimpleNamespace(
        diffs=pd.DataFrame([{"change": "add_column", "table": "t", "name": "c", "detail": ""}])
    )
    assert t.index_only_drift(Finding.fail("SCHEMA_DRIFT", "drift"), columns).status is Status.FAIL


def test_grid_rows_and_recorded_recommendations():
    found = [component("TRIAGE_API", Finding.fail("API_HEALTH_FAILING", "503"))]
    rows = t.grid_rows(found)
    assert [r["component"] for r in rows] == [label for _, label in t.COMPONENTS]
    assert rows[0]["status"] == "fail" and rows[1]["status"] == "skipped"
    ev = SimpleNamespace(recs=[], recommend=lambda s, r: ev.recs.append((s, r)))
    table = t.record_recommendations(ev, [("api-down", "P0: x")])
    assert ev.recs == [("api-down", "P0: x")] and list(table["runbook"]) == ["api-down"]


def _rds() -> dict:
    return {
        "DBInstanceIdentifier": "propflow-db",
        "DBInstanceStatus": "available",
        "BackupRetentionPeriod": 7,
        "LatestRestorableTime": END - timedelta(minutes=1),
        "Endpoint": {"Address": "db.internal", "Port": 5432},
    }


def _database(ping: Fetched, **kw) -> Fetched:
    from propflow_ops.records import DatabaseSignals

    signals = DatabaseSignals(True, "db.internal", "env PROPFLOW_DATABASE_URL", ping, **kw)
    return Fetched(signals, None, "database", 0.01)


def _sub(f: Finding, code: str) -> dict:
    return next(c for c in f.data["checks"] if c["code"] == code)


def test_database_judged_from_the_probe_record():
    from propflow_ops.errors import FetchError
    from propflow_ops.records import DatabaseSignals, DbPing

    sessions = pd.DataFrame(
        {"pid": [1], "state": ["active"], "backend_type": ["client backend"], "age_s": [1.0]}
        | {"xact_age_s": [1.0], "query_age_s": [1.0], "application_name": ["propflow-api"], "query": ["x"]}
    )
    live = _database(
        Fetched(DbPing(2.5, "16.4", "db.internal"), None, "db.internal", 0.0025),
        activity=Fetched(sessions, None, "activity@db.internal"),
        max_connections=Fetched(100, None, "max_connections@db.internal"),
    )
    f = t.database(_rds(), live, None, now=END)
    codes = {c["code"]: c["status"] for c in f.data["checks"]}
    assert codes["DB_UNREACHABLE"] == "ok" and codes["DB_POOL_EXHAUSTED"] == "ok", f.data["checks"]
    assert {"DB_IDLE_IN_TRANSACTION", "DB_LONG_RUNNING_QUERY"} <= set(codes)

    # a dead database: the ping's unreachable error is DB_UNREACHABLE fail, the session checks are not asked
    refused = FetchError("OperationalError: connection refused", unreachable=True)
    down = FetchError("database unreachable", unreachable=True)
    dead = _database(
        Fetched(None, refused, "db.internal", 0.004),
        activity=Fetched(None, down, "activity@db.internal"),
        max_connections=Fetched(None, down, "max_connections@db.internal"),
    )
    f = t.database(_rds(), dead, None, now=END)
    assert f.status is Status.FAIL and f.title == "Database: Database unreachable"
    assert _sub(f, "DB_UNREACHABLE")["detail"] == "db.internal: OperationalError: connection refused"
    assert {c["code"] for c in f.data["checks"]} == {"RDS_NOT_AVAILABLE", "DB_RPO_AT_RISK", "DB_UNREACHABLE"}

    unset = Fetched(DatabaseSignals(False, None, "not configured"), None, "database")
    assert _sub(t.database(_rds(), unset, None, now=END), "DB_UNREACHABLE")["status"] == "skipped"
    late = Fetched(None, FetchError("no answer within the triage budget of 25 s"), "database", 25.0)
    assert _sub(t.database(_rds(), late, None, now=END), "DB_UNREACHABLE")["status"] == "error"
