"""ElastiCache and Redis for the WebSocket runbook (the handshake probe is ``sources.http.ws_handshake``).

``cache_cluster`` raises when ElastiCache could not answer (a notebook calls it through
``sources.fetch.fetch``); ``redis_probe`` makes its own :class:`Fetched` of a
:class:`~propflow_ops.records.RedisProbe` (its target is the host). The Redis URL may hold a password: it stays in
memory; results and their error texts carry the host only.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from propflow_ops.errors import FetchError
from propflow_ops.reach import unreachable
from propflow_ops.records import RedisProbe as RedisProbe  # callers import it from here
from propflow_ops.results import Fetched
from propflow_ops.sources import aws
from propflow_ops.sources import redis as redis_source

T = TypeVar("T")

INFO_FIELDS = (
    "redis_version",
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "maxclients",
    "rejected_connections",
    "total_connections_received",
    "used_memory",
    "used_memory_human",
    "maxmemory",
    "maxmemory_human",
    "maxmemory_policy",
    "evicted_keys",
    "expired_keys",
    "pubsub_channels",
    "pubsub_patterns",
    "instantaneous_ops_per_sec",
)


def cache_cluster(cluster_id: str, *, client: Any = None) -> dict[str, Any]:
    """DescribeCacheClusters for one cluster: status, engine, node type, nodes (``found`` False if unknown);
    raises when ElastiCache could not be asked (call it through ``sources.fetch.fetch``)."""
    ec = client or aws.client("elasticache")
    try:
        resp = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code == "CacheClusterNotFound":
            return {"found": False, "cluster": cluster_id}
        raise
    c = (resp.get("CacheClusters") or [{}])[0]
    nodes = [
        {
            "id": n.get("CacheNodeId"),
            "status": n.get("CacheNodeStatus"),
            "endpoint": (n.get("Endpoint") or {}).get("Address"),
        }
        for n in c.get("CacheNodes") or []
    ]
    return {
        "found": True,
        "cluster": cluster_id,
        "status": c.get("CacheClusterStatus"),
        "engine": c.get("Engine"),
        "engine_version": c.get("EngineVersion"),
        "node_type": c.get("CacheNodeType"),
        "num_nodes": c.get("NumCacheNodes"),
        "nodes": nodes,
    }


def resolve_redis_url(task_env: dict[str, str] | None) -> tuple[str | None, str]:
    """``PROPFLOW_REDIS_URL``, else ``REDIS_URL`` from the task definition; (url or None, where from)."""
    url = os.environ.get("PROPFLOW_REDIS_URL")
    if url:
        return url, "env PROPFLOW_REDIS_URL"
    url = (task_env or {}).get("REDIS_URL")
    if url:
        return url, "task definition REDIS_URL"
    return None, "not configured"


def redis_host(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else None


def redis_probe(
    url: str | None, source: str = "", *, timeout_s: float = 3, pings: int = 3
) -> Fetched[RedisProbe]:
    """PING latency, INFO (the fields the checks read), CONFIG maxclients/maxmemory, pub/sub channels, as a
    :class:`Fetched` whose target is the host (never the URL: it may hold a password).

    Not configured (no URL): value None, error None. PING failing (refused, timed out, max clients, auth): the
    error, one line with the password masked (``checks.redis.error_kind`` tells which). Reachable: a
    :class:`~propflow_ops.records.RedisProbe` (``host``, ``source``, ``ping_ms``, ``ping_ms_max``, ``pings``) whose
    ``info``, ``config`` and ``channels`` are each a Fetched of their own: INFO disabled on managed Redis, say,
    is ``info``'s error (CONFIG disabled is no error: its values are None, INFO's own limits serve).
    """
    host = redis_host(url) or ""
    if not url:
        return Fetched(None, None, "redis (not configured)")
    t0 = time.monotonic()
    client = redis_source.make_client(url, timeout_s=timeout_s)
    try:
        try:
            times = [redis_source.ping_latency(client) for _ in range(max(1, pings))]
        except Exception as exc:  # noqa: BLE001 - what the probe measured: the check reports it
            return Fetched(None, _error(exc, url), host, time.monotonic() - t0)
        info = _read(lambda: _info_fields(redis_source.info(client)), url, f"INFO {host}")
        config = _read(
            lambda: redis_source.config_get(client, ("maxclients", "maxmemory", "maxmemory-policy")),
            url,
            f"CONFIG GET {host}",
        )
        channels = _read(lambda: redis_source.pubsub_channels(client), url, f"PUBSUB CHANNELS {host}")
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a broken client
            pass
    probe = RedisProbe(
        host=host,
        ping_ms=round(statistics.median(times), 2),
        ping_ms_max=round(max(times), 2),
        source=source,
        pings=len(times),
        info=info,
        config=config,
        channels=channels,
    )
    return Fetched(probe, None, host, time.monotonic() - t0)


def _info_fields(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in INFO_FIELDS if k in info}


def _read(fn: Callable[[], T], url: str, target: str) -> Fetched[T]:
    """One read after PING as its own Fetched: its value, or its one-line error (password masked)."""
    t0 = time.monotonic()
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - the part that failed says why; the rest of the probe stands
        return Fetched(None, _error(exc, url), target, time.monotonic() - t0)
    return Fetched(value, None, target, time.monotonic() - t0)


def _error(exc: BaseException, url: str) -> FetchError:
    """``Type: first line`` with the URL's password masked; ``unreachable`` as ``reach.unreachable`` tells it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return FetchError(f"{type(exc).__name__}: {_mask(text, url)}", unreachable=unreachable(exc))


def _mask(text: str, url: str) -> str:
    """``text`` with the URL's password masked, as written in the URL and percent-decoded (as the client used it)."""
    pw = urlsplit(url).password
    for secret in sorted({pw, unquote(pw)}, key=len, reverse=True) if pw else ():
        text = text.replace(secret, "***")
    return text
