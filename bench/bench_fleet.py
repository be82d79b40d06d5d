"""bench_fleet: from a CloudWatch alarm published to SNS to the triage evidence in the S3 store.

Starts the sandbox (scenario api-oom: triage recommends api-down, which the api-5xx rule runs too) in this
process and worker processes on its queue (moto SNS -> SQS, S3 store), then measures:

- latency: time from ``sns.publish`` of one ALARM to a *complete* triage folder (SHA256SUMS present) in the
  store, with 1 and with 3 workers (warm: the workers' kernels are started before the first alarm);
- throughput: a burst of ``--burst`` alarm notifications (half as many distinct alarms, each notified twice, as
  CloudWatch re-notifies) across ``--burst-workers`` workers: time until the queue is drained, runbooks per
  minute, and the check that each incident has exactly one evidence folder per runbook.

    .venv/bin/python bench/bench_fleet.py                       # latency with 1 and 3 workers, burst 20 / 3
    .venv/bin/python bench/bench_fleet.py --burst 6 --burst-workers 2 --repeats 1

The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,3", help="worker counts for the latency (default 1,3)")
    ap.add_argument("--repeats", type=int, default=2, help="alarms per latency measurement (default 2)")
    ap.add_argument("--burst", type=int, default=20, help="alarm notifications in the burst (default 20)")
    ap.add_argument("--burst-workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=1, help="runbooks at once per worker (default 1)")
    args = ap.parse_args()

    from propflow_ops import store
    from propflow_ops.alarms import Alarm, alarm_json, incident_id_for
    from propflow_ops.findings import utcnow
    from propflow_ops.sandbox import Sandbox
    from propflow_ops.sandbox import fleet as fleet_mod

    print(f"load average at the start: {loadavg()}; {os.cpu_count()} CPUs", flush=True)
    sandbox = Sandbox(("api-oom",))
    sandbox.start()
    logs = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        s3, sqs = sandbox.aws.client("s3"), sandbox.aws.client("sqs")

        def start(n: int, prefix: str) -> list[subprocess.Popen[bytes]]:
            env = {
                **sandbox.environ(),
                "PROPFLOW_OUTPUT_DIR": f"{sandbox.fleet.output_dir}/{prefix}",
                "PYTHONPATH": str(ROOT),
            }
            return [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "propflow_ops.cli",
                        "worker",
                        "--wait",
                        "1",
                        "--concurrency",
                        str(args.concurrency),
                        "--escalate-every",
                        "600",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(logs / f"{prefix}-{i}.log", "wb"),
                )
                for i in range(n)
            ]

        def warm(prefix: str, n: int, timeout: float = 120) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ready = sum(b"polling" in p.read_bytes() for p in logs.glob(f"{prefix}-*.log"))
                if ready >= n:
                    time.sleep(4)  # the kernel pool starts its warm kernels after the worker is up
                    return
                time.sleep(0.5)
            raise SystemExit(f"workers of {prefix} did not start; see {logs}")

        def depth() -> int:
            a = sqs.get_queue_attributes(
                QueueUrl=sandbox.fleet.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

        def triage_done(url: store.S3Url, incident: str) -> bool:
            return any(r.complete and r.name.endswith("-triage") for r in store.list_runs(url, incident, s3))

        # ---- latency
        for n in [int(x) for x in args.workers.split(",") if x]:
            prefix = f"lat{n}"
            url = store.parse_s3(f"{sandbox.fleet.output_dir}/{prefix}")
            procs = start(n, prefix)
            try:
                warm(prefix, n)
                times = []
                for r in range(args.repeats):
                    name = f"propflow-api-5xx-lat{n}-{r}"
                    at = utcnow().replace(microsecond=0)
                    t0 = time.monotonic()
                    sandbox.aws.client("sns").publish(
                        TopicArn=sandbox.fleet.topic_arn, Message=alarm_json(name, "ALARM", at)
                    )
                    incident = incident_id_for(Alarm(name, "ALARM", at))
                    while not triage_done(url, incident):
                        time.sleep(0.2)
                    times.append(time.monotonic() - t0)
                    while depth():  # let the rest of the incident (api-down) finish before the next alarm
                        time.sleep(0.5)
                print(
                    f"latency alarm -> triage evidence in the store, {n} worker(s): "
                    + ", ".join(f"{t:.1f}" for t in times)
                    + f" s (median {statistics.median(times):.1f} s); "
                    f"load {loadavg()}",
                    flush=True,
                )
            finally:
                fleet_mod.stop_workers(procs)

        # ---- throughput
        prefix = "burst"
        url = store.parse_s3(f"{sandbox.fleet.output_dir}/{prefix}")
        procs = start(args.burst_workers, prefix)
        try:
            warm(prefix, args.burst_workers)
            at = utcnow().replace(microsecond=0)
            names = [f"propflow-api-5xx-burst-{i}" for i in range((args.burst + 1) // 2)]
            t0 = time.monotonic()
            for i in range(args.burst):
                sandbox.aws.client("sns").publish(
                    TopicArn=sandbox.fleet.topic_arn, Message=alarm_json(names[i % len(names)], "ALARM", at)
                )
            time.sleep(1)
            while depth():
                time.sleep(0.5)
            wall = time.monotonic() - t0
        finally:
            fleet_mod.stop_workers(procs)
        incidents = [i for i in store.list_incidents(url, s3) if not i.startswith("_")]
        folders = {i: store.list_runs(url, i, s3) for i in incidents}
        total = sum(len(f) for f in folders.values())
        duplicates = {
            i: [r.name for r in f]
            for i, f in folders.items()
            if len({r.name.split("-", 1)[1] for r in f}) != len(f)
        }
        print(
            f"burst: {args.burst} alarm notifications ({len(names)} alarms) across {args.burst_workers} worker(s) "
            f"x {args.concurrency}: drained in {wall:.1f} s; {len(incidents)} incidents, {total} evidence folders "
            f"({total / wall * 60:.1f} runbooks/min, {args.burst / wall * 60:.1f} alarms/min); "
            f"one folder per runbook per incident: {'yes' if not duplicates else duplicates}; load {loadavg()}",
            flush=True,
        )
    finally:
        sandbox.stop()
    print(f"load average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
