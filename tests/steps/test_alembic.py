"""steps.alembic: plans with offline SQL, preconditions, and the online upgrade/downgrade."""

from __future__ import annotations

import pytest

from propflow_ops.sandbox.backend.models import HEAD_REVISION
from propflow_ops.sources import alembic as A
from propflow_ops.steps import alembic as steps

PARENT = "4a5b6c7d8e95"


@pytest.fixture
def env(monkeypatch, sandbox_env):
    for name in ("PROPFLOW_ALEMBIC_CONFIG", "PROPFLOW_DATABASE_URL"):
        monkeypatch.setenv(name, sandbox_env[name])
    return sandbox_env


def test_downgrade_plan_previews_sql_and_executes_one_revision(world, env, sandbox):
    world()
    step = steps.migration_downgrade(A.read_state())
    assert step.precondition == ""
    assert "downgrade -1" in step.command and f"= {PARENT}" in step.command
    assert f"alembic downgrade {HEAD_REVISION}:{PARENT} --sql" in step.preview
    assert "DROP TABLE notifications" in step.preview
    assert sandbox.pg.alembic_revision() == [HEAD_REVISION]  # planning ran nothing
    assert step.execute() == {"revision_before": HEAD_REVISION, "revision_after": PARENT}
    assert sandbox.pg.alembic_revision() == [PARENT]


def test_upgrade_plan_and_execute(world, env, sandbox):
    world("migration-pending")
    step = steps.migration_upgrade(A.read_state())
    assert step.precondition == ""
    assert "CREATE TABLE notifications" in step.preview
    assert sandbox.pg.alembic_revision() == [PARENT]
    assert step.execute() == {"revision_before": PARENT, "revision_after": HEAD_REVISION}
    assert sandbox.pg.alembic_revision() == [HEAD_REVISION]
    again = steps.migration_upgrade(A.read_state())
    assert again.preview == "-- nothing to run: the database is at head"


def test_preconditions(world, env):
    world("migration-multiple-heads")
    assert "merge heads" in steps.migration_upgrade(A.read_state()).precondition
    assert steps.migration_downgrade(A.read_state()).precondition == ""
    world("migration-unknown-revision")
    state = A.read_state()
    assert "no script knows" in steps.migration_upgrade(state).precondition
    assert "no script knows" in steps.migration_downgrade(state).precondition
    unconfigured = A.read_state("")
    assert steps.migration_upgrade(unconfigured).precondition == "PROPFLOW_ALEMBIC_CONFIG is not set"
    assert steps.migration_downgrade(unconfigured).preview == ""
