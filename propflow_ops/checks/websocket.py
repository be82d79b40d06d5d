"""WebSocket checks (runbook 5): the handshake to /ws/<token> and connection churn from the logs."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from propflow_ops.checks import logs as log_checks
from propflow_ops.findings import Finding
from propflow_ops.reach import unreachable
from propflow_ops.records import WsAnswer
from propflow_ops.results import Fetched, takes_fetched

WS_EVENTS = ("ws_connect", "ws_disconnect", "ws_reconnect")
#: The busiest 5 minutes must exceed this many times the window's typical minute ...
RECONNECT_SPIKE_FACTOR = 5.0
#: ... and reach this many disconnects+reconnects a minute.
RECONNECT_MIN_PER_MINUTE = 10.0


#: What the check reads of ``sources.http.ws_handshake``: its Fetched, or (unwrapped) the answer or the error.
Handshake = Fetched[WsAnswer] | WsAnswer | BaseException


def check_handshake(result: Handshake, *, url_shown: str = "") -> Finding:
    """WS_HANDSHAKE_FAILING: the upgrade did not answer 101 Switching Protocols (``fail``, also when no answer
    came); ``error`` when the handshake could not be tried (not a network failure)."""
    code, title = "WS_HANDSHAKE_FAILING", "WebSocket handshake to /ws/<token> succeeds"
    got: WsAnswer | BaseException | None = result.outcome if isinstance(result, Fetched) else result
    target = result.target if isinstance(result, Fetched) else ""
    if isinstance(got, BaseException):
        url_shown = url_shown or target
        if not unreachable(got):
            return Finding.error(code, title, got, url=url_shown)
        latency = round(result.seconds * 1000, 2) if isinstance(result, Fetched) else None
        data = {"url": url_shown, "status": None, "latency_ms": latency, "first_message": False}
        return Finding.fail(code, "WebSocket endpoint unreachable", f"{url_shown}: {got}", **data)
    if got is None:
        return Finding.skipped(code, title, "no API URL configured (PROPFLOW_API_URL)")
    url_shown = url_shown or got.url
    data = {
        "url": url_shown,
        "status": got.status,
        "latency_ms": got.latency_ms,
        "first_message": got.first_message is not None,
    }
    if got.ok:
        return Finding.ok(
            code,
            title,
            f"101 Switching Protocols in {got.latency_ms} ms"
            + (", first message received" if data["first_message"] else ""),
            **data,
        )
    return Finding.fail(
        code,
        f"WebSocket upgrade refused: HTTP {got.status}",
        f"{url_shown} answered {got.status} instead of 101 in {got.latency_ms} ms"
        + (f" ({got.problem})" if got.problem and 300 <= got.status < 400 else ""),
        **data,
    )


def handshake_table(result: Handshake) -> pd.DataFrame:
    """The handshake as a one-row table for display (the token masked): what answered, or why nothing did."""
    columns = ["url", "ok", "status", "latency_ms", "first_message", "error"]
    got = result.outcome if isinstance(result, Fetched) else result
    if isinstance(got, WsAnswer):
        row = {
            "url": got.url,
            "ok": got.ok,
            "status": got.status,
            "latency_ms": got.latency_ms,
            "first_message": got.first_message,
            "error": got.problem,
        }
    elif isinstance(got, BaseException):
        row = {
            "url": result.target if isinstance(result, Fetched) else None,
            "ok": False,
            "latency_ms": round(result.seconds * 1000, 2) if isinstance(result, Fetched) else None,
            "error": str(got),
        }
    else:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame([{k: row.get(k) for k in columns}], columns=columns).astype(object)


@takes_fetched
def ws_events(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """The WebSocket lifecycle events among the log lines (connect, disconnect, reconnect)."""
    if isinstance(logs, BaseException) or logs is None or logs.empty:
        return pd.DataFrame(columns=["timestamp", "event"])
    ws = logs[log_checks.is_websocket(logs)].copy()
    ws["event"] = log_checks.ws_kind(ws)  # read from the event, else the message or the close code
    return ws[ws["event"].isin(WS_EVENTS)]


@takes_fetched
def check_reconnect_spike(
    logs: pd.DataFrame | BaseException,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    reconnect_spike_factor: float = RECONNECT_SPIKE_FACTOR,
    reconnect_min_per_minute: float = RECONNECT_MIN_PER_MINUTE,
) -> Finding:
    """WS_RECONNECT_SPIKE: the busiest 5 minutes of disconnects+reconnects against the window's median minute."""
    code, title = "WS_RECONNECT_SPIKE", "WebSocket disconnects and reconnects at their usual rate"
    if isinstance(logs, BaseException):
        return Finding.error(code, title, logs)
    if logs is None:  # never fetched
        return Finding.skipped(code, title, "the logs were not fetched")
    ws = ws_events(logs)
    churn = ws[ws["event"].isin(["ws_disconnect", "ws_reconnect"])]
    counts = log_checks.per_minute(churn, start=start, end=end)
    if counts.empty:
        return Finding.ok(
            code,
            "No WebSocket disconnects or reconnects in the window",
            "0 events",
            logs=log_checks.summary(logs),
        )
    rolling = counts.rolling(5, min_periods=1).mean()
    peak = float(rolling.max())
    peak_at = rolling.idxmax()
    median = float(counts.median())
    abnormal = 0
    if len(churn):  # the close code as status, else in the message ("closed abnormally (1006)")
        close = (
            pd.to_numeric(churn["status"], errors="coerce")
            if "status" in churn
            else pd.Series(float("nan"), index=churn.index)
        )
        said = (
            churn["message"]
            .astype("object")
            .fillna("")
            .astype(str)
            .str.extract(r"\b(1006|1011)\b")[0]
            .astype("float64")
            if "message" in churn
            else close
        )
        abnormal = int(close.fillna(said).isin([1006, 1011]).sum())
    data = {
        "disconnects": int((churn["event"] == "ws_disconnect").sum()),
        "reconnects": int((churn["event"] == "ws_reconnect").sum()),
        "connects": int((ws["event"] == "ws_connect").sum()),
        "abnormal_closes": abnormal,
        "peak_5min_avg_per_minute": round(peak, 2),
        "peak_at": peak_at,
        "median_per_minute": median,
        "factor": reconnect_spike_factor,
        "min_per_minute": reconnect_min_per_minute,
        "logs": log_checks.summary(logs),
    }
    if peak >= reconnect_min_per_minute and peak >= reconnect_spike_factor * max(median, 1.0):
        return Finding.fail(
            code,
            f"Reconnect spike: {peak:.0f}/min around {peak_at:%H:%M} UTC",
            f"disconnects+reconnects averaged {peak:.1f}/min over the busiest 5 minutes against a "
            f"typical {median:g}/min ({data['disconnects']} disconnects, {abnormal} abnormal "
            f"closes 1006/1011)",
            **data,
        )
    return Finding.ok(code, title, f"busiest 5 minutes {peak:.1f}/min, typical {median:g}/min", **data)
