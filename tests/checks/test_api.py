from __future__ import annotations

import json

from propflow_ops.checks import api
from propflow_ops.errors import NoAnswer
from propflow_ops.findings import Finding
from propflow_ops.records import HttpAnswer
from propflow_ops.results import Fetched


def probe(**kw):
    return Fetched(
        HttpAnswer(**({"url": "http://x/health", "status": 200, "latency_ms": 12.0, "body": {}} | kw))
    )


def no_answer(text="URLError: refused", attempts=3, unreachable=True):
    return Fetched(None, NoAnswer(text, unreachable=unreachable, attempts=attempts), "http://x/health", 0.5)


def test_health():
    assert api.health(probe()).status == "ok"
    assert api.health(probe().value).status == "ok"  # unwrapped (takes_fetched) as well
    f = api.health(
        probe(status=503, attempts=3, body={"status": "degraded", "database": "error"}, problem="HTTP 503")
    )
    assert f.status == "fail" and "503" in f.title and "database=error" in f.detail
    assert f.data["attempts"] == 3 and f.data["status"] == 503
    refused = api.health(no_answer())
    assert refused.status == "fail" and "refused" in refused.title
    assert refused.data == {
        "url": "http://x/health",
        "status": None,
        "latency_ms": 500.0,
        "attempts": 3,
        "body": None,
    }
    assert "after 3 attempt(s)" in refused.detail
    assert api.health(no_answer("unsupported URL scheme 'file'", 0, unreachable=False)).status == "error"
    redirect = api.health(
        probe(status=302, body={"redirect": "HTTP 302 redirect to b.example:443, not followed"})
    )
    assert redirect.status == "fail" and "b.example:443" in redirect.detail
    assert api.health(probe(attempts=2)).status == "warn"
    assert api.health(probe(latency_ms=2500.0)).status == "warn"
    assert api.health(None).status == "skipped"
    assert api.health(Fetched()).status == "skipped"
    assert api.health_url("https://api.propflow.com/") == "https://api.propflow.com/health"


def test_probe_table():
    assert list(api.probe_table(probe()).iloc[0]) == ["http://x/health", True, 200, 12.0, 1, None]
    row = api.probe_table(no_answer()).iloc[0]
    assert (row["ok"], row["status"], row["attempts"], row["error"]) == (False, None, 3, "URLError: refused")
    assert api.probe_table(None).empty and list(api.probe_table(None).columns) == api.PROBE_COLUMNS


def test_health_data_is_json():
    f = api.health(probe(status=503, body={"detail": "x"}, problem="HTTP 503"))
    assert json.loads(json.dumps(f.to_json()))["data"]["body"] == {"detail": "x"}
    # an answer itself in finding data becomes its fields (a dataclass is JSON-able)
    as_data = Finding.ok("API_HEALTH_FAILING", "x", answer=probe().value).to_json()["data"]["answer"]
    assert as_data["status"] == 200 and as_data["url"] == "http://x/health"


def test_follow_ups():
    found = [
        Finding.fail("DB_UNREACHABLE", "x"),
        Finding.ok("API_LATENCY_HIGH", "y"),
        Finding.fail("ECS_TASK_OOM", "z"),
    ]
    assert api.follow_ups(found, current="api-down") == {
        "db-connection": "DB_UNREACHABLE: the database does not answer"
    }
