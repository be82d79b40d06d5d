"""Sandbox recognition: the marker is trusted only with that sandbox's own loopback targets."""

from __future__ import annotations

from propflow_ops.change.target import MARKER, fingerprint, is_local, sandbox_check

LOCAL = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5001",
    "PROPFLOW_API_URL": "http://127.0.0.1:6001",
    "PROPFLOW_DATABASE_URL": "postgresql+psycopg://u:p@/propflow?host=/tmp/sbx/pg",
    "PROPFLOW_REDIS_URL": "unix://:pw@/tmp/sbx/redis.sock?db=0",
    "PROPFLOW_TWILIO_API_URL": "http://localhost:6002",
    "PROPFLOW_META_GRAPH_URL": "http://[::1]:6003/v21.0",
}


def marked(env: dict[str, str]) -> dict[str, str]:
    return {**env, MARKER: fingerprint(env)}


def test_the_sandbox_own_targets_with_its_marker_are_the_sandbox():
    assert sandbox_check(marked(LOCAL)) == (True, "")


def test_a_bare_flag_is_not_trusted():
    ok, why = sandbox_check({**LOCAL, "PROPFLOW_SANDBOX": "1"})
    assert not ok and MARKER in why


def test_a_target_re_pointed_after_the_marker_is_not_the_sandbox():
    env = marked(LOCAL)
    env["PROPFLOW_DATABASE_URL"] = (
        "postgresql://u:p@127.0.0.1:5432/other"  # still loopback, but not that sandbox
    )
    ok, why = sandbox_check(env)
    assert not ok and "changed" in why


def test_a_marker_computed_over_production_urls_proves_nothing():
    prod = {
        **LOCAL,
        "AWS_ENDPOINT_URL": "https://ecs.eu-west-1.amazonaws.com",
        "PROPFLOW_API_URL": "https://api.propflow.com",
    }
    ok, why = sandbox_check(marked(prod))
    assert not ok and "AWS_ENDPOINT_URL" in why and "PROPFLOW_API_URL" in why and "loopback" in why
    assert "amazonaws" not in why and "propflow.com" not in why  # no URL in the message


def test_unset_targets_default_to_production():
    env = dict(LOCAL)
    del env["PROPFLOW_API_URL"]
    ok, why = sandbox_check(marked(env))
    assert not ok and "PROPFLOW_API_URL not set" in why


def test_an_aws_profile_is_not_the_sandbox():
    ok, why = sandbox_check(marked({**LOCAL, "AWS_PROFILE": "prod"}))
    assert not ok and "AWS_PROFILE" in why


def test_is_local():
    assert is_local("http://127.0.0.5:1") and is_local("http://localhost") and is_local("http://[::1]:2")
    assert is_local("unix:///tmp/r.sock") and is_local("postgresql://u@/db?host=/tmp/pg")
    for url in (
        "http://10.0.0.1",
        "http://127.0.0.1.example.com",
        "http://localhost.evil.com",
        "https://[::2]",
        "postgresql://u@db.internal/db",
        "postgresql://u@/db",
        "not a url",
    ):
        assert not is_local(url), url
