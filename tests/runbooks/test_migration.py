"""migration end to end: each finding code in its scenario, healthy, read-only default, the applied steps."""

from __future__ import annotations

import nbformat
from runs import healthy_run, nbval, propflow_ops, watched

from propflow_ops.runbooks import RUNBOOKS
from propflow_ops.sandbox.backend.models import HEAD_REVISION

NOTEBOOK = RUNBOOKS["migration"].path
PARENT = "4a5b6c7d8e95"
CODES = (
    "MIGRATION_PENDING",
    "MIGRATION_MULTIPLE_HEADS",
    "MIGRATION_UNKNOWN_REVISION",
    "MIGRATION_OBJECT_EXISTS",
    "SCHEMA_DRIFT",
)
MODELS = ("-p", "models", "models:metadata")


def _report_text(run) -> str:
    nb = nbformat.read(str(run.folder / "report.ipynb"), as_version=4)
    return "\n".join(
        str(o.get("text") or o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def _without(snapshot, *keys):
    return {k: v for k, v in snapshot.items() if k not in keys}


def test_healthy_reports_no_fail_changes_nothing_and_previews_sql(world, sandbox_env, tmp_path):
    run, _, after = healthy_run(world, sandbox_env, "migration", *MODELS, output_dir=tmp_path, ok=CODES)
    assert after["database"]["alembic_revision"] == [HEAD_REVISION]
    actions = run.actions()
    assert actions["migration-downgrade"]["mode"] == "planned"
    assert actions["migration-upgrade"]["mode"] == "planned"
    assert "downgrade -1" in actions["migration-downgrade"]["command"]
    text = _report_text(run)
    assert f"alembic downgrade {HEAD_REVISION}:{PARENT} --sql" in text
    assert "DROP TABLE notifications" in text
    assert "nothing to run: the database is at head" in text


def test_downgrade_applied_moves_exactly_one_revision(world, sandbox_env, tmp_path):
    sb = world()
    run, before, after = watched(
        sb,
        sandbox_env,
        "migration",
        "--reason",
        "test",
        "--apply",
        "migration-downgrade",
        output_dir=tmp_path,
    )
    action = run.actions()["migration-downgrade"]
    assert action["mode"] == "executed", action
    assert f"revision_after={PARENT}" in action["detail"]
    # (the snapshot's row counts cannot read a dropped table: read the revision directly)
    assert sb.pg.alembic_revision() == [PARENT]
    assert _without(after, "database") == _without(before, "database")
    assert run.actions()["migration-upgrade"]["mode"] == "planned"


def test_pending_then_upgrade_applied(world, sandbox_env, tmp_path):
    sb = world("migration-pending")
    read = propflow_ops(sandbox_env, "run", "migration", output_dir=tmp_path / "read")
    pending = read.findings()["MIGRATION_PENDING"]
    assert pending["status"] == "fail"
    assert pending["data"] == {"current": [PARENT], "heads": [HEAD_REVISION], "pending": [HEAD_REVISION]}
    # the backend's alembic.ini names its models, so drift is checked by default: the pending revision's
    # table is missing from the database
    assert read.fails() == {"MIGRATION_PENDING", "SCHEMA_DRIFT"}
    assert "CREATE TABLE notifications" in _report_text(read)
    assert sb.pg.alembic_revision() == [PARENT]
    run, before, after = watched(
        sb,
        sandbox_env,
        "migration",
        "--reason",
        "test",
        "--apply",
        "migration-upgrade",
        output_dir=tmp_path / "apply",
    )
    assert run.actions()["migration-upgrade"]["mode"] == "executed", run.actions()
    assert run.actions()["migration-downgrade"]["mode"] == "planned"
    assert sb.pg.alembic_revision() == [HEAD_REVISION]
    assert _without(after, "database") == _without(before, "database")


def test_multiple_heads(world, sandbox_env, tmp_path):
    run, before, after = watched(
        world("migration-multiple-heads"),
        sandbox_env,
        "migration",
        "--reason",
        "test",
        "--apply",
        "migration-upgrade",
        output_dir=tmp_path,
    )
    heads = run.findings()["MIGRATION_MULTIPLE_HEADS"]
    assert heads["status"] == "fail"
    assert sorted(heads["data"]["heads"]) == sorted([HEAD_REVISION, "7c8d9e0fab17"])
    upgrade = run.actions()["migration-upgrade"]
    assert upgrade["mode"] == "failed" and "merge heads" in upgrade["detail"]  # refused, nothing run
    assert after == before


def test_unknown_revision(world, sandbox_env, tmp_path):
    world("migration-unknown-revision")
    run = propflow_ops(sandbox_env, "run", "migration", output_dir=tmp_path)
    unknown = run.findings()["MIGRATION_UNKNOWN_REVISION"]
    assert unknown["status"] == "fail"
    assert unknown["data"]["unknown"] == ["e4f5a6b7c8d9"]
    assert run.status_of("MIGRATION_PENDING") == "skipped"
    assert run.fails() == {"MIGRATION_UNKNOWN_REVISION"}


def test_object_exists_names_the_object(world, sandbox_env, tmp_path):
    world("migration-object-exists")
    run = propflow_ops(sandbox_env, "run", "migration", output_dir=tmp_path)
    exists = run.findings()["MIGRATION_OBJECT_EXISTS"]
    assert exists["status"] == "fail"
    assert exists["data"]["objects"] == [{"kind": "relation", "object": "notifications", "count": 1}]
    assert "notifications" in exists["title"]
    assert run.status_of("MIGRATION_PENDING") == "fail"
    assert run.fails() == {"MIGRATION_OBJECT_EXISTS", "MIGRATION_PENDING"}


def test_schema_drift(world, sandbox_env, tmp_path):
    world("schema-drift")
    run = propflow_ops(sandbox_env, "run", "migration", *MODELS, output_dir=tmp_path)
    drift = run.findings()["SCHEMA_DRIFT"]
    assert drift["status"] == "fail"
    changes = {(d["change"], d["table"], d["name"]) for d in drift["data"]["diffs"]}
    assert changes == {("add_column", "units", "rent_cents"), ("remove_column", "properties", "legacy_code")}
    assert run.fails() == {"SCHEMA_DRIFT"}


def test_notebook_runs_under_nbval(world, sandbox_env):
    world()
    proc = nbval(NOTEBOOK, sandbox_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
