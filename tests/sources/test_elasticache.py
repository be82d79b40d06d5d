"""sources.elasticache against the sandbox: ElastiCache (moto) and Redis (real)."""

from __future__ import annotations

from typing import Any

import pytest

from propflow_ops.checks.redis import error_kind
from propflow_ops.errors import FetchError
from propflow_ops.reach import unreachable
from propflow_ops.sources import aws
from propflow_ops.sources import elasticache as ec
from propflow_ops.sources import redis as redis_source
from propflow_ops.sources.fetch import fetch


@pytest.fixture
def env(world, sandbox_env, monkeypatch):
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield world
    aws.clear_cache()


def test_cluster_and_redis_probe(env, sandbox_env):
    env()
    cluster = fetch(ec.cache_cluster, "propflow-redis").value
    assert cluster["found"] is True and cluster["status"] == "available"
    assert ec.cache_cluster("nope")["found"] is False
    url, source = ec.resolve_redis_url({"REDIS_URL": "redis://other:6379/0"})
    assert url == sandbox_env["PROPFLOW_REDIS_URL"] and source == "env PROPFLOW_REDIS_URL"
    got = ec.redis_probe(url, source)
    assert got.ok and got.target == ec.redis_host(url) and "redis://" not in repr(got)
    probe = got.value
    assert isinstance(probe, ec.RedisProbe) and probe.host == got.target and probe.source == source
    assert 0 < probe.ping_ms <= probe.ping_ms_max and probe.pings == 3
    assert probe.info.ok and probe.info.value["connected_clients"] >= 2
    assert probe.config.ok and probe.config.value["maxclients"] == "10000"
    assert probe.channels.ok and probe.channels.value == {"propflow:events": 1}
    assert "canary" not in repr(probe)


def test_redis_url_from_task_definition(monkeypatch):
    monkeypatch.delenv("PROPFLOW_REDIS_URL", raising=False)
    assert ec.resolve_redis_url({"REDIS_URL": "rediss://:pw@h:6379/0"}) == (
        "rediss://:pw@h:6379/0",
        "task definition REDIS_URL",
    )
    assert ec.resolve_redis_url({}) == (None, "not configured")
    assert ec.redis_host("rediss://:pw@h:6380/0") == "h:6380"


def test_unreachable_redis_never_raises():
    probe = ec.redis_probe("redis://:secretpw@127.0.0.1:1/0", "test", timeout_s=1)
    assert probe.value is None and isinstance(probe.error, FetchError) and probe.target == "127.0.0.1:1"
    assert unreachable(probe.error) and "secretpw" not in repr(probe) and "secretpw" not in str(probe.error)
    not_configured = ec.redis_probe(None)
    assert not_configured.value is None and not_configured.error is None


def test_maxclients_refusal_is_classified():
    # Redis answers a connection over maxclients with this error and closes; whether the client reads the
    # message or only the close is a race (live: see the websocket runbook's redis-maxclients test, which
    # also judges connected_clients against maxclients). The classification of the message is tested here.
    assert error_kind("ERR max number of clients reached") == "maxclients"
    assert error_kind("Connection refused") == "connection"


class _Client:
    """A Redis client that answers every read but those ``fail`` names, which raise the exception given there."""

    def __init__(self, fail: dict[str, BaseException]) -> None:
        self.fail = fail

    def _maybe(self, name: str, value: Any) -> Any:
        if name in self.fail:
            raise self.fail[name]
        return value

    def ping(self) -> bool:
        return bool(self._maybe("ping", True))

    def info(self, section: str | None = None) -> dict[str, object]:
        return self._maybe("info", {"connected_clients": 3, "used_memory": 10, "not_read": 1})

    def config_get(self, name: str) -> dict[str, str]:
        return self._maybe("config", {name: "7"})

    def pubsub_channels(self, pattern: str) -> list[str]:
        return self._maybe("channels", [])

    def close(self) -> None:
        pass


URL = "redis://:p%40ssw0rd-9f@cache.internal:6380/0"


def _probe_with(monkeypatch, fail: dict[str, BaseException]):
    monkeypatch.setattr(redis_source, "make_client", lambda url, timeout_s=3: _Client(fail))
    return ec.redis_probe(URL, "env PROPFLOW_REDIS_URL", pings=2)


def test_each_read_after_ping_fails_on_its_own(monkeypatch):
    """INFO, CONFIG and the channels are each a Fetched of their own: one failing leaves the others, its error is
    one line with the password masked (as written in the URL and decoded) and says whether Redis answered."""
    import redis as redis_lib

    got = _probe_with(
        monkeypatch,
        {
            "info": redis_lib.exceptions.ResponseError("unknown command 'INFO'"),
            "config": redis_lib.exceptions.ConnectionError("Connection refused by p@ssw0rd-9f\nsecond line"),
        },
    )
    assert got.ok and got.target == "cache.internal:6380"
    probe = got.value
    assert (probe.host, probe.source, probe.pings) == ("cache.internal:6380", "env PROPFLOW_REDIS_URL", 2)
    assert probe.info.value is None and isinstance(probe.info.error, FetchError)
    assert (
        str(probe.info.error) == "ResponseError: unknown command 'INFO'"
        and probe.info.error.unreachable is False
    )
    assert str(probe.config.error) == "ConnectionError: Connection refused by ***"
    assert probe.config.error.unreachable is True and probe.config.target == "CONFIG GET cache.internal:6380"
    assert probe.channels.ok and probe.channels.value == {}
    assert "ssw0rd" not in repr(probe) + repr(got) + str(probe.config.error)


def test_reads_that_answer_keep_only_the_fields_the_checks_read(monkeypatch):
    probe = _probe_with(monkeypatch, {}).value
    assert probe.info.value == {"connected_clients": 3, "used_memory": 10}
    assert probe.config.value == {"maxclients": "7", "maxmemory": "7", "maxmemory-policy": "7"}
    assert probe.info.error is None and probe.config.error is None and probe.channels.error is None


def test_a_failed_ping_masks_the_password(monkeypatch):
    import redis as redis_lib

    got = _probe_with(
        monkeypatch, {"ping": redis_lib.exceptions.AuthenticationError("WRONGPASS p@ssw0rd-9f")}
    )
    assert got.value is None and str(got.error) == "AuthenticationError: WRONGPASS ***"
    assert got.target == "cache.internal:6380"
