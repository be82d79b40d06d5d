"""Log-derived checks, generic over the typed log frame of ``sources.logs.fetch_log_events``.

Every function takes that frame (``timestamp``, ``level``, ``event``, ``message``,
...) and is pure. A frame that could not be fetched is passed as the exception
(``BaseException``): checks then return ``Finding.error`` with the reason.

Building blocks other runbooks reuse:

- :func:`matching` / :func:`count_matching`: lines whose text matches a pattern;
- :func:`errors`: error-level lines;
- :func:`per_minute`: counts per minute over the window (zero-filled);
- :func:`top_messages`: the most frequent messages, normalised (ids and numbers folded);
- :func:`error_spike`: the ``LOG_ERROR_SPIKE`` finding;
- :func:`pattern_finding`: "N lines matched <pattern>" as a finding with any code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.findings import Finding, Status

ERROR_LEVELS: tuple[str, ...] = ("ERROR", "CRITICAL", "FATAL")

#: Errors per minute that count as a spike (a healthy PropFlow API logs well under one a minute).
ERROR_SPIKE_PER_MIN = 5.0
#: ... and the peak must also be this many times the window's typical (median) minute.
ERROR_SPIKE_FACTOR = 3.0

_FOLD = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b(?:req|wst|c)[-_][0-9a-z]+\b", re.I), "<id>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+\.\d+\b|\b\d{4,}\b"), "<n>"),  # durations, counts; short codes (HTTP 502) stay
)


def fetch_failed(df: Any) -> bool:
    return isinstance(df, BaseException)


def _text(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return pd.Series([""] * len(df), index=df.index, dtype="object")
    return df[column].astype("object").where(df[column].notna(), "").astype(str)


def matching(df: pd.DataFrame, pattern: str, *, column: str = "message", regex: bool = True,
             case: bool = False, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows whose ``column`` (or any of ``columns``) matches ``pattern`` (a regex, case-insensitive)."""
    if df is None or len(df) == 0:
        return df.iloc[0:0] if df is not None else pd.DataFrame()
    mask = pd.Series(False, index=df.index)
    for col in columns or (column,):
        mask |= _text(df, col).str.contains(pattern, case=case, regex=regex, na=False)
    return df[mask]


def count_matching(df: pd.DataFrame, pattern: str, **kwargs: Any) -> int:
    """How many rows match (see :func:`matching`)."""
    return len(matching(df, pattern, **kwargs))


def errors(df: pd.DataFrame, levels: Sequence[str] = ERROR_LEVELS) -> pd.DataFrame:
    """Error-level lines (``level`` in ``levels``, case-insensitive)."""
    if df is None or len(df) == 0 or "level" not in df:
        return df.iloc[0:0] if df is not None else pd.DataFrame()
    wanted = {lv.upper() for lv in levels}
    return df[_text(df, "level").str.upper().isin(wanted)]


def per_minute(df: pd.DataFrame, *, start: datetime | None = None, end: datetime | None = None,
               freq: str = "1min", ts: str = "timestamp") -> pd.Series:
    """Counts per ``freq`` bucket, zero-filled over [start, end] when given (index: bucket start, UTC)."""
    stamps = pd.to_datetime(df[ts], utc=True) if df is not None and len(df) and ts in df else pd.Series(
        [], dtype="datetime64[ns, UTC]")
    counts = stamps.dt.floor(freq).value_counts().sort_index() if len(stamps) else pd.Series(dtype="int64")
    if start is not None and end is not None:
        index = pd.date_range(pd.Timestamp(start).floor(freq), pd.Timestamp(end).floor(freq), freq=freq)
        if index.tz is None:
            index = index.tz_localize("UTC")
        counts = counts.reindex(index, fill_value=0)
    counts.index.name = "minute"
    counts.name = "count"
    return counts.astype("int64")


def normalise(message: str) -> str:
    """A message with ids, hex and numbers folded, so repeats of one error group together."""
    text = message.strip().splitlines()[0] if message and message.strip() else ""
    for rx, repl in _FOLD:
        text = rx.sub(repl, text)
    return text[:200]


