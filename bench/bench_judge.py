"""bench_judge: the log-based checks judging one parsed frame, as a runbook does.

Builds an hour of the sandbox world's API logs (two streams, with a latency spike and failed uploads) in one
dialect, parses it once with ``sources.logparse.parse_events``, repeats the frame to ``--lines`` lines, then
times the ten log checks that runbooks run on one frame (error spike, latency, slow queries, uploads,
WebSocket reconnects, notification errors, migration objects, database errors, LOGS_UNPARSED and the
per-minute latency). Each round judges a new copy of the frame, so nothing is cached across rounds.

    .venv/bin/python bench/bench_judge.py --lines 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import pandas as pd

from propflow_ops.checks import db, latency, migration, notify, s3, websocket
from propflow_ops.checks import logs as lc
from propflow_ops.sandbox import logs as L
from propflow_ops.sources import logparse

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
START = NOW - dt.timedelta(minutes=60)


def world(dialect: str) -> pd.DataFrame:
    b = L.LogBuilder(["ecs/api/t1", "ecs/api/t2"], NOW, dialect=dialect)
    L.baseline(b)
    L.latency_spike(b)
    L.upload_error_spike(b, "AccessDenied")
    events = [
        {"timestamp": x.timestamp_ms, "message": x.message, "logStreamName": x.stream}
        for x in b.sorted_lines()
        if x.ts >= START
    ]
    return logparse.parse_events(events)


def judge(df: pd.DataFrame) -> int:
    pm = latency.latency_per_minute({}, df)
    found = [
        lc.error_spike(df, start=START, end=NOW),
        latency.latency_high(pm, df),
        latency.slow_queries(df),
        s3.check_upload_errors(df),
        websocket.check_reconnect_spike(df, start=START, end=NOW),
        notify.log_send_errors(df),
        migration.object_exists(df),
        db.connection_errors_in_logs(df),
        lc.unparsed(df),
    ]
    return len(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dialect", default="python-json", choices=L.DIALECTS)
    args = ap.parse_args()
    one = world(args.dialect)
    frame = pd.concat([one] * max(1, -(-args.lines // len(one))), ignore_index=True).iloc[: args.lines]
    frame.attrs = dict(one.attrs)
    judge(frame.copy())  # warm-up: imports, regex compilation
    walls, cpus = [], []
    for _ in range(args.repeat):
        df = frame.copy()
        t0, c0 = time.perf_counter(), time.process_time()
        judge(df)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(
        f"{len(frame):,} lines ({args.dialect}), 9 findings: wall {statistics.median(walls):.2f} s, "
        f"CPU {statistics.median(cpus):.2f} s (median of {args.repeat})"
    )


if __name__ == "__main__":
    main()
