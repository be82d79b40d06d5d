"""1c. Read-only Redis: diagnosis reaches Redis only through ``sources.redis.make_client``, a client that sends
nothing but read commands. Against the sandbox's real Redis, every writing or admin command (tried with
values that would be harmless if they did run) is refused before it is sent: the server's own per-command
counters (INFO commandstats) do not move, and the world's Redis state is unchanged. The reads the checks need
still work."""

from __future__ import annotations

from typing import Any

import pytest
import redis as redis_lib

from propflow_ops.sources import elasticache
from propflow_ops.sources import redis as rsrc

from .harness import diff, world_state

pytestmark = [pytest.mark.xdist_group("safety-redis")]

KEY = "propflow-safety-never-written"

# name -> (the command redis-py would send, how to ask for it)
WRITES: dict[str, tuple[str, Any]] = {
    "set": ("set", lambda c: c.set(KEY, "x")),
    "del": ("del", lambda c: c.delete(KEY)),
    "expire": ("expire", lambda c: c.expire(KEY, 10)),
    "config set": ("config|set", lambda c: c.config_set("slowlog-max-len", "128")),
    "config set (raw)": ("config|set", lambda c: c.execute_command("CONFIG SET slowlog-max-len 128")),
    "config rewrite": ("config|rewrite", lambda c: c.config_rewrite()),
    "client kill": ("client|kill", lambda c: c.client_kill("203.0.113.1:1")),
    "client setname": ("client|setname", lambda c: c.client_setname("propflow-safety")),
    "eval": ("eval", lambda c: c.eval("return 1", 0)),
    "script flush": ("script|flush", lambda c: c.script_flush()),
    "publish": ("publish", lambda c: c.publish("propflow-safety", "x")),
    "pipeline": ("set", lambda c: c.pipeline().set(KEY, "x").execute()),
    "multi": ("multi", lambda c: c.execute_command("MULTI")),
    "lowercase set": ("set", lambda c: c.execute_command("set", KEY, "x")),
    "bytes set": ("set", lambda c: c.execute_command(b"SET", KEY, "x")),
}


def _calls(admin: redis_lib.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if isinstance(v, dict)}


@pytest.fixture
def redis_url(sandbox: Any) -> str:
    sandbox.use()
    return str(sandbox.env["PROPFLOW_REDIS_URL"])


@pytest.mark.parametrize("name", list(WRITES))
def test_a_writing_command_never_reaches_redis(sandbox, redis_url, name):
    command, ask = WRITES[name]
    admin = sandbox.redis.client()
    client = rsrc.make_client(redis_url)
    try:
        before_world, before = world_state(sandbox)["redis_detail"], _calls(admin)
        with pytest.raises(redis_lib.exceptions.RedisError) as info:
            ask(client)
        after_world, after = world_state(sandbox)["redis_detail"], _calls(admin)
    finally:
        client.close()
        admin.delete(KEY)
        admin.close()
    assert "refused" in str(info.value), f"{name}: the server answered, so it was sent: {info.value}"
    assert after.get(command, 0) == before.get(command, 0), f"{name}: {command} reached the server"
    assert diff(before_world, after_world) == []


def test_the_reads_the_checks_need_still_work(sandbox, redis_url):
    got = elasticache.redis_probe(redis_url, "test")
    assert got.ok, got
    probe = got.value
    assert probe.info.value.get("redis_version") and probe.config.value.get("maxmemory") is not None, probe
    client = rsrc.make_client(redis_url)
    try:
        assert client.dbsize() >= 0 and isinstance(client.scan(0, count=10), tuple)
        assert client.slowlog_get(1) is not None and client.client_list()
        assert client.memory_stats()
    finally:
        client.close()
