"""``propflow-ops sandbox --workers N --alarm NAME``: the simulated world with its fleet; the alarm turns into
evidence in the S3 store and a notification, and SIGTERM stops the sandbox and its workers cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_sandbox_workers_turn_an_alarm_into_evidence_and_a_notification(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propflow_ops.cli",
            "sandbox",
            "--scenario",
            "api-oom",
            "--workers",
            "1",
            "--alarm",
            "propflow-api-5xx-high",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(": told " in x for x in lines) and proc.poll() is None:
            time.sleep(1)
        told = [x for x in lines if ": told " in x]
        assert told, "".join(lines)
        assert (
            "told sns, slack, pagerduty: evidence at s3://propflow-evidence/runs/ALARM-propflow-api-5xx-high-"
            in told[0]
        )
        assert any(
            "triage for ALARM-propflow-api-5xx-high-" in x and "-> s3://propflow-evidence/runs/" in x
            for x in lines
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=200) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    reader.join(timeout=10)
    assert any("stopped after 1 message(s)" in x for x in lines), "".join(lines)
