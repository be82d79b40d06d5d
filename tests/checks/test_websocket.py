"""checks.websocket: handshake result and reconnect spike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from propflow_ops.checks import websocket as c

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
    ok = c.check_handshake({"ok": True, "status": 101, "latency_ms": 4.0, "url": "ws://h/ws/***"})
    assert ok.status == "ok" and ok.data["url"] == "ws://h/ws/***"
    refused = c.check_handshake({"ok": False, "status": 503, "latency_ms": 2.0}, url_shown="ws://x")
    assert refused.status == "fail" and refused.data["status"] == 503
    assert c.check_handshake({"ok": False, "status": None, "error": "refused"}).status == "fail"


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
