"""sources.redis against the machine's Redis (db 15 only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis as redis_lib

from propflow_ops.sources import redis as rsrc
from tests.sources.conftest import free_port

URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def client() -> Iterator[redis_lib.Redis]:
    c = rsrc.make_client(URL)
    try:
        c.ping()
    except redis_lib.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    yield c
    c.close()


def test_make_client_timeouts() -> None:
    c = rsrc.make_client(URL, timeout_s=1.5)
    kw = c.connection_pool.connection_kwargs
    assert kw["socket_timeout"] == 1.5 and kw["socket_connect_timeout"] == 1.5
    assert kw["db"] == 15


def test_info_and_ping(client: redis_lib.Redis) -> None:
    inf = rsrc.info(client)
    assert inf["redis_version"]
    assert isinstance(inf["connected_clients"], int) and inf["connected_clients"] >= 1
    assert "used_memory" in inf
    mem = rsrc.info(client, "memory")
    assert "used_memory" in mem and "redis_version" not in mem
    assert rsrc.ping_latency(client) > 0


def test_config_get(client: redis_lib.Redis) -> None:
    got = rsrc.config_get(client, ["maxclients", "maxmemory", "no-such-setting"])
    assert got["maxclients"] is not None and int(got["maxclients"]) > 0
    assert got["maxmemory"] is not None
    assert got["no-such-setting"] is None


def test_config_get_tolerates_disabled_config() -> None:
    class Managed:
        def config_get(self, name: str) -> dict[str, str]:
            raise redis_lib.exceptions.ResponseError("unknown command 'CONFIG'")

    assert rsrc.config_get(Managed(), ["maxclients"]) == {"maxclients": None}  # type: ignore[arg-type]


def test_pubsub_channels(client: redis_lib.Redis) -> None:
    chan = f"propflow-ops-test-{time.time_ns()}"
    subscriber = redis_lib.Redis.from_url(URL, socket_timeout=3)  # the read-only client cannot subscribe
    ps = subscriber.pubsub()
    ps.subscribe(chan)
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            ps.get_message(timeout=0.1)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 3
        chans: dict[str, int] = {}
        while time.monotonic() < deadline and chan not in chans:
            chans = rsrc.pubsub_channels(client)
            time.sleep(0.05)
        assert chans.get(chan) == 1
        assert rsrc.pubsub_channels(client, "no-such-prefix-*") == {}
    finally:
        stop.set()
        t.join(2)
        ps.close()


def test_unreachable_raises_connection_error() -> None:
    c = rsrc.make_client(f"redis://127.0.0.1:{free_port()}/15", timeout_s=1)
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        rsrc.ping_latency(c)
