"""checks.websocket: handshake result and reconnect spike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from propflow_ops.checks import websocket as c
from propflow_ops.errors import FetchError
from propflow_ops.records import WsAnswer
from propflow_ops.results import Fetched

END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
START = END - timedelta(minutes=60)


def frame(per_minute_baseline=1, storm_minutes=0, storm_rate=0):
    rows = []
    for m in range(60):
        ts = START + timedelta(minutes=m, seconds=5)
        rows += [(ts, "ws_connect", 101)] * 2 + [(ts, "ws_disconnect", 1000)] * per_minute_baseline
        if m >= 60 - storm_minutes:
            rows += [(ts, "ws_disconnect", 1006)] * storm_rate + [(ts, "ws_reconnect", 101)] * storm_rate
    df = pd.DataFrame(rows, columns=["timestamp", "event", "status"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def test_handshake():
    ok = c.check_handshake(Fetched(WsAnswer("ws://h/ws/***", 101, 4.0), None, "ws://h/ws/***"))
    assert ok.status == "ok" and ok.data["url"] == "ws://h/ws/***"
    refused = c.check_handshake(
        WsAnswer("ws://h/ws/***", 503, 2.0, problem="handshake refused: HTTP 503"), url_shown="ws://x"
    )
    assert refused.status == "fail" and "503" in refused.title and refused.data["status"] == 503
    no_answer = Fetched(
        None, FetchError("ConnectionRefusedError: refused", unreachable=True), "ws://h/ws/***"
    )
    gone = c.check_handshake(no_answer)
    assert (
        gone.status == "fail"
        and gone.title == "WebSocket endpoint unreachable"
        and gone.data["status"] is None
    )
    assert "ws://h/ws/***" in gone.detail
    assert c.check_handshake(FetchError("no answer within the triage budget of 25 s")).status == "error"
    moved = c.check_handshake(
        WsAnswer(
            "ws://h/ws/***", 302, 1.0, problem="handshake refused: HTTP 302 redirect to b:80, not followed"
        )
    )
    assert moved.status == "fail" and "b:80" in moved.detail
    table = c.handshake_table(no_answer)
    assert list(table.columns) == ["url", "ok", "status", "latency_ms", "first_message", "error"]
    assert table.iloc[0]["error"] == "ConnectionRefusedError: refused"


def test_reconnect_spike():
    assert c.check_reconnect_spike(frame(), start=START, end=END).status == "ok"
    f = c.check_reconnect_spike(frame(storm_minutes=15, storm_rate=14), start=START, end=END)
    assert f.status == "fail"
    assert f.data["abnormal_closes"] == 15 * 14 and f.data["reconnects"] == 15 * 14
    # a small bump stays below the absolute minimum
    assert c.check_reconnect_spike(frame(storm_minutes=5, storm_rate=3), start=START, end=END).status == "ok"
    assert c.check_reconnect_spike(RuntimeError("no logs")).status == "error"
    assert c.check_reconnect_spike(frame().iloc[0:0]).status == "ok"


def test_ws_events_filters():
    df = frame()
    df.loc[len(df)] = [END, "request", 200]
    assert set(c.ws_events(df)["event"]) == {"ws_connect", "ws_disconnect"}
    assert c.ws_events(RuntimeError("x")).empty
