"""sources.elasticache against the sandbox: ElastiCache (moto) and Redis (real)."""

from __future__ import annotations

import pytest

from propflow_ops.sources import aws
from propflow_ops.sources import elasticache as ec


@pytest.fixture
def env(world, sandbox_env, monkeypatch):
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield world
    aws.clear_cache()


def test_cluster_and_redis_probe(env, sandbox_env):
    env()
    cluster = ec.cache_cluster("propflow-redis")
    assert cluster["found"] is True and cluster["status"] == "available"
    assert ec.cache_cluster("nope")["found"] is False
    url, source = ec.resolve_redis_url({"REDIS_URL": "redis://other:6379/0"})
    assert url == sandbox_env["PROPFLOW_REDIS_URL"] and source == "env PROPFLOW_REDIS_URL"
    probe = ec.redis_probe(url, source)
    assert probe["reachable"] and probe["ping_ms"] is not None
    assert probe["info"]["connected_clients"] >= 2
    assert probe["config"]["maxclients"] == "10000"
    assert probe["channels"] == {"propflow:events": 1}
    assert "canary" not in repr(probe)


def test_redis_url_from_task_definition(monkeypatch):
    monkeypatch.delenv("PROPFLOW_REDIS_URL", raising=False)
    assert ec.resolve_redis_url({"REDIS_URL": "rediss://:pw@h:6379/0"}) == ("rediss://:pw@h:6379/0",
                                                                           "task definition REDIS_URL")
    assert ec.resolve_redis_url({}) == (None, "not configured")
    assert ec.redis_host("rediss://:pw@h:6380/0") == "h:6380"


def test_unreachable_redis_never_raises():
    probe = ec.redis_probe("redis://:secretpw@127.0.0.1:1/0", "test", timeout_s=1)
    assert probe["reachable"] is False and probe["error_kind"] == "connection"
    assert "secretpw" not in repr(probe)
    assert ec.redis_probe(None)["configured"] is False


def test_maxclients_refusal_is_classified(env, sandbox_env):
    sb = env("redis-maxclients")
    assert sb.redis is not None
    import redis

    extra = []
    for _ in range(5):  # take the free slots left by the scenario
        client = sb.redis.client()
        try:
            client.ping()
        except redis.ConnectionError:
            client.close()
            break
        extra.append(client)
    # Redis writes "max number of clients reached" and closes; on a busy machine the client can see the
    # close before the message. The classification is what is tested: one of a few probes must read it.
    kinds = []
    for _ in range(3):
        kinds.append(ec.redis_probe(sandbox_env["PROPFLOW_REDIS_URL"], "env")["error_kind"])
        if kinds[-1] == "maxclients":
            break
    for client in extra:
        client.close()
    assert "maxclients" in kinds, kinds
