"""Records that sources fill and checks read (below both layers: checks never import sources).

The sources that make them re-export them (``sources.alembic.AlembicState``, ``sources.twilio.TaskSettings``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from propflow_ops.results import Fetched

#: Columns of ``AlembicState.history``.
HISTORY_COLUMNS = [
    "revision",
    "down_revision",
    "applied",
    "is_head",
    "is_branch_point",
    "is_merge",
    "doc",
    "create_date",
    "file",
]
#: Columns of ``SchemaDrift.diffs``.
DRIFT_COLUMNS = ["change", "table", "name", "detail"]


def _not_fetched() -> Fetched[Any]:
    return Fetched()


def _no_history() -> pd.DataFrame:
    return pd.DataFrame(columns=HISTORY_COLUMNS)


@dataclass(frozen=True)
class DbRevision:
    """What the database's ``alembic_version`` says, against the scripts (``AlembicState.database``'s value).

    ``current`` its revision(s) ([] when it has none: ``version_table`` says whether the table exists);
    ``unknown`` those no script knows; ``pending`` the scripts' revisions it has not run, in upgrade order
    (oldest first; [] when unknowable: from an unknown revision nothing can be said).
    """

    current: list[str] = field(default_factory=list)
    version_table: bool = False
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def at_head(self) -> bool:
        return bool(self.current) and not self.pending and not self.unknown


@dataclass(frozen=True, eq=False)  # holds a frame: no field-wise ==
class AlembicState:
    """What the migration scripts say: ``sources.alembic.read_state``'s value, in a :class:`Fetched` whose
    target is the alembic.ini (PROPFLOW_ALEMBIC_CONFIG not set: an empty Fetched; scripts that cannot be read:
    its error, and nothing here is known).

    ``database`` is the database's revision as its own Fetched: when the database cannot be read its error says
    why (``unreachable`` set) and the scripts' heads and history are still here. ``history`` has
    :data:`HISTORY_COLUMNS` (``applied`` None when the database's revision is not known).
    """

    heads: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # newest first
    history: pd.DataFrame = field(default_factory=_no_history)
    down_revisions: dict[str, list[str]] = field(default_factory=dict)
    database: Fetched[DbRevision] = field(default_factory=_not_fetched)

    def previous(self, revision: str) -> list[str]:
        return list(self.down_revisions.get(revision, []))


@dataclass(frozen=True, eq=False)  # holds a frame: no field-wise ==
class SchemaDrift:
    """Differences between the backend's models and the live database (``alembic check``'s view):
    ``sources.alembic.schema_drift``'s value, in a :class:`Fetched` whose target is the alembic.ini.

    Nothing compared is an empty Fetched: without a target PROPFLOW_ALEMBIC_CONFIG is not set; with one
    (the ini) no models were named. ``models`` the "module:attribute" compared; ``diffs`` one row per
    difference (:data:`DRIFT_COLUMNS`).
    """

    models: str = ""
    diffs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DRIFT_COLUMNS))


@dataclass
class TaskSettings:
    """Which settings the service's running task definition holds: names only, values never kept.

    ``names`` maps each variable (``environment`` and ``secrets``) to ``"value"``
    (a non-empty plain value), ``"empty"`` or ``"secret"`` (valueFrom SSM or
    Secrets Manager). When ECS could not be read the fetch's error says why (``results.Fetched``).
    """

    task_definition: str = ""
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)  # a body may be anything JSON: no field-wise ==
class HttpAnswer:
    """What a server answered to ``sources.http.probe`` or ``sources.twilio.request_json`` (Twilio, Meta Graph): any
    status (a 3xx, 4xx or 5xx is still an answer, the check judges it). No answer at all is the fetch's error
    instead (``results.Fetched``).

    ``url`` as asked (secrets masked; ``request_json`` drops the query); ``latency_ms`` the last attempt's;
    ``attempts`` how many were made; ``body`` the parsed JSON, else the probe's first 500 characters (None from
    ``request_json``), ``{"redirect": problem}`` for a 3xx; ``problem`` one line for a non-2xx: ``HTTP 503`` (from
    ``request_json``, with the API's error code and message: ``HTTP 401: code 20003, Authenticate``), for a 3xx
    where it points (``HTTP 302 redirect to h:443, not followed``), and from ``request_json`` for a 2xx without a
    JSON body (``HTTP 200 without a JSON body``). ``problem`` None: the answer is usable.
    """

    url: str
    status: int
    latency_ms: float
    attempts: int = 1
    body: Any = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


@dataclass(frozen=True, eq=False)
class WsAnswer:
    """What a server answered to a WebSocket opening handshake (``sources.http.ws_handshake``).

    ``url`` with the token masked; ``status`` 101, or the HTTP status the upgrade was refused with;
    ``latency_ms`` the handshake's; ``first_message`` what the server sent first within the timeout (None: nothing,
    not an error); ``problem`` one line for a refused upgrade (``handshake refused: HTTP 503``, a 3xx naming where
    it points).
    """

    url: str
    status: int
    latency_ms: float
    first_message: Any = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """The upgrade was accepted (101 Switching Protocols)."""
        return self.status == 101


@dataclass(frozen=True)
class DbPing:
    """What a database answered to ``sources.db.ping`` (connect, ``SELECT 1``, ``SHOW server_version``). No answer,
    or a session the server refused (wrong password, no such database), is the fetch's error instead
    (``results.Fetched``; its ``unreachable`` tells which).

    ``latency_ms`` the whole ping's; ``host`` the database host (never the URL: it may hold a password).
    """

    latency_ms: float
    server_version: str
    host: str | None = None


@dataclass(frozen=True, eq=False)  # holds frames: no field-wise ==
class AlembicSignals:
    """What triage's migration probe fetched (``sources.triage``): ``state`` is ``sources.alembic.read_state``'s
    result, ``drift`` ``sources.alembic.schema_drift``'s (each empty when PROPFLOW_ALEMBIC_CONFIG is not set)."""

    state: Fetched[AlembicState] = field(default_factory=_not_fetched)
    drift: Fetched[SchemaDrift] = field(default_factory=_not_fetched)


