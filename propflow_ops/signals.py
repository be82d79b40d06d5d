"""The triage sweep's signals: one typed field per fetch (``sources.triage.gather`` fills it,
``checks.triage.judge`` reads it). A mistyped name is an AttributeError (and a mypy error), not None.

Values that hold secrets (the task definition's environment, URLs) stay in memory: the record's repr
shows counts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from propflow_ops.records import AlembicSignals, DatabaseSignals, HttpAnswer, RedisProbe
from propflow_ops.results import Fetched


def _unset() -> Fetched[Any]:
    return Fetched()


@dataclass
class TriageSignals:
    """What the sweep fetched, each a :class:`Fetched` (value or error, target, seconds)."""

    alembic: Fetched[AlembicSignals] = field(default_factory=_unset)
    health: Fetched[Any] = field(default_factory=_unset)
    otp_route: Fetched[Any] = field(default_factory=_unset)
    ws: Fetched[Any] = field(default_factory=_unset)
    service: Fetched[Any] = field(default_factory=_unset)
    stopped: Fetched[Any] = field(default_factory=_unset)
    task: Fetched[Any] = field(default_factory=_unset)
    settings: Fetched[Any] = field(default_factory=_unset)
    rds: Fetched[Any] = field(default_factory=_unset)
    database: Fetched[DatabaseSignals] = field(default_factory=_unset)
    cache: Fetched[Any] = field(default_factory=_unset)
    redis: Fetched[RedisProbe] = field(default_factory=_unset)
    bucket: Fetched[Any] = field(default_factory=_unset)
    policy: Fetched[Any] = field(default_factory=_unset)
    sample: Fetched[Any] = field(default_factory=_unset)
    referenced: Fetched[Any] = field(default_factory=_unset)
    logs: Fetched[Any] = field(default_factory=_unset)
    twilio_account: Fetched[HttpAnswer] = field(default_factory=_unset)
    twilio_balance: Fetched[HttpAnswer] = field(default_factory=_unset)
    whatsapp: Fetched[HttpAnswer] = field(default_factory=_unset)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    end: datetime = field(default_factory=lambda: datetime.now(UTC))
    total_ms: float = 0.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The signals' names (the fields holding a fetch), in declaration order."""
        return tuple(f.name for f in fields(cls) if f.name not in ("start", "end", "total_ms"))

    def fetched(self) -> dict[str, Fetched[Any]]:
        return {name: getattr(self, name) for name in self.names()}

    def timings(self) -> pd.DataFrame:
        rows = [
            {"signal": k, "ms": round(v.seconds * 1000, 1), "outcome": "ok" if v.ok else "error"}
            for k, v in sorted(self.fetched().items(), key=lambda kv: -kv[1].seconds)
        ]
        return pd.DataFrame(rows, columns=["signal", "ms", "outcome"])

    def __repr__(self) -> str:  # never show values: they may hold secrets
        return f"Signals({len(self.names())} fetched in {self.total_ms:.0f} ms)"
