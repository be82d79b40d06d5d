"""Remediation steps of the migration runbook: ``migration-downgrade`` (one revision) and ``migration-upgrade``.

Each is planned with the SQL it would run (``alembic ... --sql``, produced
offline into a buffer, nothing sent to the database) shown for review, and runs
online through Alembic's command API only when ``apply`` names it.
"""

from __future__ import annotations

from typing import Any

from propflow_ops.change import protect, verify
from propflow_ops.remediation import Step, plan_commands, shell_line
from propflow_ops.sources import alembic as src
from propflow_ops.sources.alembic import AlembicState


def _blocker(state: AlembicState) -> str:
    if not state.configured:
        return "PROPFLOW_ALEMBIC_CONFIG is not set"
    if state.script_error:
        return f"the migration scripts cannot be read ({state.script_error})"
    if state.db_error:
        return f"the database revision cannot be read ({state.db_error})"
    if state.unknown:
        return (
            f"the database is at {', '.join(state.unknown)}, a revision no script knows: Alembic cannot "
            "move from there (deploy the build that has it, or stamp after checking the schema)"
        )
    return ""


def _alembic(state: AlembicState, *args: str) -> list[str]:
    return ["alembic", "-c", state.config_path or "alembic.ini", *args]


def _preview(state: AlembicState, direction: str, revision_range: str, blocked: str) -> str:
    if blocked or not state.config_path:
        return ""
    out = src.offline_sql(state.config_path, direction, revision_range)
    if out.error:
        return f"-- could not render the offline SQL of {direction} {revision_range}: {out.error}"
    return f"-- alembic {direction} {revision_range} --sql\n{out.sql}"


def _resource(state: AlembicState) -> str:
    """The migration head of one database: the lock is on the database the ini's URL names."""
    from propflow_ops.urls import url_host

    try:
        url = src.database_url(None)
    except Exception:  # noqa: BLE001 - no URL: lock on the configuration instead
        url = ""
    where = url_host(url) or state.config_path or "alembic.ini"
    name = url.rsplit("/", 1)[-1].split("?", 1)[0] if url else ""
    return f"alembic:{where}/{name}" if name else f"alembic:{where}"


def _snapshot(db_instance: str, step: str) -> Any:
    return lambda opts, incident: protect.rds_snapshot(
        db_instance, step, incident, no_snapshot=opts.no_snapshot
    )


def _protection(db_instance: str) -> str:
    if db_instance:
        return f"a snapshot of RDS {db_instance} (create-db-snapshot), waited for until available"
    return (
        "no snapshot possible: the database is not on RDS (db_instance empty); applying requires --no-snapshot "
        "(take a pg_dump first)"
    )


def _undo(state: AlembicState, direction: str, revision: str, db_instance: str) -> Any:
    def undo(result: Any, before: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
        out = {
            "detail": f"{direction} back to {revision or 'base'}"
            + (f"; or restore snapshot {kept['snapshot']} of {db_instance}" if kept.get("snapshot") else ""),
            "command": shell_line(_alembic(state, direction, revision or "base")),
        }
        if kept.get("snapshot"):
            out["snapshot"] = kept["snapshot"]
        out["step"] = "migration-upgrade" if direction == "upgrade" else "migration-downgrade"
        if direction == "upgrade":
            out["apply"] = (
                "propflow-ops run migration --apply migration-upgrade --reason TEXT  (upgrades to head)"
            )
        return out

    return undo


def migration_downgrade(state: AlembicState, db_instance: str = "") -> Step:
    """``alembic downgrade -1``: undo the database's current revision (the document's "Rollback migration")."""
    blocked = _blocker(state)
    current = state.current[0] if len(state.current) == 1 else ""
    target = ""
    if not blocked:
        if not state.current:
            blocked = "the database has no revision applied: nothing to downgrade"
        elif len(state.current) > 1:
            blocked = (
                f"the database is at several revisions ({', '.join(state.current)}): downgrade one explicitly"
            )
        else:
            previous = state.previous(current)
            if len(previous) > 1:
                blocked = f"{current} is a merge of {', '.join(previous)}: choose the branch to downgrade to"
            target = previous[0] if previous else "base"
    what = (
        f"Undo migration {current} on the database (to {target})."
        if current and target
        else "Undo the database's current migration (one revision)."
    )

    def execute() -> dict[str, Any]:
        after = src.run_command(state.config_path, "downgrade", target)
        return {"revision_before": current, "revision_after": ", ".join(after) or "base"}

    command, argv = plan_commands((_alembic(state, "downgrade", "-1"), f"= {target}" if target else ""))
    return Step(
        name="migration-downgrade",
        what=what,
        command=command,
        argv=argv,
        execute=execute,
        risk="Runs the revision's downgrade(): drops what it created (tables and their data). Take a snapshot "
        "of the database first (RPO 5 min) and read the SQL below.",
        preview=_preview(state, "downgrade", f"{current}:{target}", blocked),
        precondition=blocked,
        resource=_resource(state),
        protection=_protection(db_instance),
        protect=_snapshot(db_instance, "migration-downgrade"),
        verify=lambda result, before: verify.alembic_at(
            target if target != "base" else "", state.config_path
        ),
        undo=_undo(state, "upgrade", current, db_instance),
        refused_while=("MIGRATION_OBJECT_EXISTS",),
    )


def migration_upgrade(state: AlembicState, db_instance: str = "") -> Step:
    """``alembic upgrade head``: apply every pending migration (the document's "Re-run migrations")."""
    blocked = _blocker(state)
    if not blocked and len(state.heads) > 1:
        blocked = (
            f"the scripts have {len(state.heads)} heads ({', '.join(state.heads)}): `upgrade head` refuses; "
            "add a merge migration (alembic merge heads) and deploy it first"
        )
    if not blocked and len(state.current) > 1:
        blocked = f"the database is at several revisions ({', '.join(state.current)})"
    start = state.current[0] if state.current else ""
    what = (
        f"Apply the pending migrations {', '.join(state.pending)} (to head)."
        if state.pending
        else "Apply pending migrations up to head (none pending now: a no-op)."
    )

    def execute() -> dict[str, Any]:
        after = src.run_command(state.config_path, "upgrade", "head")
        return {"revision_before": start or "base", "revision_after": ", ".join(after)}

    preview = ""
    if not blocked:
        preview = (
            _preview(state, "upgrade", f"{start}:head" if start else "head", blocked)
            if state.pending
            else "-- nothing to run: the database is at head"
        )
    command, argv = plan_commands((_alembic(state, "upgrade", "head"), ""))
    return Step(
        name="migration-upgrade",
        what=what,
        command=command,
        argv=argv,
        execute=execute,
        risk="Runs DDL on the production database; a failure half way leaves what a non-transactional "
        "statement did. Read the SQL below; fix the script first if the logs showed 'already exists'.",
        preview=preview,
        precondition=blocked,
        resource=_resource(state),
        protection=_protection(db_instance),
        protect=_snapshot(db_instance, "migration-upgrade"),
        verify=lambda result, before: verify.alembic_at(
            state.heads[0] if len(state.heads) == 1 else "?", state.config_path
        ),
        undo=_undo(state, "downgrade", start, db_instance),
    )
