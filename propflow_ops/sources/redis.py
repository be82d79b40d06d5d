"""Redis: client with socket timeouts, INFO, ping latency, CONFIG GET, pub/sub channels."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis as redis_lib


def make_client(url: str, *, timeout_s: float = 3) -> redis_lib.Redis:
    """A client for ``url`` with socket and connect timeouts (no connection made yet)."""
    return redis_lib.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        health_check_interval=0,
        decode_responses=True,
    )


def info(client: redis_lib.Redis, section: str | None = None) -> dict[str, Any]:
    """``INFO`` (all sections, or one) as a flat dict of typed values."""
    result = client.info(section) if section else client.info()
    return dict(result)


def ping_latency(client: redis_lib.Redis) -> float:
    """Round trip of one PING, in milliseconds (raises on connection errors)."""
    t0 = time.perf_counter()
    client.ping()
    return (time.perf_counter() - t0) * 1000


def config_get(client: redis_lib.Redis, names: Iterable[str]) -> dict[str, str | None]:
    """``CONFIG GET`` for each name; values None where CONFIG is disabled or renamed.

    Managed Redis (ElastiCache) disables CONFIG: then every value is None and
    the dict carries no error (the caller reads ``info()`` instead).
    """
    out: dict[str, str | None] = {}
    for name in names:
        try:
            got = client.config_get(name)
        except redis_lib.exceptions.ResponseError:
            got = {}
        out[name] = None
        if isinstance(got, dict):
            value = got.get(name)
            out[name] = None if value is None else str(value)
    return out


def pubsub_channels(client: redis_lib.Redis, pattern: str = "*") -> dict[str, int]:
    """Active pub/sub channels matching ``pattern`` with their subscriber counts."""
    channels = [str(c) for c in client.pubsub_channels(pattern)]
    if not channels:
        return {}
    counts = client.pubsub_numsub(*channels)
    return {str(name): int(n) for name, n in counts}
