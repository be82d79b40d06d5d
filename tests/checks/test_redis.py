"""checks.redis: cluster status, reachability, memory and clients from redis_probe results (Fetched)."""

from __future__ import annotations

from propflow_ops.checks import redis as c
from propflow_ops.errors import FetchError
from propflow_ops.results import Fetched


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
    return Fetched(
        {
            "source": "test",
            "host": "h:6379",
            "ping_ms": 0.3,
            "info": base,
            "config": {"maxclients": "100", "maxmemory": str(base["maxmemory"])},
        },
        None,
        "h:6379",
    )


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
    managed = probe(connected_clients=95, maxclients=100)
    managed.value["config"] = {"maxclients": None, "maxmemory": None}  # CONFIG disabled: INFO's limit is used
    assert c.check_clients(managed).status == "fail"
    assert (
        c.check_clients(Fetched(probe().value | {"info_error": "ERR unknown command 'INFO'"})).status
        == "error"
    )


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


def test_memory_and_clients_say_why_info_cannot_be_judged():
    refused = down("ConnectionError: refused")
    no_info = Fetched(probe().value | {"info_error": "ERR unknown command 'INFO'"})
    for check in (c.check_memory, c.check_clients):
        assert (check(refused).status, check(refused).detail) == (
            "error",
            "Redis not reachable: ConnectionError: refused",
        )
        assert (check(no_info).status, check(no_info).detail) == (
            "error",
            "INFO unavailable: ERR unknown command 'INFO'",
        )
        assert check(NOT_CONFIGURED).status == "skipped"


def test_error_kind_classifies_a_failed_ping():
    assert c.error_kind("ERR max number of clients reached") == "maxclients"
    assert c.error_kind("Connection refused") == "connection"
    assert c.error_kind("Timeout connecting to server") == "timeout"
