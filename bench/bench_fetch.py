"""Benchmark: pulling a busy log window from CloudWatch (FilterLogEvents pages -> typed DataFrame).

    .venv/bin/python bench/bench_fetch.py                  # 200,000 events, 3 runs each
    .venv/bin/python bench/bench_fetch.py --events 50000 --repeat 2

moto's server runs in its own process (as in the sandbox) and holds ``--events`` events of the API's
request-log shape (the generator of bench_logs.py). ``sources.logs.fetch_log_events`` then pulls the
whole window over HTTP, 10,000 events a page, twice per run:

- *botocore parser*: the events of each page go through botocore's response parser, which walks the
  service model for every member of every event;
- *ours*: the same call with the ``before-parse`` hook that reads the events with ``json.loads``
  (``sources.logs._events_without_botocore``), which is what propflow-ops does.

Printed: best wall time of ``--repeat`` runs for each, events/s, and the client's own CPU seconds
(the server's work is in the other process). Page parsing alone (no server, no network) is shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_logs


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"moto server did not listen on port {port} within {timeout_s:g} s")


def page_parse(n: int = 10_000, repeat: int = 5) -> tuple[float, float]:
    """Seconds to parse one FilterLogEvents page of ``n`` events: botocore's parser, then with our hook."""
    import botocore.session
    from botocore.parsers import create_parser

    from propflow_ops.sources.logs import _events_without_botocore

    events = bench_logs.generate(n)
    body = json.dumps(
        {
            "events": [
                {k: e[k] for k in ("logStreamName", "timestamp", "message", "ingestionTime", "eventId")}
                for e in events
            ],
            "searchedLogStreams": [],
            "nextToken": "t",
        }
    ).encode()
    shape = (
        botocore.session.get_session()
        .get_service_model("logs")
        .operation_model("FilterLogEvents")
        .output_shape
    )
    assert shape is not None
    parser = create_parser("json")

    def plain() -> None:
        parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)

    def ours() -> None:
        response = {"body": body, "headers": {}, "status_code": 200}
        custom: dict[str, object] = {}
        _events_without_botocore(response, custom)
        parser.parse(response, shape).update(custom)

    out = []
    for fn in (plain, ours):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out.append(best)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    plain_page, ours_page = page_parse()
    print(
        f"one page of 10,000 events, parse only: botocore parser {plain_page * 1000:.0f} ms, "
        f"ours {ours_page * 1000:.0f} ms ({plain_page / ours_page:.1f}x)",
        flush=True,
    )

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from moto.server import main; main(sys.argv[1:])",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from propflow_ops.sources import aws, logs

        client = aws.client("logs")
        client.create_log_group(logGroupName="/bench/api")
        client.create_log_stream(logGroupName="/bench/api", logStreamName="api")
        now = int(time.time() * 1000)
        t0 = now - 3 * args.events - 60_000
        events = bench_logs.generate(args.events)
        t = time.perf_counter()
        for i in range(0, len(events), 10_000):
            client.put_log_events(
                logGroupName="/bench/api",
                logStreamName="api",
                logEvents=[
                    {"timestamp": t0 + 3 * j, "message": e["message"]}
                    for j, e in enumerate(events[i : i + 10_000], start=i)
                ],
            )
        print(f"loaded {len(events):,} events into moto in {time.perf_counter() - t:.1f} s", flush=True)
        del events
        start = datetime.fromtimestamp((t0 - 1000) / 1000, UTC)
        end = datetime.fromtimestamp((now + 1000) / 1000, UTC)

        # botocore's parser first: the hook is only registered on the client once ``fetch_log_events``
        # calls the real ``_fast_pages``.
        hooked = logs._fast_pages
        results = {}
        try:
            for name, pages in (("botocore parser", lambda c: c), ("ours", hooked)):
                logs._fast_pages = pages
                best = best_cpu = float("inf")
                rows = 0
                for _ in range(args.repeat):
                    c, t = _cpu(), time.perf_counter()
                    df = logs.fetch_log_events("/bench/api", start, end, max_events=10**8, client=client)
                    best = min(best, time.perf_counter() - t)
                    best_cpu = min(best_cpu, _cpu() - c)
                    rows = len(df)
                results[name] = (best, best_cpu, rows)
        finally:
            logs._fast_pages = hooked
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"\n{'fetch_log_events':<18} {'wall s':>7} {'events/s':>10} {'client CPU s':>13}")
    for name, (wall, cpu, rows) in results.items():
        print(f"{name:<18} {wall:>7.2f} {rows / wall:>10,.0f} {cpu:>13.2f}")
    base, ours = results["botocore parser"][0], results["ours"][0]
    print(
        f"\n{results['ours'][2]:,} events over HTTP from moto's server; best of {args.repeat}; "
        f"ours is {base / ours:.2f}x botocore's parser end to end"
    )


if __name__ == "__main__":
    main()
