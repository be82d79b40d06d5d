"""api-down end to end: each finding code in its scenario, healthy, read-only default, applied rollback, nbval."""

from __future__ import annotations

from runs import healthy_run, nbval, propflow_ops, watched

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["api-down"].path
CODES = (
    "API_HEALTH_FAILING",
    "ECS_SERVICE_DEGRADED",
    "ECS_TASK_OOM",
    "ECS_MEMORY_HIGH",
    "ECS_DEPLOYMENT_FAILED",
    "LOG_ERROR_SPIKE",
    "DB_UNREACHABLE",
)


def test_healthy_reports_no_fail_and_changes_nothing(world, sandbox_env, tmp_path):
    run, _, after = healthy_run(world, sandbox_env, "api-down", output_dir=tmp_path, ok=CODES)
    assert run.evidence["status"] == "ok"
    assert run.findings()["ECS_SERVICE_DEGRADED"]["data"]["running"] == 2
    actions = run.actions()
    assert actions["force-new-deployment"]["mode"] == "planned"
    assert actions["force-new-deployment"]["command"] == (
        "aws ecs update-service --cluster propflow --service propflow-api --force-new-deployment"
    )
    assert actions["rollback"]["mode"] == "planned"
    assert actions["rollback"]["command"].endswith("--task-definition propflow-api:2")
    assert after["ecs"]["task_definition"].endswith("propflow-api:3") and after["ecs"]["desired"] == 2


def test_oom(world, sandbox_env, tmp_path):
    world("api-oom")
    run = propflow_ops(sandbox_env, "run", "api-down", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    for code in (
        "API_HEALTH_FAILING",
        "ECS_SERVICE_DEGRADED",
        "ECS_TASK_OOM",
        "ECS_MEMORY_HIGH",
        "LOG_ERROR_SPIKE",
    ):
        assert run.status_of(code) == "fail", (code, run.findings().get(code))
    f = run.findings()
    assert len(f["ECS_TASK_OOM"]["data"]["oom_tasks"]) == 2
    assert f["ECS_MEMORY_HIGH"]["data"]["max"] > 90
    assert f["API_HEALTH_FAILING"]["data"]["status"] == 503
    assert run.status_of("ECS_DEPLOYMENT_FAILED") == "ok"
    assert run.status_of("DB_UNREACHABLE") == "ok"


def test_bad_deploy_and_applied_rollback_moves_the_service_to_the_previous_revision(
    world, sandbox_env, tmp_path
):
    run, before_all, after_all = watched(
        world("api-bad-deploy"),
        sandbox_env,
        "api-down",
        "--reason",
        "test",
        "--apply",
        "rollback",
        output_dir=tmp_path,
    )
    before, after = before_all["ecs"], after_all["ecs"]
    assert before["task_definition"].endswith("propflow-api:4")
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.status_of("ECS_DEPLOYMENT_FAILED") == "fail"
    assert run.status_of("ECS_SERVICE_DEGRADED") == "fail"
    assert run.status_of("ECS_TASK_OOM") == "ok"  # exit 1, not 137
    actions = run.actions()
    assert actions["rollback"]["mode"] == "executed", actions["rollback"]
    assert actions["rollback"]["command"].endswith("--task-definition propflow-api:3")
    # the previous revision starts and runs (the sandbox converges as ECS would): verified, /health answers
    assert actions["rollback"]["verified"] is True, actions["rollback"]
    seen = actions["rollback"]["verification"]["seen"]
    assert "deployment COMPLETED, 2/2 tasks running on propflow-api:3, 1 deployment(s); /health 200" in seen
    assert actions["force-new-deployment"]["mode"] == "planned"
    # exactly what it says: the service is on the previous revision; nothing else about it changed
    assert after["task_definition"].endswith("propflow-api:3")
    assert after["deployments"] == [(after["deployments"][0][0], "COMPLETED")]  # one, the new one
    assert after["deployments"][0][0] not in dict(before["deployments"])
    assert (after["running"], after["desired"]) == (before["desired"], before["desired"])
    assert after["task_definitions"] == before["task_definitions"]


def test_database_down(world, sandbox_env, tmp_path):
    world("db-down")
    run = propflow_ops(sandbox_env, "run", "api-down", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.status_of("DB_UNREACHABLE") == "fail"
    assert run.status_of("API_HEALTH_FAILING") == "fail"
    assert run.status_of("LOG_ERROR_SPIKE") == "fail"
    assert "db-connection" in run.evidence["recommended_runbooks"]


def test_notebook_runs_under_nbval(world, sandbox_env, tmp_path):
    world()
    proc = nbval(NOTEBOOK, sandbox_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
