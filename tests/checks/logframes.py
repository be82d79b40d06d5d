"""Build typed log frames (as sources.logs returns them) for check tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops.sources.logparse import parse_events

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def line(
    minutes_ago: float, level: str = "INFO", message: str = "request completed", **fields: Any
) -> dict[str, Any]:
    ts = NOW - timedelta(minutes=minutes_ago)
    body = {
        "ts": ts.isoformat(),
        "level": level,
        "event": fields.pop("event", "request"),
        "message": message,
        **fields,
    }
    return {
        "timestamp": int(ts.timestamp() * 1000),
        "message": json.dumps(body),
        "logStreamName": "ecs/api/t1",
    }


def frame(lines: list[dict[str, Any]]) -> pd.DataFrame:
    return parse_events(sorted(lines, key=lambda e: e["timestamp"]))
