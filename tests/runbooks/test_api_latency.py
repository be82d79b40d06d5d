"""api-latency end to end: each finding code in its scenario, healthy, read-only default, applied steps, nbval."""

from __future__ import annotations

from runs import healthy_run, nbval, propflow_ops, watched

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["api-latency"].path
CODES = ("API_LATENCY_HIGH", "DB_SLOW_QUERIES", "RDS_CPU_HIGH", "ECS_CPU_HIGH", "DB_MISSING_INDEX")


def test_healthy_reports_no_fail_and_changes_nothing(world, sandbox_env, tmp_path):
    run, _, after = healthy_run(world, sandbox_env, "api-latency", output_dir=tmp_path, ok=CODES)
    assert run.findings()["API_LATENCY_HIGH"]["data"]["worst_p95_ms"] < 500
    actions = run.actions()
    assert actions["scale-service"]["mode"] == "planned"
    assert actions["scale-service"]["command"].endswith("--desired-count 4")
    assert actions["create-read-replica"]["mode"] == "planned"
    assert list(after["rds"]) == ["propflow-db"] and after["ecs"]["desired"] == 2


def test_latency_high(world, sandbox_env, tmp_path):
    world("api-latency-high")
    run = propflow_ops(sandbox_env, "run", "api-latency", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    for code in CODES:
        assert run.status_of(code) == "fail", (code, run.findings().get(code))
    f = run.findings()
    assert f["API_LATENCY_HIGH"]["data"]["source"] == "logs"  # moto has no percentile statistics
    assert f["API_LATENCY_HIGH"]["data"]["worst_p95_ms"] > 1000
    assert f["DB_MISSING_INDEX"]["data"]["tables"][0]["table"] == "maintenance_requests"
    assert (
        "ON maintenance_requests (property_id)"
        in f["DB_MISSING_INDEX"]["data"]["suggested"]["maintenance_requests"]
    )
    assert f["RDS_CPU_HIGH"]["data"]["max"] > 80 and f["ECS_CPU_HIGH"]["data"]["max"] > 80


def test_applied_steps_change_exactly_what_they_say(world, sandbox_env, tmp_path):
    run, before, after = watched(
        world(),
        sandbox_env,
        "api-latency",
        "--reason",
        "test",
        "--apply",
        "scale-service",
        "--apply",
        "create-read-replica",
        "-p",
        "scale_to",
        "3",
        output_dir=tmp_path,
    )
    assert run.code == 0, run.proc.stderr[-2000:]
    assert run.actions()["scale-service"]["mode"] == "executed"
    assert run.actions()["create-read-replica"]["mode"] == "executed"
    assert after["ecs"]["desired"] == 3
    assert after["ecs"]["task_definition"] == before["ecs"]["task_definition"]
    assert sorted(after["rds"]) == ["propflow-db", "propflow-db-read"]
    assert {k: v for k, v in after.items() if k not in ("ecs", "rds")} == {
        k: v for k, v in before.items() if k not in ("ecs", "rds")
    }


def test_notebook_runs_under_nbval(world, sandbox_env, tmp_path):
    world()
    proc = nbval(NOTEBOOK, sandbox_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
