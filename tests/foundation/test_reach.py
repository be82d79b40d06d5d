"""reach: every call to AWS and PostgreSQL is tallied, and a target that does not answer is a fail.

Real parts: botocore against the sandbox's moto server (directly, through a throttling proxy, and at a
closed port); SQLAlchemy against the sandbox's PostgreSQL and a closed port.
"""

from __future__ import annotations

import pytest

from propflow_ops import reach
from propflow_ops.findings import Evidence, Finding
from propflow_ops.sources import aws, db
from tests.safety.harness import AwsProxy, closed_port


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    reach.reset()
    yield
    reach.reset()
    aws.clear_cache()


def _client(monkeypatch, endpoint: str, env: dict[str, str]):
    for k, v in env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    aws.clear_cache()
    return aws.client("ecs")


def codes(findings: list[Finding]) -> dict[str, str]:
    return {f.code: f.status.value for f in findings}


def test_answered_calls_give_ok_and_resource_errors_count_as_answers(monkeypatch, sandbox_env):
    ecs = _client(monkeypatch, sandbox_env["AWS_ENDPOINT_URL"], sandbox_env)
    ecs.list_clusters()
    with pytest.raises(Exception):  # noqa: B017 - an error about the resource is still an answer
        ecs.describe_services(cluster="no-such-cluster", services=["x"], include=["TAGS"])
    found = reach.findings()
    assert codes(found) == {"AWS_UNREACHABLE": "ok"}, found
    assert found[0].data == {"calls": 2, "unanswered": 0}


def test_throttling_until_retries_give_up_is_a_fail(monkeypatch, sandbox_env):
    proxy = AwsProxy(sandbox_env["AWS_ENDPOINT_URL"], throttle=True)
    try:
        ecs = _client(monkeypatch, proxy.url, sandbox_env)
        with pytest.raises(Exception, match="Throttl"):
            ecs.list_clusters()
    finally:
        proxy.close()
    assert len(proxy.calls) >= 2, "boto3 did not retry"
    (f,) = reach.findings()
    assert (f.code, f.status.value) == ("AWS_UNREACHABLE", "fail"), f
    assert "ecs:ListClusters" in f.detail and "Throttl" in f.detail


def test_a_closed_aws_port_is_a_fail(monkeypatch, sandbox_env):
    ecs = _client(monkeypatch, f"http://127.0.0.1:{closed_port()}", sandbox_env)
    with pytest.raises(Exception):  # noqa: B017
        ecs.list_clusters()
    assert codes(reach.findings()) == {"AWS_UNREACHABLE": "fail"}


def test_database_connections_are_tallied(sandbox_env):
    good = db.make_engine(sandbox_env["PROPFLOW_DATABASE_URL"])
    assert db.ping(good).ok
    assert codes(reach.findings()) == {"DB_UNREACHABLE": "ok"}
    dead = db.make_engine(f"postgresql://propflow:pw@127.0.0.1:{closed_port()}/propflow", connect_timeout_s=1)
    assert not db.ping(dead).ok
    (f,) = reach.findings()
    assert (f.status.value, f.data) == ("fail", {"calls": 2, "unanswered": 1}), f
    assert "pw@" not in f.detail


def test_a_failing_query_on_a_live_database_is_not_unreachable(sandbox_env):
    engine = db.make_engine(sandbox_env["PROPFLOW_DATABASE_URL"])
    with pytest.raises(Exception):  # noqa: B017
        db.query_df(engine, "SELECT * FROM no_such_table")
    assert codes(reach.findings()) == {"DB_UNREACHABLE": "ok"}


def test_the_runbook_own_finding_wins_and_save_adds_the_rest_once(sandbox_env):
    reach.unanswered("database", "refused")
    reach.answered("aws")
    ev = Evidence(runbook="api-down", title="t", incident={}, parameters={})
    ev.finishers.append(lambda e: reach.findings({f.code for f in e.findings}))
    ev.add(Finding.fail("DB_UNREACHABLE", "own check", "refused"))
    ev.save()
    ev.save()
    assert [(f.code, f.status.value, f.title) for f in ev.findings] == [
        ("DB_UNREACHABLE", "fail", "own check"),
        ("AWS_UNREACHABLE", "ok", "AWS APIs answered"),
    ]
    assert ev.status() == "problems"


def test_reset_forgets_the_previous_run():
    reach.unanswered("aws", "throttled")
    reach.reset()
    assert reach.findings() == []
