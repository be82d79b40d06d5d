"""The CLI prints exports and READY, serves the world, and on SIGTERM stops leaving nothing behind."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from propflow_ops.sandbox import SCENARIOS, Sandbox, UnknownScenarioError
from propflow_ops.sandbox.cli import sandbox_main


def _processes_under(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(path) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_unknown_scenario_rejected() -> None:
    with pytest.raises(UnknownScenarioError):
        Sandbox(["no-such-thing"])


def test_one_live_sandbox_per_process(sandbox: Sandbox) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        Sandbox().start()


def test_cli_list_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_main([], list_only=True) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == len(SCENARIOS)
    assert sandbox_main(["no-such-thing"], list_only=False) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-thing" in err


def _read_exports(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    env: dict[str, str] = {}
    for line in proc.stdout:
        if line.strip() == "READY":
            return env
        if line.startswith("unset "):  # inherited target variables the sandbox ignores
            continue
        assert line.startswith("export "), line
        name, _, value = line[len("export ") :].strip().partition("=")
        env[name] = shlex.split(value)[0]
    raise AssertionError(f"no READY line; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_cli_serves_until_sigterm_and_leaves_nothing() -> None:
    """In a subprocess (moto's state is process-global): start with held sessions, SIGTERM, all gone."""
    from .helpers import aws, basic, http, service

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propflow_ops.sandbox",
            "--scenario",
            "twilio-low-balance",
            "--scenario",
            "db-long-query",
            "--scenario",
            "redis-maxclients",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env = _read_exports(proc)
        assert env["PROPFLOW_SANDBOX"] == "1"
        status, body = http(
            "GET",
            f"{env['PROPFLOW_TWILIO_API_URL']}/2010-04-01/Accounts/{env['TWILIO_ACCOUNT_SID']}/Balance.json",
            headers=basic(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"]),
        )
        assert (status, body["balance"]) == (200, "3.17")
        # the process's own ECS scheduler: a forced deployment rolls out and completes within seconds
        ecs = aws(env, "ecs")
        first = ecs.update_service(cluster="propflow", service="propflow-api", forceNewDeployment=True)
        assert first["service"]["deployments"][0]["rolloutState"] == "IN_PROGRESS", first["service"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            svc = service(env)
            if [d["rolloutState"] for d in svc["deployments"]] == ["COMPLETED"]:
                break
            time.sleep(0.3)
        assert svc["deployments"][0]["id"] == first["service"]["deployments"][0]["id"], svc["deployments"]
        assert [d["rolloutState"] for d in svc["deployments"]] == ["COMPLETED"], svc["deployments"]
        assert (svc["runningCount"], svc["desiredCount"]) == (2, 2)
        sandbox_dir = Path(env["PROPFLOW_ALEMBIC_CONFIG"]).parent.parent
        assert sandbox_dir.is_dir()
        children = _processes_under(sandbox_dir)
        names = " ".join(p.name() for p in children)
        assert "postgres" in names and "redis" in names
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not sandbox_dir.exists()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    time.sleep(0)
