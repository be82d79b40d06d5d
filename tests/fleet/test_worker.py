"""Alarm to runbook (issue 18 part 2) and submit (part 3): a CloudWatch alarm published to SNS reaches a worker
through SQS and becomes evidence in the S3 store and a notification; OK is noted; submit gets a run's answer."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from propflow_ops import incident_record as ir
from propflow_ops import store
from propflow_ops.findings import iso, utcnow
from propflow_ops.sources import aws

from .helpers import (
    evidence,
    fleet_config,
    fleet_env,
    publish_alarm,
    queue_depth,
    runs,
    start_worker,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(world, tmp_path, monkeypatch):
    sandbox = world("api-oom")
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield sandbox, fleet_config(sandbox, tmp_path)
    aws.clear_cache()


def test_an_alarm_becomes_evidence_a_notification_and_a_timeline(fleet, tmp_path):
    sandbox, config = fleet
    env = fleet_env(sandbox, config, "alarm")
    at = utcnow().replace(microsecond=0) - timedelta(minutes=16)  # a P0 at T+16: "notify on-call" is due
    publish_alarm(
        sandbox,
        "propflow-api-5xx-high",
        "ALARM",
        at,
        metric="HTTPCode_Target_5XX_Count",
        namespace="AWS/ApplicationELB",
        reason="Threshold Crossed: 1 datapoint [42.0] > 5",
    )
    # the same alarm again (CloudWatch re-notifies; SNS may deliver twice): it joins, and runs nothing twice
    publish_alarm(
        sandbox,
        "propflow-api-5xx-high",
        "ALARM",
        at + timedelta(seconds=60),
        metric="HTTPCode_Target_5XX_Count",
        namespace="AWS/ApplicationELB",
    )
    worker = start_worker(env, "--max-messages", "2", log=tmp_path / "worker.log")
    assert worker.wait(timeout=400) == 0, (tmp_path / "worker.log").read_text()
    found = runs(sandbox, "alarm")
    assert list(found) == [f"ALARM-propflow-api-5xx-high-{at.strftime('%Y%m%dT%H%M%SZ')}"], found
    inc, folders = next(iter(found.items()))
    slugs = sorted(f.name.split("-", 1)[1] for f in folders)
    assert slugs.count("triage") == 1 and slugs.count("api-down") == 1 and all(f.complete for f in folders)
    tri = evidence(sandbox, "alarm", inc, [f.name for f in folders if f.name.endswith("-triage")][0])
    assert tri["incident"]["started_at"] == iso(at)  # the alarm's time is the incident's start
    assert tri["incident"]["severity"] == "P0" and tri["run"]["mode"] == "fleet"
    for slug in tri.get("recommended_runbooks") or []:
        if slug != "post-incident":
            assert slug in slugs
    st = ir.load(ir.S3Store(store.parse_s3(env["PROPFLOW_OUTPUT_DIR"])), inc)
    assert st.exists and st.opened_via == "alarm propflow-api-5xx-high"
    alarm_notes = [n for n in st.notes if n.get("alarm") == "propflow-api-5xx-high"]
    assert len(alarm_notes) == 2 and alarm_notes[0]["state"] == "ALARM"
    sent = [e for e in st.events if e.get("event") == "notify" and e.get("action") == "evidence"]
    assert {e["channel"] for e in sent if e["status"] == "sent"} == {"sns", "slack", "pagerduty"}
    slack = [m["text"] for m in sandbox.notify.state.slack if "evidence ready" in m["text"]]
    assert len(slack) == 1 and f"Evidence: {env['PROPFLOW_OUTPUT_DIR']}/{inc}" in slack[0]
    assert "api-down: problems" in slack[0]
    # the worker runs the escalation timer: the step due at T+15 went out once per channel, from the store
    sent = [e for e in st.escalations if e.get("status") == "sent"]
    assert sorted(e["channel"] for e in sent) == ["pagerduty", "slack", "sns"], st.escalations
    assert all(e["action"] == sent[0]["action"] for e in sent)
    # OK: noted on the open incident's timeline, nothing run
    publish_alarm(sandbox, "propflow-api-5xx-high", "OK", at + timedelta(minutes=2))
    worker = start_worker(env, "--max-messages", "1", log=tmp_path / "worker2.log")
    assert worker.wait(timeout=120) == 0
    st = ir.load(ir.S3Store(store.parse_s3(env["PROPFLOW_OUTPUT_DIR"])), inc)
    assert [n["state"] for n in st.notes if n.get("alarm")] == ["ALARM", "ALARM", "OK"]
    assert len(runs(sandbox, "alarm")[inc]) == len(folders)
    assert queue_depth(sandbox, sandbox.fleet.queue_url) == 0


def test_submit_asks_the_fleet_and_prints_what_run_prints(fleet, tmp_path):
    sandbox, config = fleet
    env = fleet_env(sandbox, config, "submit")
    worker = start_worker(env, "--max-messages", "2", log=tmp_path / "worker.log")
    try:
        cmd = [
            sys.executable,
            "-m",
            "propflow_ops.cli",
            "submit",
            "api-down",
            "--incident",
            "INC-SUB-1",
            "--timeout",
            "300",
            "--no-html",
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=320)
        assert proc.returncode == 1, proc.stderr  # api-oom: problems, as `run` says
        lines = proc.stdout.strip().splitlines()
        assert lines[0].startswith("api-down: problems (") and any(
            " FAIL " in f" {x.strip()[:5]} " or x.strip().startswith("FAIL") for x in lines
        )
        assert lines[-1].startswith(f"{env['PROPFLOW_OUTPUT_DIR']}/INC-SUB-1/") and lines[-1].endswith(
            "-api-down"
        )
        url = store.parse_s3(lines[-1])
        assert store.exists(url / "SHA256SUMS", sandbox.aws.client("s3"))
        # bad input is the worker's one line and exit 2, as `run` would say it
        bad = subprocess.run(
            [*cmd[:5], "--window", "-5", "--incident", "INC-SUB-2", "--timeout", "120"],
            env=env,
            capture_output=True,
            text=True,
            timeout=140,
        )
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("propflow-ops: error: ")
        assert "window" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        worker.wait(timeout=120)
    # no worker: submit says so and exits 3 instead of waiting forever
    late = subprocess.run([*cmd[:5], "--timeout", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert late.returncode == 3 and "no worker answered request" in late.stderr
    sandbox.aws.client("sqs").purge_queue(QueueUrl=sandbox.fleet.queue_url)
