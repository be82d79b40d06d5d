"""Remediation steps of the migration runbook: ``migration-downgrade`` (one revision) and ``migration-upgrade``.

Each is planned with the SQL it would run (``alembic ... --sql``, produced
offline into a buffer, nothing sent to the database) shown for review, and runs
online through Alembic's command API only when ``apply`` names it. Both take
``sources.alembic.read_state``'s Fetched (its target is the alembic.ini).
"""

from __future__ import annotations

from typing import Any

from propflow_ops.change import protect, verify
from propflow_ops.remediation import Step, plan_commands, shell_line
from propflow_ops.results import Fetched
from propflow_ops.sources import alembic as src
from propflow_ops.sources.alembic import AlembicState, DbRevision


def _blocker(state: Fetched[AlembicState]) -> str:
    if state.error is not None:
        return f"the migration scripts cannot be read ({state.error})"
    if state.value is None:
        return "PROPFLOW_ALEMBIC_CONFIG is not set"
    db = state.value.database
    if db.value is None:
        return f"the database revision cannot be read ({db.error or 'not read'})"
    if db.value.unknown:
        return (
            f"the database is at {', '.join(db.value.unknown)}, a revision no script knows: Alembic cannot "
            "move from there (deploy the build that has it, or stamp after checking the schema)"
        )
    return ""


def _parts(state: Fetched[AlembicState]) -> tuple[AlembicState, DbRevision]:
    """The scripts and the database's revision, empty where they were not read (``_blocker`` says why)."""
    scripts = state.value or AlembicState()
    return scripts, scripts.database.value or DbRevision()


def _alembic(state: Fetched[AlembicState], *args: str) -> list[str]:
    return ["alembic", "-c", state.target or "alembic.ini", *args]


def _preview(state: Fetched[AlembicState], direction: str, revision_range: str, blocked: str) -> str:
    if blocked or not state.target:
        return ""
    out = src.offline_sql(state.target, direction, revision_range)
    if out.value is None:
        return f"-- could not render the offline SQL of {direction} {revision_range}: {out.error}"
    return f"-- {out.target}\n{out.value}"


def _resource(state: Fetched[AlembicState]) -> str:
    """The migration head of one database: the lock is on the database the ini's URL names."""
    from propflow_ops.urls import url_host

    try:
        url = src.database_url(None)
    except Exception:  # noqa: BLE001 - no URL: lock on the configuration instead
        url = ""
    where = url_host(url) or state.target or "alembic.ini"
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


def _undo(state: Fetched[AlembicState], direction: str, revision: str, db_instance: str) -> Any:
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


def migration_downgrade(state: Fetched[AlembicState], db_instance: str = "") -> Step:
    """``alembic downgrade -1``: undo the database's current revision (the document's "Rollback migration")."""
    blocked = _blocker(state)
    scripts, db = _parts(state)
    current = db.current[0] if len(db.current) == 1 else ""
    target = ""
    if not blocked:
        if not db.current:
            blocked = "the database has no revision applied: nothing to downgrade"
        elif len(db.current) > 1:
            blocked = (
                f"the database is at several revisions ({', '.join(db.current)}): downgrade one explicitly"
            )
        else:
            previous = scripts.previous(current)
            if len(previous) > 1:
                blocked = f"{current} is a merge of {', '.join(previous)}: choose the branch to downgrade to"
            target = previous[0] if previous else "base"
    what = (
        f"Undo migration {current} on the database (to {target})."
        if current and target
        else "Undo the database's current migration (one revision)."
    )

    def execute() -> dict[str, Any]:
        after = src.run_command(state.target, "downgrade", target)
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
        verify=lambda result, before: verify.alembic_at(target if target != "base" else "", state.target),
        undo=_undo(state, "upgrade", current, db_instance),
        refused_while=("MIGRATION_OBJECT_EXISTS",),
    )


def migration_upgrade(state: Fetched[AlembicState], db_instance: str = "") -> Step:
    """``alembic upgrade head``: apply every pending migration (the document's "Re-run migrations")."""
    blocked = _blocker(state)
    scripts, db = _parts(state)
    if not blocked and len(scripts.heads) > 1:
        blocked = (
            f"the scripts have {len(scripts.heads)} heads ({', '.join(scripts.heads)}): `upgrade head` refuses; "
            "add a merge migration (alembic merge heads) and deploy it first"
        )
    if not blocked and len(db.current) > 1:
        blocked = f"the database is at several revisions ({', '.join(db.current)})"
    start = db.current[0] if db.current else ""
    what = (
        f"Apply the pending migrations {', '.join(db.pending)} (to head)."
        if db.pending
        else "Apply pending migrations up to head (none pending now: a no-op)."
    )

    def execute() -> dict[str, Any]:
        after = src.run_command(state.target, "upgrade", "head")
        return {"revision_before": start or "base", "revision_after": ", ".join(after)}

    preview = ""
    if not blocked:
        preview = (
            _preview(state, "upgrade", f"{start}:head" if start else "head", blocked)
            if db.pending
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
            scripts.heads[0] if len(scripts.heads) == 1 else "?", state.target
        ),
        undo=_undo(state, "downgrade", start, db_instance),
    )
