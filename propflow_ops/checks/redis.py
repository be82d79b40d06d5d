"""Redis / ElastiCache checks (runbook 5): cluster status, reachability, memory, clients.

Inputs: ``sources.elasticache.cache_cluster`` through ``sources.fetch.fetch`` (a :class:`Fetched`, or its value
or error) and ``sources.elasticache.redis_probe`` (a :class:`Fetched` of a :class:`~propflow_ops.records.RedisProbe`
whose target is the host; the record, an error or None are taken too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from propflow_ops.findings import Finding
from propflow_ops.records import RedisProbe
from propflow_ops.results import Fetched, takes_fetched

REDIS_MEMORY_PCT = 90.0
REDIS_CLIENTS_PCT = 90.0


def _num(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


@takes_fetched
def check_cluster(cluster: Mapping[str, Any] | BaseException | None, *, name: str = "") -> Finding:
    """REDIS_NOT_AVAILABLE: the ElastiCache cluster (``sources.elasticache.cache_cluster``) is missing or not
    ``available``; ``error`` when ElastiCache could not be asked."""
    code = "REDIS_NOT_AVAILABLE"
    if isinstance(cluster, BaseException) or cluster is None:
        title = f"ElastiCache {name or 'cluster'} is available"
        if cluster is None:  # never fetched
            return Finding.skipped(code, title, "the cluster was not described")
        return Finding.error(code, title, str(cluster))
    name = cluster.get("cluster") or name or "?"
    title = f"ElastiCache {name} is available"
    if cluster.get("found") is False:
        return Finding.fail(
            code, f"ElastiCache cluster {name} not found", "DescribeCacheClusters: CacheClusterNotFound"
        )
    status = cluster.get("status")
    data = {
        "status": status,
        "engine": cluster.get("engine"),
        "engine_version": cluster.get("engine_version"),
        "node_type": cluster.get("node_type"),
        "nodes": cluster.get("nodes"),
    }
    bad_nodes = [n for n in cluster.get("nodes") or [] if n.get("status") not in (None, "available")]
    if status != "available" or bad_nodes:
        extra = f"; nodes not available: {bad_nodes}" if bad_nodes else ""
        return Finding.fail(code, f"ElastiCache {name} is {status}", f"status {status}{extra}", **data)
    return Finding.ok(
        code,
        title,
        f"{cluster.get('engine')} {cluster.get('engine_version') or ''} "
        f"{cluster.get('node_type') or ''}, status available".strip(),
        **data,
    )


#: What a check reads of ``sources.elasticache.redis_probe``: its Fetched, or (unwrapped) the record or the error.
Probe = Fetched[RedisProbe] | RedisProbe | BaseException | None


def error_kind(text: str) -> str:
    """What a failed PING says: ``maxclients``, ``oom``, ``auth``, ``timeout`` or ``connection``."""
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


def _probe(probe: Probe) -> tuple[RedisProbe | BaseException | None, str | None]:
    """``sources.elasticache.redis_probe``'s result as (its record, its error, or None when not configured;
    the host it asked)."""
    if isinstance(probe, Fetched):
        return probe.outcome, probe.target or None
    if isinstance(probe, RedisProbe):
        return probe, probe.host or None
    return probe, None


def _refused_for_clients(value: Any) -> bool:
    return isinstance(value, BaseException) and error_kind(str(value)) == "maxclients"


def check_reachable(probe: Probe) -> Finding:
    """REDIS_UNREACHABLE: PING fails (not configured: skipped). A 'max clients' refusal is a warn here:
    the server answered; REDIS_CLIENTS_EXHAUSTED carries the failure."""
    code, title = "REDIS_UNREACHABLE", "Redis answers PING"
    value, host = _probe(probe)
    if value is None:
        return Finding.skipped(
            code, title, "no Redis URL: set PROPFLOW_REDIS_URL or REDIS_URL in the task definition"
        )
    if isinstance(value, BaseException):
        data: dict[str, Any] = {"host": host, "source": None, "ping_ms": None}
        if _refused_for_clients(value):
            return Finding.warn(
                code,
                "Redis answered but refused a new connection (max clients)",
                f"{host}: {value} (see REDIS_CLIENTS_EXHAUSTED)",
                **data,
            )
        return Finding.fail(code, f"Redis at {host} is unreachable", str(value), **data)
    data = {"host": host, "source": value.source, "ping_ms": value.ping_ms}
    median = f" (median of {value.pings})" if value.pings > 1 else ""
    return Finding.ok(code, title, f"{host} PING {value.ping_ms} ms{median}", **data)


def _unreadable(value: RedisProbe | BaseException) -> str:
    """Why the probe's INFO cannot be judged (an ``error`` finding's detail): no answer, or INFO's own error."""
    if isinstance(value, BaseException):
        return f"Redis not reachable: {value}"
    return f"INFO unavailable: {value.info.error}"


def _pct(used: float | None, limit: float | None) -> float | None:
    return round(100.0 * used / limit, 1) if used is not None and limit else None


def _info(probe: RedisProbe) -> Mapping[str, Any]:
    return probe.info.value or {}


def _config(probe: RedisProbe) -> Mapping[str, str | None]:
    """CONFIG GET's values ({} when it failed: INFO's limits serve)."""
    return probe.config.value or {}


