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
- :func:`pattern_finding`: "N lines matched <pattern>" as a finding with any code;
- what a line *is*, read from what it says, whatever the dialect: :func:`is_request`,
  :func:`is_error`, :func:`is_upload`, :func:`is_websocket`, :func:`is_notification`;
- :func:`summary` (lines read, understood as which kind, detected dialect: every log-based
  finding carries it under ``data["logs"]``) and :func:`unparsed` (the ``LOGS_UNPARSED`` finding).
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.findings import Finding, Status
from propflow_ops.redact import redact_text
from propflow_ops.results import takes_fetched

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


def matching(
    df: pd.DataFrame,
    pattern: str,
    *,
    column: str = "message",
    regex: bool = True,
    case: bool = False,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
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


@takes_fetched
def errors(df: pd.DataFrame, levels: Sequence[str] = ERROR_LEVELS) -> pd.DataFrame:
    """Error lines: an error level (``level`` in ``levels``, case-insensitive), a 5xx status, or an
    exception (an ``error_type``, a traceback), see :func:`is_error`."""
    if df is None or len(df) == 0:
        return df.iloc[0:0] if df is not None else pd.DataFrame()
    return df[is_error(df, levels)]


# --- what a line is, by what it says -----------------------------------------------------------

#: Values of the frame's ``format`` column that mean "not understood".
NOT_UNDERSTOOD = ("raw", "unknown")
#: LOGS_UNPARSED warns when more than this share of the lines was not understood.
UNPARSED_SHARE = 0.5
UPLOAD_PATTERN = r"upload"
WEBSOCKET_PATTERN = r"websocket|\bws\b|\bws_"
NOTIFICATION_PATTERN = r"twilio|whatsapp|\bsms\b|notification"
PROVIDER_PATTERNS = (("twilio", r"twilio|\bsms\b"), ("whatsapp", r"whatsapp|graph api|#1310"))
_CLOSE_WORDS = r"disconnect|closed|close code|connection lost|abnormal"


def _false(df: pd.DataFrame) -> pd.Series:
    return pd.Series(False, index=df.index)


def _num(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return pd.Series(float("nan"), index=df.index)
    return pd.to_numeric(df[column], errors="coerce").astype("float64")


def _has(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return _false(df)
    return df[column].notna() & (_text(df, column) != "")


def _says(df: pd.DataFrame, pattern: str, columns: Sequence[str] = ("message", "event")) -> pd.Series:
    mask = _false(df)
    for col in columns:
        if col in df:
            mask |= _text(df, col).str.contains(pattern, case=False, regex=True, na=False)
    return mask


def is_websocket(df: pd.DataFrame) -> pd.Series:
    """WebSocket lines: a ``/ws/`` path, an upgrade (101), or a message about a websocket."""
    status = _num(df, "status")
    path = _text(df, "path")
    return (
        path.str.contains(r"^/ws(?:/|$)|/websocket", case=False, regex=True)
        | (status == 101)
        | _says(df, WEBSOCKET_PATTERN)
    )


def is_request(df: pd.DataFrame) -> pd.Series:
    """HTTP request lines: a method and a path, and a status or a duration (WebSocket lines are not:
    their duration is a connection's)."""
    if df is None or len(df) == 0:
        return pd.Series(False, index=getattr(df, "index", None), dtype=bool)
    mask = (
        _has(df, "method") & _has(df, "path") & (_num(df, "status").notna() | _num(df, "latency_ms").notna())
    )
    return mask & ~is_websocket(df)


def is_error(df: pd.DataFrame, levels: Sequence[str] = ERROR_LEVELS) -> pd.Series:
    """Error lines: an error level, a 5xx status, or an exception (``error_type``, a traceback)."""
    if df is None or len(df) == 0:
        return pd.Series(False, index=getattr(df, "index", None), dtype=bool)
    wanted = {lv.upper() for lv in levels}
    status = _num(df, "status")
    mask = _text(df, "level").str.upper().isin(wanted) | status.between(500, 599)
    mask |= _has(df, "error_type")
    mask |= _text(df, "message").str.startswith("Traceback (most recent call last)") & _text(
        df, "message"
    ).str.contains("\n", regex=False)
    return mask


def is_upload(df: pd.DataFrame) -> pd.Series:
    """Upload lines: ``upload`` in the path, the message or the event."""
    return _says(df, UPLOAD_PATTERN, ("path", "message", "event"))


def provider_of(df: pd.DataFrame) -> pd.Series:
    """The notification provider of each line: its ``provider`` field, else read from the message
    (twilio/SMS, WhatsApp), else ``unknown``."""
    out = _text(df, "provider").str.lower()
    for name, pattern in PROVIDER_PATTERNS:
        out = out.where(
            out != "", _says(df, pattern, ("message", "event", "path")).map({True: name, False: ""})
        )
    return out.where(out != "", "unknown")


def is_notification(df: pd.DataFrame) -> pd.Series:
    """Notification lines: a provider, or a message about SMS/WhatsApp/notifications/OTP."""
    return _has(df, "provider") | _says(df, NOTIFICATION_PATTERN, ("message", "event"))


def ws_kind(df: pd.DataFrame) -> pd.Series:
    """``ws_connect``/``ws_disconnect``/``ws_reconnect`` for each line (read from the event, else the message,
    else a WebSocket close code 1000-4999 as status means a disconnect)."""
    event = _text(df, "event").str.lower()
    reconnect = (event == "ws_reconnect") | _says(df, r"reconnect", ("message",))
    disconnect = (
        (event == "ws_disconnect")
        | _says(df, _CLOSE_WORDS, ("message",))
        | _num(df, "status").between(1000, 4999)
    )
    out = pd.Series("ws_connect", index=df.index, dtype="object")
    out[disconnect] = "ws_disconnect"
    out[reconnect & ~(event == "ws_disconnect")] = "ws_reconnect"
    return out


def _formats(df: pd.DataFrame) -> pd.Series:
    if "format" not in df:  # a frame built without the parser: JSON of our own dialect
        return pd.Series("json", index=df.index, dtype="object")
    return _text(df, "format").where(_text(df, "format") != "", "json")


def dialect(df: pd.DataFrame) -> str:
    """The dialect the lines were written in, as detected: the formats seen (most first) and, for JSON,
    the fields that fed the columns under other names (``status<-http.status_code``)."""
    if df is None or len(df) == 0:
        return "none (no lines)"
    fmts = _formats(df)
    counts = fmts.value_counts()
    family = (
        counts.groupby([f.split(":")[0].split("+")[0] for f in counts.index])
        .sum()
        .sort_values(ascending=False)
    )
    parts = []
    for fam, n in family.items():
        share = f"{n / len(df):.0%}"
        if fam == "text":
            subs = ", ".join(f.split(":", 1)[1] for f in counts.index if f.startswith("text:"))
            parts.append(f"text ({subs}) {share}")
        elif fam == "json":
            used = df.attrs.get("log_fields") or {}
            renamed = [
                f"{col}<-{next(iter(src))}" for col, src in used.items() if src and next(iter(src)) != col
            ]
            parts.append(f"json{' (' + ', '.join(renamed) + ')' if renamed else ''} {share}")
        else:
            parts.append(f"{fam} {share}")
    mapping = df.attrs.get("mapping")
    text = " + ".join(parts)
    return f"{text}; mapping {mapping}" if mapping and mapping != "built-in" else text


#: :func:`summary` per frame object, while the frame lives: every log-based finding carries the summary of
#: the frame it judged, and a runbook judges one frame with up to ten checks (0.44 s a summary of 100,000
#: lines; ``bench/bench_judge.py --lines 100000``: 3.9 s for nine checks, 1.4 s with this). Keyed by id,
#: checked by a weak reference (a new frame at a freed id is not a hit) and by the frame's length, columns
#: and column arrays (a column set anew is a miss). Checks never change a frame; a cell that edits values in
#: place inside an existing column (``df.loc[i, c] = ...``) after a check would see that check's summary.
_summaries: dict[int, tuple[weakref.ref[pd.DataFrame], tuple[Any, ...], dict[str, Any]]] = {}


def _fingerprint(df: pd.DataFrame) -> tuple[Any, ...]:
    arrays = getattr(getattr(df, "_mgr", None), "arrays", None) or ()
    return (len(df), tuple(df.columns), tuple(id(a) for a in arrays))


def summary(df: pd.DataFrame | BaseException | None) -> dict[str, Any]:
    """What the logs held: lines read, how many understood (by format), how many of each kind, the dialect."""
    if isinstance(df, BaseException) or df is None:
        return {"lines": 0, "read": False}
    key, shape = id(df), _fingerprint(df)
    hit = _summaries.get(key)
    if hit is not None and hit[0]() is df and hit[1] == shape:
        return copy.deepcopy(hit[2])  # a caller may add to its copy
    info = _summary(df)
    try:
        ref = weakref.ref(df, lambda _ref, key=key: _summaries.pop(key, None))  # type: ignore[misc]
    except TypeError:  # not weakly referenceable: computed every time
        return info
    _summaries[key] = (ref, shape, info)
    return copy.deepcopy(info)


def _summary(df: pd.DataFrame) -> dict[str, Any]:
    n = len(df)
    fmts = _formats(df) if n else pd.Series([], dtype="object")
    understood = int((~fmts.isin(NOT_UNDERSTOOD)).sum()) if n else 0
    kinds = {}
    if n:
        kinds = {
            "request": int(is_request(df).sum()),
            "error": int(is_error(df).sum()),
            "upload": int(is_upload(df).sum()),
            "websocket": int(is_websocket(df).sum()),
            "notification": int(is_notification(df).sum()),
        }
    return {
        "lines": n,
        "understood": understood,
        "not_understood": n - understood,
        "formats": {str(k): int(v) for k, v in fmts.value_counts().items()},
        "kinds": kinds,
        "dialect": dialect(df),
    }


def _masked_example(text: str, width: int = 160) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return redact_text(first[:width])


@takes_fetched
def unparsed(
    df: pd.DataFrame | BaseException | None,
    *,
    share: float = UNPARSED_SHARE,
    examples: int = 3,
    code: str = "LOGS_UNPARSED",
    filtered: bool = False,
) -> Finding:
    """``LOGS_UNPARSED``: ``warn`` when more than ``share`` of the lines were not understood (with a few
    masked examples and how to map the dialect), or when the window holds no line at all; ``ok`` with
    the counts otherwise; ``skipped`` when the logs could not be read (the log findings say why).
    ``filtered``: the frame holds only the lines a filter pattern selected, so none is no silence."""
    title = "Log lines understood"
    if isinstance(df, BaseException) or df is None:
        reason = f"{type(df).__name__}" if df is not None else "no log frame"
        return Finding.skipped(code, title, f"the logs could not be read ({reason}); see the log findings")
    info = summary(df)
    n = info["lines"]
    if n == 0 and filtered:
        return Finding.ok(
            code,
            "No log line matched the runbook's filter",
            "the runbook fetched only the lines its filter pattern selects, and none was in the "
            "window: nothing to parse",
            logs=info,
        )
    if n == 0:
        return Finding.warn(
            code,
            "No log lines in the window",
            "the log group holds no line in the window: check log_group and the window "
            "(silence is not health)",
            logs=info,
        )
    bad = info["not_understood"]
    kinds = ", ".join(f"{v} {k}" for k, v in info["kinds"].items() if v)
    if bad / n > share:
        rows = df[_formats(df).isin(NOT_UNDERSTOOD)]
        ex = (
            [_masked_example(str(m)) for m in rows["message"].head(200).dropna().unique()[:examples]]
            if "message" in rows
            else []
        )
        return Finding.warn(
            code,
            f"Most log lines not understood ({bad} of {n})",
            f"{bad} of {n} lines are in no format the parser knows ({info['dialect']}); log "
            "checks may read silence as health. Set the log_mapping parameter (fields, units, "
            "text_patterns; see README) for this dialect. Examples: " + " | ".join(ex),
            logs=info,
            examples=ex,
        )
    return Finding.ok(
        code,
        f"{n - bad} of {n} log lines understood",
        f"dialect: {info['dialect']}; kinds: {kinds or 'none'}",
        logs=info,
    )


def per_minute(
    df: pd.DataFrame,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    freq: str = "1min",
    ts: str = "timestamp",
) -> pd.Series:
    """Counts per ``freq`` bucket, zero-filled over [start, end] when given (index: bucket start, UTC)."""
    stamps = (
        pd.to_datetime(df[ts], utc=True)
        if df is not None and len(df) and ts in df
        else pd.Series([], dtype="datetime64[ns, UTC]")
    )
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


@takes_fetched
def top_messages(df: pd.DataFrame, n: int = 10, *, column: str = "message") -> pd.DataFrame:
    """The ``n`` most frequent (normalised) messages: message, count, first, last, example error_type."""
    cols = ["message", "count", "first_seen", "last_seen", "error_type"]
    if df is None or len(df) == 0:
        return pd.DataFrame(columns=cols)
    work = pd.DataFrame(
        {
            "message": _text(df, column).map(normalise),
            "timestamp": pd.to_datetime(df["timestamp"], utc=True) if "timestamp" in df else pd.NaT,
            "error_type": _text(df, "error_type"),
        }
    )
    grouped = work.groupby("message", sort=False).agg(
        count=("message", "size"),
        first_seen=("timestamp", "min"),
        last_seen=("timestamp", "max"),
        error_type=("error_type", lambda s: next((v for v in s if v), "")),
    )
    out = grouped.sort_values(["count", "last_seen"], ascending=[False, False]).head(n).reset_index()
    return out[cols]


@takes_fetched
def error_spike(
    df: pd.DataFrame | BaseException,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    per_minute_threshold: float = ERROR_SPIKE_PER_MIN,
    factor: float = ERROR_SPIKE_FACTOR,
    code: str = "LOG_ERROR_SPIKE",
    levels: Sequence[str] = ERROR_LEVELS,
) -> Finding:
    """``fail`` when some minute holds at least ``per_minute_threshold`` error lines and at least
    ``factor`` times the window's median minute; ``ok`` otherwise."""
    title = "Error-level log lines per minute"
    if isinstance(df, BaseException):
        return Finding.error(code, title, df)
    if df is None or len(df) == 0:
        return Finding.skipped(
            code, title, "no log lines in the window: nothing to count (see LOGS_UNPARSED)", logs=summary(df)
        )
    errs = errors(df, levels)
    counts = per_minute(errs, start=start, end=end)
    total = int(counts.sum()) if len(counts) else 0
    peak = int(counts.max()) if len(counts) else 0
    baseline = float(counts.median()) if len(counts) else 0.0
    peak_at = counts.idxmax() if total else None
    top = top_messages(errs, 3)
    top_text = "; ".join(f"{r.count}x {r.message}" for r in top.itertuples()) if len(top) else ""
    data = {
        "errors": total,
        "peak_per_minute": peak,
        "peak_minute": peak_at,
        "median_per_minute": baseline,
        "threshold_per_minute": per_minute_threshold,
        "lines_scanned": 0 if df is None else len(df),
        "top_messages": top.to_dict(orient="records"),
        "logs": summary(df),
    }
    if total and peak >= per_minute_threshold and peak >= factor * max(baseline, 1.0):
        recent = counts.tail(5)
        return Finding.fail(
            code,
            "Error spike in the API logs",
            f"{total} error lines in the window, peaking at {peak}/min at {peak_at:%H:%M} UTC "
            f"(typical minute {baseline:g}; threshold {per_minute_threshold:g}/min); "
            f"last 5 min: {int(recent.sum())}. Top: {top_text}",
            **data,
        )
    return Finding.ok(
        code,
        "No error spike in the API logs",
        f"{total} error lines in the window, at most {peak}/min (threshold {per_minute_threshold:g}/min)",
        **data,
    )


def pattern_finding(
    df: pd.DataFrame | BaseException,
    code: str,
    pattern: str,
    *,
    what: str,
    min_count: int = 1,
    status: str = "fail",
    column: str = "message",
) -> Finding:
    """A finding that says how many lines matched ``pattern``: ``status`` when at least ``min_count``."""
    title = f"'{what}' lines in the logs"
    if isinstance(df, BaseException):
        return Finding.error(code, title, df)
    hits = matching(df, pattern, column=column)
    n = len(hits)
    first = hits["timestamp"].min() if n and "timestamp" in hits else None
    last = hits["timestamp"].max() if n and "timestamp" in hits else None
    example = normalise(str(hits.iloc[-1][column])) if n else ""
    data = {
        "count": n,
        "pattern": pattern,
        "first_seen": first,
        "last_seen": last,
        "example": example,
        "logs": summary(df),
    }
    if n >= min_count:
        detail = f"{n} lines matched /{pattern}/ from {first:%H:%M} to {last:%H:%M} UTC; e.g. {example}"
        return Finding(code, Status(status), f"{what} in the logs ({n} lines)", detail, data)
    return Finding.ok(
        code, f"No '{what}' lines in the logs", f"0 lines matched /{pattern}/ in the window", **data
    )
