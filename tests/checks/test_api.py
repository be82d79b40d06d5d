from __future__ import annotations

from propflow_ops.checks import api
from propflow_ops.findings import Finding


def probe(**kw):
    return {
        "url": "http://x/health",
        "ok": True,
        "status": 200,
        "latency_ms": 12.0,
        "attempts": 1,
        "body": {},
        "error": None,
    } | kw


def test_health():
    assert api.health(probe()).status == "ok"
    f = api.health(
        probe(
            ok=False,
            status=503,
            attempts=3,
            body={"status": "degraded", "database": "error"},
            error="HTTP 503",
        )
    )
    assert f.status == "fail" and "503" in f.title and "database=error" in f.detail
    refused = api.health(probe(ok=False, status=None, latency_ms=None, attempts=3, error="URLError: refused"))
    assert refused.status == "fail" and "refused" in refused.title
    assert api.health(probe(attempts=2)).status == "warn"
    assert api.health(probe(latency_ms=2500.0)).status == "warn"
    assert api.health(None).status == "skipped"
    assert api.health_url("https://api.propflow.com/") == "https://api.propflow.com/health"


def test_follow_ups():
    found = [
        Finding.fail("DB_UNREACHABLE", "x"),
        Finding.ok("API_LATENCY_HIGH", "y"),
        Finding.fail("ECS_TASK_OOM", "z"),
    ]
    assert api.follow_ups(found, current="api-down") == {
        "db-connection": "DB_UNREACHABLE: the database does not answer"
    }
