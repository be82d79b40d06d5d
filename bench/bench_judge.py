"""bench_judge: the log-based checks judging one parsed frame, as a runbook does.

Builds an hour of the sandbox world's API logs (two streams, with a latency spike and failed uploads) in one
dialect, parses it once with ``sources.logparse.parse_events``, repeats the frame to ``--lines`` lines, then
times the log checks that runbooks run on one frame, as ``tests/checks/test_dialects.py`` judges them
(error spike, latency, slow queries, uploads, WebSocket reconnects, notification errors, migration
objects, database errors, LOGS_UNPARSED and the per-minute latency). Each round judges a new copy of the
frame, so nothing is cached across rounds.

    .venv/bin/python bench/bench_judge.py --lines 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from propflow_ops.sandbox import logs as L
from tests.checks.test_dialects import FAULTS, findings, world  # the checks the dialect test judges


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dialect", default="python-json", choices=L.DIALECTS)
    args = ap.parse_args()
    one = world(args.dialect, *FAULTS["latency"], *FAULTS["upload-denied"])
    frame = pd.concat([one] * max(1, -(-args.lines // len(one))), ignore_index=True).iloc[: args.lines]
    frame.attrs = dict(one.attrs)
    findings(frame.copy())  # warm-up: imports, regex compilation
    walls, cpus = [], []
    for _ in range(args.repeat):
        df = frame.copy()
        t0, c0 = time.perf_counter(), time.process_time()
        findings(df)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(
        f"{len(frame):,} lines ({args.dialect}), 9 findings: wall {statistics.median(walls):.2f} s, "
        f"CPU {statistics.median(cpus):.2f} s (median of {args.repeat})"
    )


if __name__ == "__main__":
    main()