@dataclass(frozen=True, eq=False)  # holds frames: no field-wise ==
class DatabaseSignals:
    """What triage's database probe fetched over one short-timeout engine (``sources.triage``).

    ``configured`` False: no database URL (the fetches are then empty :class:`Fetched`, neither value nor error);
    ``host`` and ``source`` where the URL came from (never the URL). ``ping`` is ``sources.db.ping``'s result;
    ``activity`` (pg_stat_activity) and ``max_connections`` are only asked when the ping answered (else their
    error says the database did not).
    """

    configured: bool = False
    host: str | None = None
    source: str = ""
    ping: Fetched[DbPing] = field(default_factory=_not_fetched)
    activity: Fetched[pd.DataFrame] = field(default_factory=_not_fetched)
    max_connections: Fetched[int] = field(default_factory=_not_fetched)


@dataclass(frozen=True, eq=False)  # holds fetches: no field-wise ==
class RedisProbe:
    """What a Redis answered to ``sources.elasticache.redis_probe`` (re-exported there): PING answered. No answer
    to PING (refused, timed out, max clients, auth) is the fetch's error instead (``results.Fetched``; its
    ``unreachable`` tells which), and not configured (no URL) an empty Fetched.

    ``host`` the Redis host (never the URL: it may hold a password); ``source`` where the URL came from
    (``env PROPFLOW_REDIS_URL``, ``task definition REDIS_URL``); ``ping_ms`` the median and ``ping_ms_max`` the
    slowest of the ``pings`` PINGs, in ms. The reads after PING can each fail on their own (a one-line
    :class:`~propflow_ops.errors.FetchError`, password masked, ``unreachable`` set): ``info`` the INFO fields the
    checks read (``sources.elasticache.INFO_FIELDS``; its error: INFO disabled, or the server gone since PING);
    ``config`` CONFIG GET maxclients, maxmemory and maxmemory-policy (values None where managed Redis disables
    CONFIG: INFO's own ``maxclients``/``maxmemory`` serve); ``channels`` the active pub/sub channels with their
    subscriber counts.
    """

    host: str
    ping_ms: float
    ping_ms_max: float
    source: str = ""
    pings: int = 1
    info: Fetched[dict[str, Any]] = field(default_factory=_not_fetched)
    config: Fetched[dict[str, str | None]] = field(default_factory=_not_fetched)
    channels: Fetched[dict[str, int]] = field(default_factory=_not_fetched)
