"""websocket end to end: each finding code in its scenario, healthy, read-only default, the applied step."""

from __future__ import annotations

import os
import subprocess
import sys

from runs import propflow_ops

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["websocket"].path
CODES = ("REDIS_NOT_AVAILABLE", "REDIS_UNREACHABLE", "REDIS_MEMORY_PRESSURE", "REDIS_CLIENTS_EXHAUSTED",
         "WS_HANDSHAKE_FAILING", "WS_RECONNECT_SPIKE")


def test_healthy_reports_no_fail_and_changes_nothing(world, sandbox_env, tmp_path):
    sb = world()
    before = sb.snapshot()
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    after = sb.snapshot()
    assert run.code == 0, run.proc.stderr[-2000:]
    for code in CODES:
        assert run.status_of(code) == "ok", (code, run.findings().get(code))
    assert run.actions()["force-new-deployment"]["mode"] == "planned"
    assert before == after
    assert after["redis"]["keys"] == before["redis"]["keys"] > 0
    assert "runbook-probe" not in (run.folder / "evidence.json").read_text().replace('"ws_token": "***"', "")


def test_redis_down(world, sandbox_env, tmp_path):
    world("redis-down")
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    assert run.code == 1
    assert run.status_of("REDIS_NOT_AVAILABLE") == "fail"
    assert run.status_of("REDIS_UNREACHABLE") == "fail"
    assert run.status_of("WS_RECONNECT_SPIKE") == "fail"
    assert run.status_of("REDIS_MEMORY_PRESSURE") == "error"  # cannot be read, and says so


def test_redis_maxclients(world, sandbox_env, tmp_path):
    world("redis-maxclients")
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    clients = run.findings()["REDIS_CLIENTS_EXHAUSTED"]
    assert clients["status"] == "fail"
    assert clients["data"].get("refused") or clients["data"]["used_pct"] >= 90
    assert run.status_of("REDIS_MEMORY_PRESSURE") in ("ok", "error")


def test_redis_memory_pressure(world, sandbox_env, tmp_path):
    world("redis-memory-pressure")
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    mem = run.findings()["REDIS_MEMORY_PRESSURE"]
    assert mem["status"] == "fail"
    assert mem["data"]["evicted_keys"] >= 50
    assert mem["data"]["maxmemory"] == 4 * 1024 * 1024
    assert run.status_of("REDIS_CLIENTS_EXHAUSTED") == "ok"


def test_ws_handshake_failing(world, sandbox_env, tmp_path):
    world("ws-handshake-failing")
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    hs = run.findings()["WS_HANDSHAKE_FAILING"]
    assert hs["status"] == "fail"
    assert hs["data"]["status"] == 503
    assert run.status_of("REDIS_UNREACHABLE") == "ok"


def test_reconnect_storm_and_applied_deployment(world, sandbox_env, tmp_path):
    sb = world("ws-reconnect-storm")
    before = sb.snapshot()["ecs"]
    run = propflow_ops(sandbox_env, "run", "websocket", "--apply", "force-new-deployment", output_dir=tmp_path)
    assert run.status_of("WS_RECONNECT_SPIKE") == "fail"
    assert run.findings()["WS_RECONNECT_SPIKE"]["data"]["peak_5min_avg_per_minute"] >= 20
    assert run.status_of("WS_HANDSHAKE_FAILING") == "ok"
    assert run.actions()["force-new-deployment"]["mode"] == "executed"
    after = sb.snapshot()["ecs"]
    assert after["task_definition"] == before["task_definition"]
    assert after["desired"] == before["desired"]
    assert len(after["deployments"]) > len(before["deployments"]) or after["deployments"] != before["deployments"]


def test_notebook_runs_under_nbval(world, sandbox_env):
    world()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                           str(NOTEBOOK)], capture_output=True, text=True, env={**os.environ, **sandbox_env},
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
