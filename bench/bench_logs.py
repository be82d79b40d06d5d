"""Benchmark: parsing CloudWatch log events into a DataFrame.

Compares the plain approach (``json.loads`` per event into a list of dicts, then
``pandas.DataFrame``) with ``propflow_ops.sources.logparse.parse_events``.

    .venv/bin/python bench/bench_logs.py                 # 1,000,000 events, 3 runs each
    .venv/bin/python bench/bench_logs.py --events 200000 --repeat 1
    .venv/bin/python bench/bench_logs.py --approaches parse_events,msgspec   # needs msgspec installed

``msgspec`` is the alternative measured for issue 8 and not adopted (see
:func:`msgspec_frame` and bench/README-logs.md); it is not a dependency.

Events are generated once (deterministic, ~2% plain-text traceback lines, the
rest JSON of the API's request-log shape) and pickled to a temporary file; each
approach then runs in its own subprocess that loads them, resets the peak-RSS
mark (``/proc/self/clear_refs`` = 5), runs the parse ``--repeat`` times and
reports the best wall time and ``VmHWM - VmRSS(before)``: the extra peak
resident memory, which sees Arrow's allocations too (tracemalloc does not).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

PATHS = [
    "/api/v1/properties",
    "/api/v1/properties/{id}",
    "/api/v1/properties/{id}/photos",
    "/api/v1/photos/upload",
    "/api/v1/auth/login/otp",
    "/api/v1/auth/verify",
    "/api/v1/messages",
    "/api/v1/tenants/{id}/leases",
    "/health",
]
METHODS = ["GET"] * 6 + ["POST"] * 3 + ["PUT", "PATCH", "DELETE"]
STATUSES = [200] * 40 + [201] * 4 + [204] * 2 + [301, 400, 401, 403, 404, 404, 409, 422, 429, 500, 502, 503]
EVENTS = {
    200: "request_completed",
    201: "request_completed",
    204: "request_completed",
}
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/propflow/api/routes/photos.py", line 142, in upload_photo\n'
    "    await storage.put_object(key, body)\n"
    '  File "/app/propflow/storage/s3.py", line 61, in put_object\n'
    '    raise UploadError(f"S3 put_object failed for {key}") from exc\n'
    "propflow.storage.errors.UploadError: S3 put_object failed for photos/{n}.jpg"
)


def generate(n: int, seed: int = 7, plain_share: float = 0.02) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    streams = [f"ecs/propflow-api/{uuid.UUID(int=rnd.getrandbits(128)).hex}" for _ in range(4)]
    t0 = 1_732_600_000_000
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = t0 + i * 3 + rnd.randint(0, 2)
        if rnd.random() < plain_share:
            msg = TRACEBACK.replace("{n}", str(i))
        else:
            status = rnd.choice(STATUSES)
            method = rnd.choice(METHODS)
            path = rnd.choice(PATHS).replace("{id}", str(rnd.randint(1, 250_000)))
            rec: dict[str, Any] = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + f".{ts % 1000:03d}Z",
                "level": "ERROR" if status >= 500 else ("WARNING" if status >= 400 else "INFO"),
                "logger": "propflow.api.access",
                "event": EVENTS.get(status, "request_failed" if status >= 500 else "request_rejected"),
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": round(rnd.lognormvariate(4.0, 0.8), 2),
                "request_id": str(uuid.UUID(int=rnd.getrandbits(128))),
                "message": f"{method} {path} -> {status}",
            }
            if status >= 500:
                rec.update(
                    provider=rnd.choice(["s3", "postgres", "twilio"]),
                    error_code=rnd.choice(["AccessDenied", "TooManyConnections", "20003"]),
                    error_type=rnd.choice(["ClientError", "OperationalError", "TwilioRestException"]),
                )
            if rnd.random() < 0.1:
                rec["client_id"] = f"c-{rnd.randint(1, 5000)}"
            msg = json.dumps(rec)
        out.append(
            {
                "timestamp": ts,
                "message": msg,
                "logStreamName": streams[i % len(streams)],
                "ingestionTime": ts + 400,
                "eventId": f"{ts}{i:012d}",
            }
        )
    return out


def to_dialect(events: list[dict[str, Any]], dialect: str) -> list[dict[str, Any]]:
    """The same events written in another dialect (issue 15): ``python-json`` (python-json-logger names,
    the request nested under ``http``, ``duration`` in seconds) or ``text`` (gunicorn access lines with the
    response time in seconds for 2xx-4xx, Python logging lines with the request for 5xx)."""
    if dialect == "propflow":
        return events
    out = []
    for e in events:
        m = e["message"]
        if m.startswith("{"):
            r = json.loads(m)
            if dialect == "python-json":
                d: dict[str, Any] = {
                    "asctime": r["ts"],
                    "levelname": r["level"],
                    "name": r["logger"],
                    "message": r["message"],
                    "http": {"method": r["method"], "url": r["path"], "status_code": r["status"]},
                    "duration": round(r["latency_ms"] / 1000, 6),
                    "correlation_id": r["request_id"],
                }
                if "error_type" in r:
                    d["error"] = {"type": r["error_type"], "code": r["error_code"]}
                m = json.dumps(d)
            elif r["status"] < 500:
                m = (
                    f'10.0.1.7 - - [26/Nov/2024:05:46:40 +0000] "{r["method"]} {r["path"]} HTTP/1.1" '
                    f'{r["status"]} 512 "-" "okhttp/4.12.0" {r["latency_ms"] / 1000:.6f}'
                )
            else:
                m = (
                    f"{r['ts'][:10]} {r['ts'][11:19]},{r['ts'][20:23]} ERROR [{r['logger']}] {r['method']} "
                    f"{r['path']} {r['status']} {r['latency_ms']}ms - {r['message']} ({r['error_type']})"
                )
        out.append({**e, "message": m})
    return out


def plain(events: list[dict[str, Any]]) -> Any:
    import pandas as pd

    rows = []
    for e in events:
        m = e["message"]
        try:
            d = json.loads(m)
        except ValueError:
            d = {"message": m}
        d["timestamp"] = e["timestamp"]
        d["stream"] = e["logStreamName"]
        rows.append(d)
    df = pd.DataFrame(rows)
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    return df


def fast(events: list[dict[str, Any]]) -> Any:
    from propflow_ops.sources.logparse import parse_events

    return parse_events(events)


def msgspec_frame(events: list[dict[str, Any]], chunk: int = 2048) -> Any:
    """The msgspec alternative that was measured and not adopted (bench/README-logs.md).

    Messages are joined ``chunk`` at a time into one JSON array that
    ``msgspec.json.Decoder(list[Rec])`` decodes in one call (unknown fields
    skipped, non-JSON lines replaced by ``{}`` and their text put back into
    ``message``); each field becomes a Python list (``map(attrgetter)``), then an
    Arrow array; the frame has ``parse_events``' columns and dtypes. Only for the
    happy path: no fallback for wrong types or bad lines. Needs msgspec installed
    (it is not a dependency).
    """
    from itertools import compress, count, repeat
    from operator import attrgetter, itemgetter, not_
    from types import GenericAlias

    import msgspec
    import numpy as np
    import pyarrow as pa

    from propflow_ops.sources.logparse import COLUMNS, JSON_SCHEMA, _types_mapper

    python_type = {pa.int64(): int, pa.float64(): float}
    Rec = msgspec.defstruct(  # noqa: N806 - a class
        "Rec", [(f.name, python_type.get(f.type, str) | None, None) for f in JSON_SCHEMA], gc=False
    )
    fields = list(Rec.__struct_fields__)
    getters = [attrgetter(f) for f in fields]
    types = [JSON_SCHEMA.field(f).type for f in fields]
    msg_pos = fields.index("message")
    dec = msgspec.json.Decoder(GenericAlias(list, (Rec,)))  # list[Rec]
    get_message = itemgetter("message")
    parts: list[list[Any]] = [[] for _ in fields]
    for start in range(0, len(events), chunk):
        msgs = list(map(get_message, events[start : start + chunk]))
        raw = list(compress(count(), map(not_, map(str.startswith, msgs, repeat("{")))))
        lines = msgs
        if raw:
            lines = msgs.copy()
            for i in raw:
                lines[i] = "{}"
        recs = dec.decode("[" + ",".join(lines) + "]")
        cols = [list(map(g, recs)) for g in getters]
        del recs
        for i in raw:
            cols[msg_pos][i] = msgs[i]
        for part, col, typ in zip(parts, cols, types, strict=True):
            part.append(pa.array(col, type=typ))
    columns = {f: pa.chunked_array(part, type=typ) for f, part, typ in zip(fields, parts, types, strict=True)}
    ts = np.fromiter(map(itemgetter("timestamp"), events), dtype=np.int64, count=len(events))
    columns["timestamp"] = pa.chunked_array([pa.array(ts * 1_000_000, type=pa.timestamp("ns", tz="UTC"))])
    streams = pa.array(list(map(itemgetter("logStreamName"), events)), type=pa.large_string())
    columns["stream"] = pa.chunked_array([streams])
    table = pa.table({name: columns[name] for name in COLUMNS})
    return table.to_pandas(types_mapper=_types_mapper, split_blocks=True)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _cpu() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(approach: str, path: str, repeat: int) -> None:
    with open(path, "rb") as fh:
        events = pickle.load(fh)
    fn = {"plain": plain, "parse_events": fast, "msgspec": msgspec_frame}[approach]
    if approach != "plain":  # import cost is not parse cost
        import propflow_ops.sources.logparse  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    rss0 = _status_kb("VmRSS")
    best = best_cpu = float("inf")
    rows = 0
    for _ in range(repeat):
        c = _cpu()
        t = time.perf_counter()
        df = fn(events)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, _cpu() - c)
        rows = len(df)
        del df
        gc.collect()
    hwm = _status_kb("VmHWM")
    print(
        json.dumps(
            {
                "approach": approach,
                "seconds": best,
                "cpu_s": best_cpu,
                "rows": rows,
                "extra_peak_kb": hwm - rss0,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--approaches", default="plain,parse_events")
    ap.add_argument(
        "--dialect",
        default="propflow",
        choices=("propflow", "python-json", "text"),
        help="write the events in this dialect (issue 15); default the API's own JSON",
    )
    ap.add_argument("--child", nargs=2, metavar=("APPROACH", "PICKLE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return

    t = time.perf_counter()
    events = to_dialect(generate(args.events), args.dialect)
    raw_bytes = sum(len(e["message"].encode()) for e in events)
    plain_lines = sum(1 for e in events if not e["message"].startswith("{"))
    print(
        f"generated {len(events):,} events in {time.perf_counter() - t:.1f}s: "
        f"{raw_bytes / 1e6:.1f} MB of messages ({raw_bytes / len(events):.0f} B/event), "
        f"{plain_lines:,} plain-text lines; dialect {args.dialect}; {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
        pickle.dump(events, fh, protocol=pickle.HIGHEST_PROTOCOL)
        path = fh.name
    del events
    results = []
    try:
        for approach in args.approaches.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--repeat", str(args.repeat), "--child", approach, path],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.unlink(path)

    base = next((r for r in results if r["approach"] == "plain"), None)
    print()
    print(
        f"{'approach':<14} {'wall s':>7} {'events/s':>11} {'speedup':>8} {'CPU s':>7} {'events/CPU-s':>13}"
        f" {'extra peak MB':>14} {'x raw':>6}"
    )
    for r in results:
        eps = r["rows"] / r["seconds"]
        speed = f"{base['seconds'] / r['seconds']:.1f}x" if base else "-"
        mb = r["extra_peak_kb"] * 1024 / 1e6
        print(
            f"{r['approach']:<14} {r['seconds']:>7.2f} {eps:>11,.0f} {speed:>8} {r['cpu_s']:>7.2f}"
            f" {r['rows'] / r['cpu_s']:>13,.0f} {mb:>14.0f} {r['extra_peak_kb'] * 1024 / raw_bytes:>6.2f}"
        )
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    print(
        f"\nraw message bytes: {raw_bytes / 1e6:.1f} MB; best of {args.repeat} run(s) each;"
        f" load average at the end: {' '.join(load)}"
    )


if __name__ == "__main__":
    main()
