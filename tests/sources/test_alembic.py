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
    assert state.value is None and state.error is None and state.target == ""  # not configured
    drift = A.schema_drift()
    assert drift.value is None and drift.error is None and drift.target == ""


def _read():
    """read_state's scripts and database revision, both read."""
    fetched = A.read_state()
    assert fetched.error is None and fetched.value is not None, fetched
    assert fetched.value.database.ok, fetched.value.database
    return fetched.value, fetched.value.database.value


def test_state_at_head(world, env):
    world()
    fetched = A.read_state()
    assert fetched.target == env["PROPFLOW_ALEMBIC_CONFIG"]
    state, db = _read()
    assert state.heads == [HEAD_REVISION] and db.current == [HEAD_REVISION]
    assert db.pending == [] and db.unknown == [] and db.at_head
    assert list(state.history["revision"])[:2] == [HEAD_REVISION, PARENT]
    assert state.history["applied"].all()
    assert state.previous(HEAD_REVISION) == [PARENT]
    assert list(state.history["down_revision"])[-1] == "(base)"


def test_state_pending_and_unknown(world, env):
    world("migration-pending")
    state, db = _read()
    assert (db.current, db.pending) == ([PARENT], [HEAD_REVISION])
    assert not state.history.set_index("revision").loc[HEAD_REVISION, "applied"]
    world("migration-unknown-revision")
    state, db = _read()
    assert db.unknown == ["e4f5a6b7c8d9"] and db.pending == []
    assert state.history["applied"].isna().all()  # from an unknown revision nothing can be said


def test_state_multiple_heads(world, env):
    world("migration-multiple-heads")
    state, db = _read()
    assert sorted(state.heads) == sorted([HEAD_REVISION, "7c8d9e0fab17"])
    assert db.pending == ["7c8d9e0fab17"]
    assert state.history.set_index("revision").loc[PARENT, "is_branch_point"]


def test_database_unreachable_is_an_error_without_the_url(world, env, monkeypatch):
    world()
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", "postgresql://propflow:canary-pw@127.0.0.1:1/propflow")
    fetched = A.read_state()
    assert fetched.error is None and fetched.value is not None
    db = fetched.value.database
    assert db.value is None and db.error is not None and "canary-pw" not in str(db.error)
    assert db.error.unreachable is True and db.target == "alembic_version@127.0.0.1"
    drift = A.schema_drift()  # the dead database is what it reports (whether or not models are named)
    assert drift.error is not None and drift.error.unreachable is True and "canary-pw" not in str(drift.error)
    assert fetched.value.heads == [HEAD_REVISION]  # the scripts are still read
    assert fetched.value.history["applied"].isna().all()


def test_unreadable_scripts_are_the_error(tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = nowhere\n")
    state = A.read_state(str(ini))
    assert state.value is None and state.error is not None and state.target == str(ini)
    assert str(state.error).startswith("CommandError: ")
    assert state.error.unreachable is False


def test_offline_sql_changes_nothing(world, env, sandbox):
    world()
    down = A.offline_sql(env["PROPFLOW_ALEMBIC_CONFIG"], "downgrade", f"{HEAD_REVISION}:{PARENT}")
    assert down.error is None and down.target == f"alembic downgrade {HEAD_REVISION}:{PARENT} --sql"
    assert "DROP TABLE notifications" in down.value
    assert f"UPDATE alembic_version SET version_num='{PARENT}'" in down.value
    bad = A.offline_sql(env["PROPFLOW_ALEMBIC_CONFIG"], "upgrade", "nosuchrev:head")
    assert bad.value is None and bad.error is not None
    assert sandbox.pg.alembic_revision() == [HEAD_REVISION]


def test_schema_drift(world, env, monkeypatch):
    world()
    with monkeypatch.context() as m:
        m.setattr(A, "models_from_config", lambda path: "")
        unnamed = A.schema_drift()  # the database answered, no models named: nothing compared
        assert unnamed.value is None and unnamed.error is None
        assert unnamed.target == env["PROPFLOW_ALEMBIC_CONFIG"]
    default = A.schema_drift()  # the sandbox backend's alembic.ini names its models (propflow_models)
    assert default.error is None and default.value is not None and default.value.diffs.empty
    assert default.target == env["PROPFLOW_ALEMBIC_CONFIG"]
    assert A.schema_drift(models="models:metadata").value.diffs.empty
    nosuch = A.schema_drift(models="models:nosuch").error
    assert str(nosuch).startswith("could not import models:nosuch") and nosuch.unreachable is False
    world("schema-drift")
    fetched = A.schema_drift(models="models:Base")  # a declarative Base gives its metadata
    assert fetched.error is None and fetched.value.models == "models:Base"
    drift = fetched.value
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
