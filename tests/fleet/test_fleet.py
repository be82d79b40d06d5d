"""A fleet, not a process (issue 18 part 4), in the sandbox with SNS/SQS/S3 in moto and workers as processes.

The burst is sized for this shared 2-core machine: PROPFLOW_FLEET_TEST_ALARMS alarms (default 6: 3 alarms,
each notified twice) across PROPFLOW_FLEET_TEST_WORKERS workers (default 2); the issue's 20 across 3 runs in
bench/bench_fleet.py. Every queue here has a short visibility timeout (6 s), shorter than a runbook: without
the worker's visibility heartbeat a message would be handed to a second worker mid-run and run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest

from propflow_ops import store
from propflow_ops.findings import utcnow
from propflow_ops.sources import aws

from .helpers import (
    fleet_config,
    fleet_env,
    make_queue,
    per_runbook,
    publish_to,
    queue_depth,
    runs,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.slow
ALARMS = int(os.environ.get("PROPFLOW_FLEET_TEST_ALARMS", "6"))
WORKERS = int(os.environ.get("PROPFLOW_FLEET_TEST_WORKERS", "2"))


@pytest.fixture
def fleet(world, tmp_path, monkeypatch):
    sandbox = world("api-oom")
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield sandbox, fleet_config(sandbox, tmp_path)
    aws.clear_cache()


def stop(proc: subprocess.Popen[str], timeout: float = 240) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def test_a_burst_across_workers_gives_one_folder_per_runbook_per_incident(fleet, tmp_path):
    sandbox, config = fleet
    topic, queue, dlq = make_queue(sandbox, "burst", visibility_s=6, max_receives=5)
    env = fleet_env(sandbox, config, "burst")
    at = utcnow().replace(microsecond=0) - timedelta(minutes=2)
    names = [f"propflow-api-5xx-{n}" for n in range((ALARMS + 1) // 2)]
    for i in range(ALARMS):  # each alarm twice: CloudWatch re-notifies, SNS delivers at least once
        publish_to(sandbox, topic, names[i % len(names)], "ALARM", at + timedelta(seconds=i))
    workers = [start_worker(env, "--queue", queue, log=tmp_path / f"w{n}.log") for n in range(WORKERS)]
    try:
        wait_for(lambda: queue_depth(sandbox, queue) == 0, 600, "the queue to drain", step=2)
    finally:
        codes = [stop(w) for w in workers]
    logs = "\n".join((tmp_path / f"w{n}.log").read_text() for n in range(WORKERS))
    assert codes == [0] * WORKERS, logs
    found = runs(sandbox, "burst")
    assert len(found) == len(names), found
    for inc, folders in found.items():
        counts = per_runbook(folders)
        assert counts.get("triage") == 1 and counts.get("api-down") == 1, (inc, counts, logs)
        assert set(counts.values()) == {1}, (inc, counts)
        assert all(f.complete for f in folders)
    assert queue_depth(sandbox, dlq) == 0
    assert len({line.split(":")[0] for line in logs.splitlines() if "-> s3://" in line}) >= 1
    handled = [
        int(line.rsplit("after ", 1)[1].split()[0]) for line in logs.splitlines() if "stopped after" in line
    ]
    assert sum(handled) == ALARMS


def test_a_killed_workers_message_is_finished_by_another(fleet, tmp_path):
    sandbox, config = fleet
    topic, queue, dlq = make_queue(sandbox, "kill", visibility_s=6, max_receives=5)
    env = fleet_env(sandbox, config, "kill")
    at = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    publish_to(sandbox, topic, "propflow-api-5xx-killed", "ALARM", at)
    victim = start_worker(env, "--queue", queue, log=tmp_path / "victim.log", new_session=True)
    url = store.parse_s3(env["PROPFLOW_OUTPUT_DIR"])
    blobs = store.Blobs(url, sandbox.aws.client("s3"))
    wait_for(
        lambda: [k for k in blobs.keys("_claims/") if k.endswith("/triage.json")], 120, "triage to start"
    )
    os.killpg(victim.pid, signal.SIGKILL)  # the task dies with its kernels (an ECS task killed, a host lost)
    victim.wait(timeout=30)
    assert not runs(sandbox, "kill") or all(
        not f.name.endswith("-triage") for fs in runs(sandbox, "kill").values() for f in fs
    )
    heir = start_worker(env, "--queue", queue, log=tmp_path / "heir.log")
    try:
        wait_for(lambda: queue_depth(sandbox, queue) == 0, 300, "the message to be finished", step=2)
    finally:
        assert stop(heir) == 0
    log = (tmp_path / "heir.log").read_text()
    assert "taking over the run of message" in log, log
    found = runs(sandbox, "kill")
    assert len(found) == 1
    counts = per_runbook(next(iter(found.values())))
    assert counts.get("triage") == 1 and counts.get("api-down") == 1 and set(counts.values()) == {1}, counts
    assert queue_depth(sandbox, dlq) == 0


def test_a_poisoned_message_ends_in_the_dlq_and_sigterm_stops_cleanly(fleet, tmp_path):
    sandbox, config = fleet
    topic, queue, dlq = make_queue(sandbox, "poison", visibility_s=6, max_receives=2)
    env = fleet_env(sandbox, config, "poison")
    sqs = sandbox.aws.client("sqs")
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    sandbox.aws.client("sns").publish(
        TopicArn=topic, Message='{"AlarmName": "x"}'
    )  # SNS-wrapped, not an alarm
    worker = start_worker(env, "--queue", queue, log=tmp_path / "w.log")
    try:
        wait_for(lambda: queue_depth(sandbox, dlq) == 2, 120, "both messages in the DLQ")
        assert queue_depth(sandbox, queue) == 0
        # then an alarm: SIGTERM while its runbooks run; the worker finishes them and exits 0
        publish_to(sandbox, topic, "propflow-api-5xx-term", "ALARM", utcnow().replace(microsecond=0))
        blobs = store.Blobs(store.parse_s3(env["PROPFLOW_OUTPUT_DIR"]), sandbox.aws.client("s3"))
        wait_for(
            lambda: [k for k in blobs.keys("_claims/") if k.endswith("/triage.json")],
            120,
            "triage to start",
            step=0.5,
        )
        worker.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert worker.wait(timeout=300) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    log = (tmp_path / "w.log").read_text()
    assert "SIGTERM: stopping after the runbooks in hand" in log and "not for us" in log
    found = runs(sandbox, "poison")
    counts = per_runbook(next(iter(found.values())))
    assert counts.get("triage") == 1 and all(f.complete for fs in found.values() for f in fs), (counts, log)
    assert queue_depth(sandbox, queue) == 0  # finished and deleted, not abandoned
    assert time.monotonic() - t0 < 300
