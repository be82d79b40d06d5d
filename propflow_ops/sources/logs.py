"""CloudWatch Logs: fetch a log group's events in a window (FilterLogEvents, pages read without botocore's
per-event parse) and parse them (:mod:`propflow_ops.sources.logparse`); too large a window goes to Logs
Insights aggregates instead (:mod:`propflow_ops.sources.insights`).

This module fetches; it does not judge (no thresholds here).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.sources import aws
from propflow_ops.sources.insights import AGGREGATE_QUERY, epoch_ms, insights_aggregate
from propflow_ops.sources.logparse import parse_events, use_mapping

# use_mapping: the runbooks call it as log_source.use_mapping (README: log dialects), beside fetch_log_events
__all__ = ["estimate_event_count", "fetch_log_events", "fetch_or_aggregate", "stored_bytes", "use_mapping"]

#: Above this many events in the window, :func:`fetch_or_aggregate` asks Logs
#: Insights for per-minute aggregates instead of downloading every event.
#: 500k events is ~150 MB of messages: a couple of seconds to parse, minutes to
#: download through FilterLogEvents (10k events per page).
MAX_RAW_EVENTS = 500_000


def _events_without_botocore(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """``before-parse`` hook for FilterLogEvents: read the page's events with :func:`json.loads`.

    botocore walks its shape model for every member of every event (about 14 us an event on the
    2-core VM, 0.07 M events/s: slower than the whole of :func:`parse_events`). The events are plain
    JSON that needs no conversion (strings and integers), so they are taken out of the body here and
    botocore parses the rest of the page (nextToken, searchedLogStreams) as usual. Anything unexpected
    (an error status, a body that is not a JSON object with a list of objects under ``events``) is left
    to botocore untouched.
    """
    if response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if not isinstance(body, (bytes, bytearray)) or not body:
        return
    try:
        doc = json.loads(body)
    except ValueError:
        return
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return
    del doc["events"]
    response_dict["body"] = json.dumps(doc).encode()
    customized_response_dict["events"] = events


def _fast_pages(logs: Any) -> Any:
    """``logs`` (a CloudWatch Logs client) with :func:`_events_without_botocore` registered once
    (anything that is not a botocore client is returned as it is)."""
    meta = getattr(logs, "meta", None)
    if meta is not None and hasattr(meta, "events"):
        meta.events.register(
            f"before-parse.{meta.service_model.service_id.hyphenize()}.FilterLogEvents",
            _events_without_botocore,
            unique_id="propflow-ops-filter-log-events",
        )
    return logs


def fetch_log_events(
    log_group: str,
    start: datetime,
    end: datetime,
    filter_pattern: str | None = None,
    *,
    max_events: int = 200_000,
    client: Any = None,
) -> pd.DataFrame:
    """Every event of ``log_group`` in [start, end], via FilterLogEvents (follows nextToken).

    Stops after ``max_events`` and marks ``df.attrs["truncated"] = True``. The
    filter pattern is passed to CloudWatch as is (moto understands bare terms
    and quoted phrases only; filter in pandas when in doubt).
    """
    logs = _fast_pages(client or aws.client("logs"))
    kwargs: dict[str, Any] = {
        "logGroupName": log_group,
        "startTime": epoch_ms(start),
        "endTime": epoch_ms(end),
        "limit": 10_000,
    }
    if filter_pattern:
        kwargs["filterPattern"] = filter_pattern
    events: list[dict[str, Any]] = []
    truncated = False
    token: str | None = None
    while True:
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        batch = page.get("events", [])
        room = max_events - len(events)
        if len(batch) >= room:
            events.extend(batch[:room])
            truncated = len(batch) > room or bool(page.get("nextToken"))
            break
        events.extend(batch)
        new_token = page.get("nextToken")
        if not new_token or new_token == token:
            break
        token = new_token
    df = parse_events(events)
    df.attrs["truncated"] = truncated
    df.attrs["log_group"] = log_group
    return df


def stored_bytes(log_group: str, *, client: Any = None) -> int | None:
    """The group's stored bytes as CloudWatch reports them (None if unknown)."""
    logs = client or aws.client("logs")
    resp = logs.describe_log_groups(logGroupNamePrefix=log_group)
    for g in resp.get("logGroups", []):
        if g.get("logGroupName") == log_group:
            value = g.get("storedBytes")
            return int(value) if value is not None else None
    return None


def estimate_event_count(
    log_group: str,
    start: datetime,
    end: datetime,
    *,
    sample_pages: int = 3,
    client: Any = None,
) -> tuple[int, bool]:
    """Estimate how many events the window holds by reading up to ``sample_pages`` pages.

    Returns ``(count, exact)``: when the sample reaches the end of the window the
    count is exact; otherwise it is extrapolated from the time span the sample
    covered (events come back in time order per page).
    """
    logs = _fast_pages(client or aws.client("logs"))
    t0, t1 = epoch_ms(start), epoch_ms(end)
    kwargs: dict[str, Any] = {"logGroupName": log_group, "startTime": t0, "endTime": t1, "limit": 10_000}
    seen = 0
    last_ts = t0
    token: str | None = None
    for _ in range(max(1, sample_pages)):
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        batch = page.get("events", [])
        seen += len(batch)
        if batch:
            last_ts = max(last_ts, max(int(e.get("timestamp", t0)) for e in batch))
        new_token = page.get("nextToken")
        if not new_token or new_token == token:
            return seen, True
        token = new_token
    covered = max(1, last_ts - t0)
    return int(seen * max(1.0, (t1 - t0) / covered)), False


def fetch_or_aggregate(
    log_group: str,
    start: datetime,
    end: datetime,
    *,
    max_raw_events: int = MAX_RAW_EVENTS,
    query: str = AGGREGATE_QUERY,
    client: Any = None,
    poll_timeout_s: float = 30,
) -> tuple[str, pd.DataFrame]:
    """Raw events when the window is small enough, else Logs Insights per-minute aggregates.

    Returns ``("events", parse_events frame)`` or ``("aggregate", insights frame)``.
    The window is "too large" when :func:`estimate_event_count` (three pages of
    FilterLogEvents, extrapolated over time) exceeds ``max_raw_events``
    (default :data:`MAX_RAW_EVENTS` = 500k). The aggregate frame has
    ``minute``, ``requests``, ``p95_latency_ms``.
    """
    logs = client or aws.client("logs")
    count, _exact = estimate_event_count(log_group, start, end, client=logs)
    if count > max_raw_events:
        df = insights_aggregate(log_group, start, end, query, client=logs, poll_timeout_s=poll_timeout_s)
        df.attrs["estimated_events"] = count
        return "aggregate", df
    df = fetch_log_events(log_group, start, end, max_events=max_raw_events, client=logs)
    df.attrs["estimated_events"] = count
    return "events", df
