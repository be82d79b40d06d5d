"""websocket end to end: each finding code in its scenario, healthy, read-only default, the applied step."""

from __future__ import annotations

from runs import healthy_run, nbval, propflow_ops, watched

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["websocket"].path
CODES = (
    "REDIS_NOT_AVAILABLE",
    "REDIS_UNREACHABLE",
    "REDIS_MEMORY_PRESSURE",
    "REDIS_CLIENTS_EXHAUSTED",
    "WS_HANDSHAKE_FAILING",
    "WS_RECONNECT_SPIKE",
)


def test_healthy_reports_no_fail_and_changes_nothing(world, sandbox_env, tmp_path):
    run, before, after = healthy_run(world, sandbox_env, "websocket", output_dir=tmp_path, ok=CODES)
    assert run.actions()["force-new-deployment"]["mode"] == "planned"
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
    assert 4 * 1024 * 1024 <= mem["data"]["maxmemory"] <= 5 * 1024 * 1024  # 4 MB filled, a little headroom
    assert run.status_of("REDIS_CLIENTS_EXHAUSTED") == "ok"


def test_ws_handshake_failing(world, sandbox_env, tmp_path):
    world("ws-handshake-failing")
    run = propflow_ops(sandbox_env, "run", "websocket", output_dir=tmp_path)
    hs = run.findings()["WS_HANDSHAKE_FAILING"]
    assert hs["status"] == "fail"
    assert hs["data"]["status"] == 503
    assert run.status_of("REDIS_UNREACHABLE") == "ok"


def test_reconnect_storm_and_applied_deployment(world, sandbox_env, tmp_path):
    run, before_all, after_all = watched(
        world("ws-reconnect-storm"),
        sandbox_env,
        "websocket",
        "--reason",
        "test",
        "--apply",
        "force-new-deployment",
        output_dir=tmp_path,
    )
    before, after = before_all["ecs"], after_all["ecs"]
    assert run.status_of("WS_RECONNECT_SPIKE") == "fail"
    assert run.findings()["WS_RECONNECT_SPIKE"]["data"]["peak_5min_avg_per_minute"] >= 20
    assert run.status_of("WS_HANDSHAKE_FAILING") == "ok"
    assert run.actions()["force-new-deployment"]["mode"] == "executed"
    assert after["task_definition"] == before["task_definition"]
    assert after["desired"] == before["desired"]
    assert (
        len(after["deployments"]) > len(before["deployments"])
        or after["deployments"] != before["deployments"]
    )


def test_notebook_runs_under_nbval(world, sandbox_env):
    world()
    proc = nbval(NOTEBOOK, sandbox_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
