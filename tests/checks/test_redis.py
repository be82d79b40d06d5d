"""checks.redis: cluster status, reachability, memory and clients from redis_probe results (Fetched of a
RedisProbe)."""

from __future__ import annotations

import dataclasses

from propflow_ops.checks import redis as c
from propflow_ops.errors import FetchError
from propflow_ops.records import RedisProbe
from propflow_ops.results import Fetched

NO_INFO = Fetched(None, FetchError("ResponseError: unknown command 'INFO'", unreachable=False), "INFO h:6379")


def probe(**info):
    base = {
        "connected_clients": 10,
        "rejected_connections": 0,
        "used_memory": 1_000_000,
        "used_memory_human": "0.95M",
        "maxmemory": 0,
        "evicted_keys": 0,
    }
    base.update(info)
    config = {"maxclients": "100", "maxmemory": str(base["maxmemory"]), "maxmemory-policy": "noeviction"}
    record = RedisProbe(
        host="h:6379",
        ping_ms=0.3,
        ping_ms_max=0.5,
        source="test",
        pings=3,
        info=Fetched(base, None, "INFO h:6379"),
        config=Fetched(config, None, "CONFIG GET h:6379"),
        channels=Fetched({"propflow:events": 2}, None, "PUBSUB CHANNELS h:6379"),
    )
    return Fetched(record, None, "h:6379")


def with_parts(result: Fetched, **parts: Fetched) -> Fetched:
    """``result`` with some of its record's fetches replaced."""
    return Fetched(dataclasses.replace(result.value, **parts), None, result.target)


def down(text: str) -> Fetched:
    return Fetched(None, FetchError(text), "h:6379")


NOT_CONFIGURED = Fetched(None, None, "redis (not configured)")


def test_cluster_status():
    assert c.check_cluster({"cluster": "r", "found": True, "status": "available"}).status == "ok"
    assert c.check_cluster({"cluster": "r", "found": True, "status": "modifying"}).status == "fail"
    assert c.check_cluster({"cluster": "r", "found": False}).status == "fail"
    assert c.check_cluster(Fetched(None, FetchError("timeout")), name="r").status == "error"


def test_reachability():
    assert c.check_reachable(probe()).status == "ok"
    assert c.check_reachable(NOT_CONFIGURED).status == "skipped"
    refused = down("ConnectionError: refused")
    f = c.check_reachable(refused)
    assert f.status == "fail" and f.title == "Redis at h:6379 is unreachable"
    full = down("ConnectionError: ERR max number of clients reached")
    assert c.check_reachable(full).status == "warn"
    assert c.check_clients(full).status == "fail"  # a refusal for max clients is the clients finding
    assert c.check_memory(refused).status == "error"


def test_clients_threshold_and_config_disabled():
    assert c.check_clients(probe(connected_clients=89)).status == "ok"
    f = c.check_clients(probe(connected_clients=90))
    assert f.status == "fail" and f.data["used_pct"] == 90.0
    assert c.check_clients(probe(connected_clients=50), redis_clients_pct=50).status == "fail"
    assert c.check_clients(probe(rejected_connections=3)).status == "warn"
    disabled = Fetched({"maxclients": None, "maxmemory": None, "maxmemory-policy": None})
    managed = with_parts(probe(connected_clients=95, maxclients=100), config=disabled)
    assert c.check_clients(managed).status == "fail"  # CONFIG disabled: INFO's limit is used
    assert c.check_clients(with_parts(probe(), info=NO_INFO)).status == "error"


def test_a_failed_config_read_falls_back_to_info_and_is_shown():
    """CONFIG GET failing (not merely disabled) is config's own error: the limits come from INFO, the findings are
    the same, and the table says why CONFIG has no values."""
    failed = Fetched(None, FetchError("ConnectionError: reset", unreachable=True), "CONFIG GET h:6379")
    got = with_parts(probe(connected_clients=95, maxclients=100, maxmemory=1_100_000), config=failed)
    clients, memory = c.check_clients(got), c.check_memory(got)
    assert (clients.status, clients.data["maxclients"]) == ("fail", 100.0)
    assert (memory.status, memory.data["maxmemory"]) == ("fail", 1_100_000.0)
    assert memory.data["maxmemory_policy"] is None
    table = c.info_table(got)
    assert table["maxclients (CONFIG)"] is None and table["config_error"] == "ConnectionError: reset"


def test_memory_threshold_and_evictions():
    assert c.check_memory(probe()).status == "ok"  # no maxmemory
    assert c.check_memory(probe(maxmemory=2_000_000)).status == "ok"
    f = c.check_memory(probe(maxmemory=1_100_000, evicted_keys=7))
    assert f.status == "fail" and f.data["used_pct"] == 90.9
    assert c.check_memory(probe(maxmemory=4_000_000, evicted_keys=7)).status == "warn"
    assert c.check_memory(probe(maxmemory=4_000_000), redis_memory_pct=20).status == "fail"


def test_info_table_has_no_url():
    table = c.info_table(probe())
    assert table["host"] == "h:6379" and "url" not in table
    assert table["ping_ms"] == 0.3 and table["connected_clients"] == 10
    assert table["maxclients (CONFIG)"] == "100" and table["pubsub channels"] == {"propflow:events": 2}
    assert "info_error" not in table and "config_error" not in table


def test_info_table_says_which_part_failed():
    no_channels = Fetched(
        None, FetchError("TimeoutError: Timeout reading from socket"), "PUBSUB CHANNELS h:6379"
    )
    table = c.info_table(with_parts(probe(), info=NO_INFO, channels=no_channels))
    assert table["info_error"] == "ResponseError: unknown command 'INFO'" and "connected_clients" not in table
    assert table["pubsub channels"] == "TimeoutError: Timeout reading from socket"
    assert c.info_table(with_parts(probe(), channels=Fetched({}, None, "")))["pubsub channels"] == {}
    assert c.info_table(Fetched(None, None, "redis (not configured)")) == {
        "host": None,
        "source": "not configured",
        "error": None,
    }
    assert c.info_table(down("ConnectionError: refused"))["error"] == "ConnectionError: refused"


def test_the_record_itself_is_taken_too():
    assert c.check_reachable(probe().value).status == "ok"
    assert c.check_memory(probe().value).status == "ok"


def test_reachable_says_how_many_pings_the_latency_is_of():
    assert c.check_reachable(probe()).detail == "h:6379 PING 0.3 ms (median of 3)"
    once = Fetched(dataclasses.replace(probe().value, pings=1), None, "h:6379")
    assert c.check_reachable(once).detail == "h:6379 PING 0.3 ms"


def test_memory_and_clients_say_why_info_cannot_be_judged():
    refused = down("ConnectionError: refused")
    no_info = with_parts(probe(), info=NO_INFO)
    for check in (c.check_memory, c.check_clients):
        assert (check(refused).status, check(refused).detail) == (
            "error",
            "Redis not reachable: ConnectionError: refused",
        )
        assert (check(no_info).status, check(no_info).detail) == (
            "error",
            "INFO unavailable: ResponseError: unknown command 'INFO'",
        )
        assert check(NOT_CONFIGURED).status == "skipped"


def test_error_kind_classifies_a_failed_ping():
    assert c.error_kind("ERR max number of clients reached") == "maxclients"
    assert c.error_kind("Connection refused") == "connection"
    assert c.error_kind("Timeout connecting to server") == "timeout"
