"""6. Applying: a step runs only when apply names it; a step that fails is recorded as failed with the
error, and the runbook still reaches its summary; a database step is snapshotted before it runs, under the
team-wide lock (change control, issue 17)."""

from __future__ import annotations

import pytest

from .conftest import _run_with_proxy
from .harness import present_slugs

SLUGS = present_slugs()
# The only mutating AWS calls each step may make (S3 deletions are REST: DELETE, or POST ?delete), besides
# taking and releasing its lock.
LOCK_CALLS = {"dynamodb:PutItem", "dynamodb:DeleteItem"}
STEP_CALLS = {
    "force-new-deployment": {"ecs:UpdateService"},
    "rollback": {"ecs:UpdateService"},
    "scale-service": {"ecs:UpdateService"},
    "reboot-db-failover": {"rds:CreateDBSnapshot", "rds:RebootDBInstance"},
    "create-read-replica": {"rds:CreateDBInstanceReadReplica"},
    "migration-upgrade": {"rds:CreateDBSnapshot"},  # the migration itself is SQL, not AWS
}
# runbook -> (world scenarios, the step to apply, the step that must stay planned)
GATING = {
    "api-down": ((), "force-new-deployment", "rollback"),
    "api-latency": ((), "scale-service", "create-read-replica"),
    "migration": (("migration-pending",), "migration-upgrade", "migration-downgrade"),
}


@pytest.mark.slow
@pytest.mark.parametrize("slug", [s for s in GATING if s in SLUGS] or ["none"])
def test_only_the_named_step_runs(sandbox, tmp_path, slug):
    if slug == "none":
        pytest.skip("no runbook with two steps exists yet")
    scenarios, applied, other = GATING[slug]
    sandbox.use(*scenarios)
    try:
        before = sandbox.pg.alembic_revision()
        run = _run_with_proxy(
            "apply",
            slug,
            dict(sandbox.env),
            sandbox.aws.endpoint,
            tmp_path,
            "--apply",
            applied,
            "--reason",
            "safety test",
            "--yes",
        )
        after = sandbox.pg.alembic_revision()
    finally:
        sandbox.use()
    assert run.folder is not None, run.explain()
    actions = {a["step"]: a for a in run.evidence.get("actions", [])}
    assert actions[applied]["mode"] == "executed", f"{run.label}: {actions[applied]}"
    assert actions[other]["mode"] == "planned", (
        f"{run.label}: {other} ran without being named: {actions[other]}"
    )
    mutating = {str(c) for c in run.calls if not c.read_only}
    allowed = STEP_CALLS.get(applied, set()) | LOCK_CALLS
    assert mutating <= allowed, f"{run.label}: calls beyond {applied}: {mutating}"
    if applied in STEP_CALLS:
        assert mutating - LOCK_CALLS, f"{run.label}: {applied} reported executed but made no call"
    assert LOCK_CALLS <= mutating, (
        f"{run.label}: {applied} ran without taking and releasing its lock: {mutating}"
    )
    if slug == "migration":
        assert before != after, f"migration-upgrade reported executed, revision still {after}"
    assert run.evidence["status"] != "error", run.explain()


@pytest.mark.slow
def test_a_failing_step_is_recorded_and_the_runbook_reaches_its_summary(dead_worlds):
    run = dead_worlds["throttled"].applied
    if run is None:
        pytest.skip("api-down does not exist yet")
    assert run.folder is not None, run.explain()
    actions = {a["step"]: a for a in run.evidence.get("actions", [])}
    step = actions["force-new-deployment"]
    assert step["mode"] == "failed", step
    assert "throttl" in step["detail"].lower(), step
    assert actions["rollback"]["mode"] == "planned"
    assert run.evidence["status"] != "error", (
        f"the runbook did not reach its summary: {run.evidence.get('error')}"
    )
    assert run.evidence["findings"], "no findings table"
    assert run.code in (1, 3), run.explain()
    assert run.findings().get("AWS_UNREACHABLE", {}).get("status") == "fail", run.explain()


@pytest.mark.slow
def test_a_database_step_is_snapshotted_first_under_its_lock(sandbox, tmp_path):
    """The AWS calls in the order they reached AWS: lock, snapshot, reboot, unlock; the snapshot exists."""
    if "db-connection" not in SLUGS:
        pytest.skip("db-connection does not exist yet")
    sandbox.use()
    run = _run_with_proxy(
        "apply",
        "db-connection",
        dict(sandbox.env),
        sandbox.aws.endpoint,
        tmp_path,
        "--apply",
        "reboot-db-failover",
        "--reason",
        "pool stuck, last resort",
        "--yes",
    )
    assert run.folder is not None, run.explain()
    step = {a["step"]: a for a in run.evidence.get("actions", [])}["reboot-db-failover"]
    assert step["mode"] == "executed" and step["confirmed"] == "--yes", step
    order = [str(c) for c in run.calls if not c.read_only]
    assert order == [
        "dynamodb:PutItem",
        "rds:CreateDBSnapshot",
        "rds:RebootDBInstance",
        "dynamodb:DeleteItem",
    ], order
    snap = step["protect"]["snapshot"]
    found = sandbox.aws.client("rds").describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"]
    assert found and found[0]["DBInstanceIdentifier"] == "propflow-db"
    assert step["verified"] is True and "propflow-db available" in step["verification"]["seen"], step
    assert (
        snap in step["undo"]["command"] and "restore-db-instance-from-db-snapshot" in step["undo"]["command"]
    )
