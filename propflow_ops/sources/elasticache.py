"""ElastiCache and Redis for the WebSocket runbook (the handshake probe is ``sources.http.ws_handshake``).

``cache_cluster`` raises when ElastiCache could not answer (a notebook calls it through
``sources.fetch.fetch``); ``redis_probe`` never raises: an unreachable Redis is what it measured (``reachable``
False with ``error`` and ``error_kind``). The Redis URL may hold a password: it stays in memory; results carry the host only.
"""

from __future__ import annotations

import os
import statistics
from typing import Any
from urllib.parse import urlsplit

from propflow_ops.sources import aws
from propflow_ops.sources import redis as redis_source

INFO_FIELDS = (
    "redis_version", "uptime_in_seconds", "connected_clients", "blocked_clients", "maxclients",
    "rejected_connections", "total_connections_received", "used_memory", "used_memory_human", "maxmemory",
    "maxmemory_human", "maxmemory_policy", "evicted_keys", "expired_keys", "pubsub_channels", "pubsub_patterns",
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
    nodes = [{"id": n.get("CacheNodeId"), "status": n.get("CacheNodeStatus"),
              "endpoint": (n.get("Endpoint") or {}).get("Address")} for n in c.get("CacheNodes") or []]
    return {"found": True, "cluster": cluster_id, "status": c.get("CacheClusterStatus"), "engine": c.get("Engine"),
            "engine_version": c.get("EngineVersion"), "node_type": c.get("CacheNodeType"),
            "num_nodes": c.get("NumCacheNodes"), "nodes": nodes}


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


def _error_kind(text: str) -> str:
    low = text.lower()
    if "max number of clients" in low:
        return "maxclients"
    if "oom command not allowed" in low:
        return "oom"
    if "auth" in low or "noauth" in low or "wrongpass" in low or "invalid password" in low:
        return "auth"
    if "timeout" in low or "timed out" in low:
        return "timeout"
    return "connection"


def redis_probe(url: str | None, source: str = "", *, timeout_s: float = 3, pings: int = 3) -> dict[str, Any]:
    """PING latency, INFO (the fields the checks read), CONFIG maxclients/maxmemory, pub/sub channels.

    ``reachable`` False with ``error`` and ``error_kind`` (maxclients, auth, timeout, connection) when the
    server cannot be used; ``info_error`` when INFO is disabled (managed Redis); CONFIG values are None
    where CONFIG is disabled and INFO's own ``maxclients``/``maxmemory`` are used instead.
    """
    out: dict[str, Any] = {"configured": bool(url), "source": source, "host": redis_host(url), "reachable": False,
                           "error": None, "error_kind": None, "ping_ms": None, "info": {}, "info_error": None,
                           "config": {}, "channels": {}, "channels_error": None}
    if not url:
        return out
    client = redis_source.make_client(url, timeout_s=timeout_s)
    try:
        try:
            times = [redis_source.ping_latency(client) for _ in range(max(1, pings))]
        except Exception as exc:  # noqa: BLE001
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.update(error=f"{type(exc).__name__}: {_mask(text, url)}", error_kind=_error_kind(text))
            return out
        out["reachable"] = True
        out["ping_ms"] = round(statistics.median(times), 2)
        out["ping_ms_max"] = round(max(times), 2)
        try:
            info = redis_source.info(client)
            out["info"] = {k: info.get(k) for k in INFO_FIELDS if k in info}
        except Exception as exc:  # noqa: BLE001
            out["info_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        try:
            out["config"] = redis_source.config_get(client, ("maxclients", "maxmemory", "maxmemory-policy"))
        except Exception as exc:  # noqa: BLE001
            out["config"] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            out["channels"] = redis_source.pubsub_channels(client)
        except Exception as exc:  # noqa: BLE001
            out["channels_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a broken client
            pass
    return out


def _mask(text: str, url: str) -> str:
    pw = urlsplit(url).password
    return text.replace(pw, "***") if pw else text