def _limit(probe: RedisProbe, name: str) -> float | None:
    """The limit from CONFIG GET, else INFO (managed Redis disables CONFIG)."""
    value = _num(_config(probe).get(name))
    if value is None:
        value = _num(_info(probe).get(name))
    return value


def check_memory(result: Probe, *, redis_memory_pct: float = REDIS_MEMORY_PCT) -> Finding:
    """REDIS_MEMORY_PRESSURE: used_memory >= redis_memory_pct of maxmemory (fail); evictions alone (warn)."""
    code, title = "REDIS_MEMORY_PRESSURE", f"Redis memory below {redis_memory_pct:g}% of maxmemory"
    probe, _ = _probe(result)
    if probe is None:
        return Finding.skipped(code, title, "no Redis URL configured")
    if isinstance(probe, BaseException) or probe.info.error is not None:
        return Finding.error(code, title, _unreadable(probe))
    info = _info(probe)
    used = _num(info.get("used_memory"))
    limit = _limit(probe, "maxmemory")
    evicted = int(_num(info.get("evicted_keys")) or 0)
    policy = _config(probe).get("maxmemory-policy") or info.get("maxmemory_policy")
    pct = _pct(used, limit)
    data = {
        "used_memory": used,
        "maxmemory": limit,
        "used_pct": pct,
        "evicted_keys": evicted,
        "maxmemory_policy": policy,
        "threshold_pct": redis_memory_pct,
    }
    if used is None:
        return Finding.error(code, title, "INFO has no used_memory", **data)
    if pct is not None and pct >= redis_memory_pct:
        return Finding.fail(
            code,
            f"Redis memory at {pct:g}% of maxmemory",
            f"{info.get('used_memory_human')} of {info.get('maxmemory_human') or limit}; policy "
            f"{policy}; {evicted} keys evicted since the last restart/stats reset",
            **data,
        )
    if evicted > 0 and limit:
        return Finding.warn(
            code,
            f"Redis evicted {evicted} keys",
            f"memory at {pct:g}% now, but keys were evicted (policy {policy})",
            **data,
        )
    if not limit:
        return Finding.ok(
            code,
            "Redis has no maxmemory limit",
            f"used {info.get('used_memory_human')}; no maxmemory set: the node's RAM is the limit",
            **data,
        )
    return Finding.ok(
        code, title, f"{pct:g}% of maxmemory ({info.get('used_memory_human')}), {evicted} evicted", **data
    )


def check_clients(result: Probe, *, redis_clients_pct: float = REDIS_CLIENTS_PCT) -> Finding:
    """REDIS_CLIENTS_EXHAUSTED: connected_clients >= redis_clients_pct of maxclients, or our own connection
    refused with 'max number of clients reached' (fail); rejected connections on record (warn)."""
    code, title = "REDIS_CLIENTS_EXHAUSTED", f"Redis clients below {redis_clients_pct:g}% of maxclients"
    probe, host = _probe(result)
    if probe is None:
        return Finding.skipped(code, title, "no Redis URL configured")
    if _refused_for_clients(probe):
        return Finding.fail(
            code,
            "Redis refused a connection: max number of clients reached",
            f"{host}: {probe}",
            refused=True,
        )
    if isinstance(probe, BaseException) or probe.info.error is not None:
        return Finding.error(code, title, _unreadable(probe))
    info = _info(probe)
    connected = _num(info.get("connected_clients"))
    limit = _limit(probe, "maxclients")
    rejected = int(_num(info.get("rejected_connections")) or 0)
    pct = _pct(connected, limit)
    data = {
        "connected_clients": connected,
        "maxclients": limit,
        "used_pct": pct,
        "rejected_connections": rejected,
        "threshold_pct": redis_clients_pct,
    }
    if connected is None:
        return Finding.error(code, title, "INFO has no connected_clients", **data)
    if pct is not None and pct >= redis_clients_pct:
        return Finding.fail(
            code,
            f"Redis clients at {pct:g}% of maxclients",
            f"{connected:g} of {limit:g} connections in use (incl. this check's); "
            f"{rejected} connections rejected since the last restart/stats reset",
            **data,
        )
    if rejected > 0:
        return Finding.warn(
            code,
            f"Redis has rejected {rejected} connections",
            f"{connected:g} of {limit:g} in use now; rejections happened earlier (maxclients)",
            **data,
        )
    limit_text = f"{limit:g}" if limit else "unknown"
    return Finding.ok(code, title, f"{connected:g} of {limit_text} connections", **data)


def info_table(result: Probe) -> dict[str, Any]:
    """What the engineer reads: PING, the INFO fields, limits, pub/sub channels (no URL, no password)."""
    probe, host = _probe(result)
    if probe is None:
        return {"host": None, "source": "not configured", "error": None}
    if isinstance(probe, BaseException):
        return {"host": host, "source": None, "error": str(probe)}
    out: dict[str, Any] = {"host": probe.host or host, "source": probe.source, "ping_ms": probe.ping_ms}
    out.update(_info(probe))
    out["maxclients (CONFIG)"] = _config(probe).get("maxclients")
    out["maxmemory (CONFIG)"] = _config(probe).get("maxmemory")
    if probe.info.error is not None:
        out["info_error"] = str(probe.info.error)
    if probe.config.error is not None:
        out["config_error"] = str(probe.config.error)
    channels = probe.channels
    out["pubsub channels"] = channels.value or (str(channels.error) if channels.error is not None else {})
    return out