def top_messages(df: pd.DataFrame, n: int = 10, *, column: str = "message") -> pd.DataFrame:
    """The ``n`` most frequent (normalised) messages: message, count, first, last, example error_type."""
    cols = ["message", "count", "first_seen", "last_seen", "error_type"]
    if df is None or len(df) == 0:
        return pd.DataFrame(columns=cols)
    work = pd.DataFrame({
        "message": _text(df, column).map(normalise),
        "timestamp": pd.to_datetime(df["timestamp"], utc=True) if "timestamp" in df else pd.NaT,
        "error_type": _text(df, "error_type"),
    })
    grouped = work.groupby("message", sort=False).agg(
        count=("message", "size"), first_seen=("timestamp", "min"), last_seen=("timestamp", "max"),
        error_type=("error_type", lambda s: next((v for v in s if v), "")),
    )
    out = grouped.sort_values(["count", "last_seen"], ascending=[False, False]).head(n).reset_index()
    return out[cols]


def error_spike(df: pd.DataFrame | BaseException, *, start: datetime | None = None, end: datetime | None = None,
                per_minute_threshold: float = ERROR_SPIKE_PER_MIN, factor: float = ERROR_SPIKE_FACTOR,
                code: str = "LOG_ERROR_SPIKE", levels: Sequence[str] = ERROR_LEVELS) -> Finding:
    """``fail`` when some minute holds at least ``per_minute_threshold`` error lines and at least
    ``factor`` times the window's median minute; ``ok`` otherwise."""
    title = "Error-level log lines per minute"
    if isinstance(df, BaseException):
        return Finding.error(code, title, df)
    errs = errors(df, levels)
    counts = per_minute(errs, start=start, end=end)
    total = int(counts.sum()) if len(counts) else 0
    peak = int(counts.max()) if len(counts) else 0
    baseline = float(counts.median()) if len(counts) else 0.0
    peak_at = counts.idxmax() if total else None
    top = top_messages(errs, 3)
    top_text = "; ".join(f"{r.count}x {r.message}" for r in top.itertuples()) if len(top) else ""
    data = {"errors": total, "peak_per_minute": peak, "peak_minute": peak_at, "median_per_minute": baseline,
            "threshold_per_minute": per_minute_threshold, "lines_scanned": 0 if df is None else len(df),
            "top_messages": top.to_dict(orient="records")}
    if total and peak >= per_minute_threshold and peak >= factor * max(baseline, 1.0):
        recent = counts.tail(5)
        return Finding.fail(
            code, "Error spike in the API logs",
            f"{total} error lines in the window, peaking at {peak}/min at {peak_at:%H:%M} UTC "
            f"(typical minute {baseline:g}; threshold {per_minute_threshold:g}/min); "
            f"last 5 min: {int(recent.sum())}. Top: {top_text}", **data)
    return Finding.ok(code, "No error spike in the API logs",
                      f"{total} error lines in the window, at most {peak}/min "
                      f"(threshold {per_minute_threshold:g}/min)", **data)


def pattern_finding(df: pd.DataFrame | BaseException, code: str, pattern: str, *, what: str,
                    min_count: int = 1, status: str = "fail", column: str = "message") -> Finding:
    """A finding that says how many lines matched ``pattern``: ``status`` when at least ``min_count``."""
    title = f"'{what}' lines in the logs"
    if isinstance(df, BaseException):
        return Finding.error(code, title, df)
    hits = matching(df, pattern, column=column)
    n = len(hits)
    first = hits["timestamp"].min() if n and "timestamp" in hits else None
    last = hits["timestamp"].max() if n and "timestamp" in hits else None
    example = normalise(str(hits.iloc[-1][column])) if n else ""
    data = {"count": n, "pattern": pattern, "first_seen": first, "last_seen": last, "example": example}
    if n >= min_count:
        detail = f"{n} lines matched /{pattern}/ from {first:%H:%M} to {last:%H:%M} UTC; e.g. {example}"
        return Finding(code, Status(status), f"{what} in the logs ({n} lines)", detail, data)
    return Finding.ok(code, f"No '{what}' lines in the logs", f"0 lines matched /{pattern}/ in the window", **data)
