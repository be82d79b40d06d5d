"""Redis: a read-only client with total bounds, INFO, ping latency, CONFIG GET, pub/sub channels.

Diagnosis talks to Redis only through :class:`ReadOnlyRedis`: every command is checked against
:data:`READ_COMMANDS` before it is sent, and anything else (writes, ``CONFIG SET``, ``FLUSHALL``,
``CLIENT KILL``, scripts, ``MULTI``, ``MONITOR``, ``SUBSCRIBE`` ...) raises :class:`ReadOnlyViolation`
without reaching the server; pipelines, pub/sub, locks and scripts are refused outright. Connect and
every read are bounded (``socket_connect_timeout``, ``socket_timeout``, no retry), and so is each whole
command (``deadline_s``: a reply dripped a byte at a time fires no read timeout), a Redis that timed out
trips its breaker in :mod:`propflow_ops.reach`, and the run's later calls to it fail at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis as redis_lib

from propflow_ops import reach

#: The commands diagnosis may send (upper case; two words for container commands). Key and value
#: contents are not read (no GET/HGET/KEYS: values may hold personal data, KEYS blocks the server).
READ_COMMANDS = frozenset(
    {
        "PING",
        "ECHO",
        "INFO",
        "DBSIZE",
        "TIME",
        "LASTSAVE",
        "ROLE",
        "TYPE",
        "TTL",
        "PTTL",
        "EXISTS",
        "STRLEN",
        "LLEN",
        "SCARD",
        "ZCARD",
        "HLEN",
        "XLEN",
        "SCAN",
        "SSCAN",
        "HSCAN",
        "ZSCAN",
        "OBJECT ENCODING",
        "OBJECT FREQ",
        "OBJECT IDLETIME",
        "OBJECT REFCOUNT",
        "MEMORY STATS",
        "MEMORY USAGE",
        "MEMORY DOCTOR",
        "SLOWLOG GET",
        "SLOWLOG LEN",
        "CONFIG GET",
        "CLIENT LIST",
        "CLIENT INFO",
        "CLIENT GETNAME",
        "CLIENT ID",
        "PUBSUB CHANNELS",
        "PUBSUB NUMSUB",
        "PUBSUB NUMPAT",
        "PUBSUB SHARDCHANNELS",
        "PUBSUB SHARDNUMSUB",
        "LATENCY LATEST",
        "LATENCY HISTORY",
        "LATENCY DOCTOR",
        "COMMAND COUNT",
        "COMMAND INFO",
        "COMMAND DOCS",
        "CLUSTER INFO",
        "CLUSTER NODES",
        "CLUSTER SLOTS",
        "CLUSTER SHARDS",
        "CLUSTER MYID",
    }
)
_CONTAINERS = frozenset(
    {"OBJECT", "MEMORY", "SLOWLOG", "CONFIG", "CLIENT", "PUBSUB", "LATENCY", "COMMAND", "CLUSTER"}
)


class ReadOnlyViolation(redis_lib.exceptions.RedisError):
    """A command refused before it was sent: diagnosis does not write to Redis."""


def command_name(args: tuple[Any, ...]) -> str:
    """``("config", "set", ...)`` -> ``"CONFIG SET"``; ``("get", "k")`` -> ``"GET"``."""

    def word(v: Any) -> str:
        return (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).upper()

    if not args:
        return ""
    first = word(args[0])
    if " " in first:  # redis-py sends some as one string ("CONFIG GET")
        first, _, rest = first.partition(" ")
        return f"{first} {rest.split()[0]}" if rest.split() else first
    if first in _CONTAINERS and len(args) > 1:
        return f"{first} {word(args[1])}"
    return first


class ReadOnlyRedis(redis_lib.Redis):
    """A redis-py client that sends only :data:`READ_COMMANDS` (see the module doc)."""

    breaker_key: str = ""
    #: Total deadline of one command, connect and whole reply (0: none). The socket timeout bounds one read:
    #: a server that drips its reply would hold the command for ever without it.
    deadline_s: float = 0.0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        name = command_name(args)
        if name not in READ_COMMANDS:
            raise ReadOnlyViolation(f"{name or '?'} refused: diagnosis sends only read commands to Redis")
        if self.breaker_key:
            reach.check(self.breaker_key)
        try:
            if self.deadline_s > 0:
                run = super().execute_command
                return reach.call_within(
                    self.deadline_s,
                    lambda: run(*args, **options),
                    f"Redis {name} ({self.breaker_key or 'redis'})",
                )
            return super().execute_command(*args, **options)
        except (redis_lib.exceptions.TimeoutError, TimeoutError) as exc:
            if self.breaker_key:
                reach.trip(self.breaker_key, f"{type(exc).__name__}: {exc}")
            raise

    def _refused(self, what: str) -> Any:
        raise ReadOnlyViolation(f"{what} refused: diagnosis sends only single read commands to Redis")

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return self._refused("pipeline")

    def pubsub(self, **kwargs: Any) -> Any:
        return self._refused("pubsub")

    def monitor(self) -> Any:
        return self._refused("MONITOR")

    def lock(self, *args: Any, **kwargs: Any) -> Any:
        return self._refused("lock")

    def register_script(self, script: Any) -> Any:
        return self._refused("script")

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        return self._refused("transaction")


def target_key(url: str) -> str:
    """The breaker key of a Redis: ``redis host:port`` (or its socket path)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"redis unix:{parts.path}"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"redis {parts.hostname}:{port}"


def make_client(url: str, *, timeout_s: float = 3) -> ReadOnlyRedis:
    """A read-only client for ``url`` with socket and connect timeouts (no connection made yet)."""
    client: ReadOnlyRedis = ReadOnlyRedis.from_url(  # type: ignore[assignment]  # from_url builds cls
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        retry=None,
        health_check_interval=0,
        decode_responses=True,
        driver_info=None,  # no CLIENT SETINFO on connect: nothing is set on the server
    )
    client.breaker_key = target_key(url)
    client.deadline_s = 2 * timeout_s + 1  # connect, then the whole reply
    return client


def info(client: ReadOnlyRedis, section: str | None = None) -> dict[str, Any]:
    """``INFO`` (all sections, or one) as a flat dict of typed values."""
    result = client.info(section) if section else client.info()
    return dict(result)


def ping_latency(client: ReadOnlyRedis) -> float:
    """Round trip of one PING, in milliseconds (raises on connection errors)."""
    t0 = time.perf_counter()
    client.ping()
    return (time.perf_counter() - t0) * 1000


def config_get(client: ReadOnlyRedis, names: Iterable[str]) -> dict[str, str | None]:
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


def pubsub_channels(client: ReadOnlyRedis, pattern: str = "*") -> dict[str, int]:
    """Active pub/sub channels matching ``pattern`` with their subscriber counts."""
    channels = [str(c) for c in client.pubsub_channels(pattern)]
    if not channels:
        return {}
    counts = client.pubsub_numsub(*channels)
    return {str(name): int(n) for name, n in counts}
