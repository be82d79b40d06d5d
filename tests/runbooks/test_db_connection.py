"""db-connection end to end: each finding code in its scenario, healthy, read-only default, applied step, nbval."""

from __future__ import annotations

import pytest
from runs import healthy_run, nbval, propflow_ops

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["db-connection"].path
CODES = (
    "RDS_NOT_AVAILABLE",
    "DB_UNREACHABLE",
    "DB_POOL_EXHAUSTED",
    "DB_IDLE_IN_TRANSACTION",
    "DB_LONG_RUNNING_QUERY",
    "DB_URL_MISMATCH",
    "DB_RPO_AT_RISK",
)


def test_healthy_reports_no_fail_and_changes_nothing(world, sandbox_env, tmp_path):
    run, _, _ = healthy_run(world, sandbox_env, "db-connection", output_dir=tmp_path, ok=CODES)
    f = run.findings()
    assert f["DB_POOL_EXHAUSTED"]["data"]["max_connections"] > 0
    assert f["DB_POOL_EXHAUSTED"]["data"]["used_pct"] < 90
    assert f["DB_URL_MISMATCH"]["data"]["task_host"] == f["DB_URL_MISMATCH"]["data"]["rds_endpoint"]
    assert run.actions()["reboot-db-failover"]["mode"] == "planned"
    assert run.actions()["reboot-db-failover"]["command"] == (
        "aws rds reboot-db-instance --db-instance-identifier propflow-db --force-failover"
    )


def test_database_down(world, sandbox_env, tmp_path):
    world("db-down")
    run = propflow_ops(sandbox_env, "run", "db-connection", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.status_of("RDS_NOT_AVAILABLE") == "fail"
    assert "storage-full" in run.findings()["RDS_NOT_AVAILABLE"]["title"]
    assert run.status_of("DB_UNREACHABLE") == "fail"
    assert run.status_of("DB_CONNECTION_REFUSED") == "fail"
    # the session checks could not run: error, never ok
    assert run.status_of("DB_IDLE_IN_TRANSACTION") == "error"
    assert run.status_of("DB_LONG_RUNNING_QUERY") == "error"


def test_pool_exhausted(world, sandbox_env, tmp_path):
    world("db-pool-exhausted")
    run = propflow_ops(sandbox_env, "run", "db-connection", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    data = run.findings()["DB_POOL_EXHAUSTED"]
    assert data["status"] == "fail"
    assert data["data"]["used_pct"] >= 90 and data["data"]["pool_error_lines"] > 0
    assert run.status_of("DB_UNREACHABLE") == "ok"


# PostgreSQL cannot fake time: the sessions are seconds old, so the thresholds are lowered (CONTRACT allows it).
@pytest.mark.parametrize(
    ("scenario", "code", "param"),
    [
        ("db-idle-in-transaction", "DB_IDLE_IN_TRANSACTION", "idle_in_transaction_s"),
        ("db-long-query", "DB_LONG_RUNNING_QUERY", "long_query_s"),
    ],
)
def test_sessions(world, sandbox_env, tmp_path, scenario, code, param):
    world(scenario)
    run = propflow_ops(sandbox_env, "run", "db-connection", "-p", param, "1", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.fails() == {code}
    rows = run.findings()[code]["data"]["sessions" if code == "DB_IDLE_IN_TRANSACTION" else "queries"]
    assert [r["application_name"] for r in rows] == ["propflow-api"]


def test_url_mismatch_shows_hosts_only(world, sandbox_env, tmp_path):
    world("db-url-mismatch")
    run = propflow_ops(sandbox_env, "run", "db-connection", output_dir=tmp_path)
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.fails() == {"DB_URL_MISMATCH"}
    data = run.findings()["DB_URL_MISMATCH"]["data"]
    assert data["task_host"].startswith("propflow-db-old.") and data["task_definition"] == "propflow-api:4"
    text = "".join(p.read_text(errors="replace") for p in run.folder.iterdir() if p.is_file())
    assert "canary-dbpw" not in text


def test_backups_off_and_applied_reboot(world, sandbox_env, tmp_path):
    sb = world("db-backups-off")
    run = propflow_ops(
        sandbox_env,
        "run",
        "db-connection",
        "--reason",
        "test",
        "--apply",
        "reboot-db-failover",
        output_dir=tmp_path,
    )
    assert run.code == 1, run.proc.stderr[-2000:]
    assert run.fails() == {"DB_RPO_AT_RISK"}
    assert run.findings()["DB_RPO_AT_RISK"]["data"]["backup_retention_days"] == 0
    action = run.actions()["reboot-db-failover"]
    assert action["mode"] == "executed", action
    assert "force_failover=True" in action["detail"]
    assert sb.snapshot()["rds"]["propflow-db"]["status"] == "available"


def test_notebook_runs_under_nbval(world, sandbox_env, tmp_path):
    world()
    proc = nbval(NOTEBOOK, sandbox_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
