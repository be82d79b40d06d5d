"""sources.alembic against the sandbox's PostgreSQL and its working copy of the sample backend."""

from __future__ import annotations

import pytest

from propflow_ops.sandbox.backend.models import HEAD_REVISION
from propflow_ops.sources import alembic as A

PARENT = "4a5b6c7d8e95"


@pytest.fixture
def env(monkeypatch, sandbox_env):
    for name in ("PROPFLOW_ALEMBIC_CONFIG", "PROPFLOW_DATABASE_URL"):
        monkeypatch.setenv(name, sandbox_env[name])
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return sandbox_env


def test_not_configured(monkeypatch):
    monkeypatch.delenv("PROPFLOW_ALEMBIC_CONFIG", raising=False)
    assert A.config_path() == ""
    state = A.read_state()
    assert not state.configured and state.heads == []
    assert A.schema_drift().skipped == "PROPFLOW_ALEMBIC_CONFIG is not set"


def test_state_at_head(world, env):
    world()
    state = A.read_state()
    assert state.heads == [HEAD_REVISION] and state.current == [HEAD_REVISION]
    assert state.pending == [] and state.unknown == [] and state.at_head
    assert list(state.history["revision"])[:2] == [HEAD_REVISION, PARENT]
    assert state.history["applied"].all()
    assert state.previous(HEAD_REVISION) == [PARENT]
    assert list(state.history["down_revision"])[-1] == "(base)"


def test_state_pending_and_unknown(world, env):
    world("migration-pending")
    state = A.read_state()
    assert (state.current, state.pending) == ([PARENT], [HEAD_REVISION])
    assert not state.history.set_index("revision").loc[HEAD_REVISION, "applied"]
    world("migration-unknown-revision")
    state = A.read_state()
    assert state.unknown == ["e4f5a6b7c8d9"] and state.pending == []


def test_state_multiple_heads(world, env):
    world("migration-multiple-heads")
    state = A.read_state()
    assert sorted(state.heads) == sorted([HEAD_REVISION, "7c8d9e0fab17"])
    assert state.pending == ["7c8d9e0fab17"]
    assert state.history.set_index("revision").loc[PARENT, "is_branch_point"]


def test_database_unreachable_is_an_error_without_the_url(world, env, monkeypatch):
    world()
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", "postgresql://propflow:canary-pw@127.0.0.1:1/propflow")
    state = A.read_state()
    assert state.db_error and "canary-pw" not in state.db_error
    assert state.db_unreachable
    drift = A.schema_drift()  # no models named, but the dead database is what it reports
    assert drift.error and drift.unreachable and drift.skipped is None
    assert state.heads == [HEAD_REVISION]  # the scripts are still read


def test_offline_sql_changes_nothing(world, env, sandbox):
    world()
    down = A.offline_sql(env["PROPFLOW_ALEMBIC_CONFIG"], "downgrade", f"{HEAD_REVISION}:{PARENT}")
    assert down.error is None
    assert "DROP TABLE notifications" in down.sql
    assert f"UPDATE alembic_version SET version_num='{PARENT}'" in down.sql
    bad = A.offline_sql(env["PROPFLOW_ALEMBIC_CONFIG"], "upgrade", "nosuchrev:head")
    assert bad.error
    assert sandbox.pg.alembic_revision() == [HEAD_REVISION]


def test_schema_drift(world, env):
    world()
    default = A.schema_drift()  # the sandbox backend's alembic.ini names its models (propflow_models)
    assert default.skipped is None and default.error is None and default.diffs.empty
    assert A.schema_drift(models="models:metadata").diffs.empty
    assert A.schema_drift(models="models:nosuch").error.startswith("could not import models:nosuch")
    world("schema-drift")
    drift = A.schema_drift(models="models:Base")  # a declarative Base gives its metadata
    assert drift.error is None
    assert set(zip(drift.diffs["change"], drift.diffs["table"], drift.diffs["name"], strict=True)) == {
        ("add_column", "units", "rent_cents"),
        ("remove_column", "properties", "legacy_code"),
    }


def test_models_named_by_the_ini(tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = migrations\npropflow_models = app.models:metadata\n")
    assert A.models_from_config(str(ini)) == "app.models:metadata"
    ini.write_text("[alembic]\nscript_location = migrations\n")
    assert A.models_from_config(str(ini)) == ""
