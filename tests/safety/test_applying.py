"""6. Applying: a step runs only when apply names it; a step that fails is recorded as failed with the
error, and the runbook still reaches its summary."""

from __future__ import annotations

import pytest

from .conftest import _run_with_proxy
from .harness import present_slugs

SLUGS = present_slugs()
# The only mutating AWS calls each step may make (S3 deletions are REST: DELETE, or POST ?delete).
STEP_CALLS = {
    "force-new-deployment": {"ecs:UpdateService"},
    "rollback": {"ecs:UpdateService"},
    "scale-service": {"ecs:UpdateService"},
    "reboot-db-failover": {"rds:RebootDBInstance"},
    "create-read-replica": {"rds:CreateDBInstanceReadReplica"},
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
        run = _run_with_proxy("apply", slug, dict(sandbox.env), sandbox.aws.endpoint, tmp_path, "--apply", applied)
        after = sandbox.pg.alembic_revision()
    finally:
        sandbox.use()
    assert run.folder is not None, run.explain()
    actions = {a["step"]: a for a in run.evidence.get("actions", [])}
    assert actions[applied]["mode"] == "executed", f"{run.label}: {actions[applied]}"
    assert actions[other]["mode"] == "planned", f"{run.label}: {other} ran without being named: {actions[other]}"
    mutating = {str(c) for c in run.calls if not c.read_only}
    assert mutating <= STEP_CALLS.get(applied, set()), f"{run.label}: calls beyond {applied}: {mutating}"
    if applied in STEP_CALLS:
        assert mutating, f"{run.label}: {applied} reported executed but made no call"
    if slug == "migration":
        assert before != after, f"migration-upgrade reported executed, revision still {after}"
    assert run.evidence["status"] != "error", run.explain()


@pytest.mark.slow
@pytest.mark.xdist_group("safety-dead")
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
    assert run.evidence["status"] != "error", f"the runbook did not reach its summary: {run.evidence.get('error')}"
    assert run.evidence["findings"], "no findings table"
    assert run.code in (1, 3), run.explain()
    assert run.findings().get("AWS_UNREACHABLE", {}).get("status") == "fail", run.explain()
