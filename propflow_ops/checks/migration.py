"""Checks of the migration runbook: Alembic's view of the scripts and the database, the logs, drift.

Pure: ``sources.alembic`` results and the log frame in, Findings out. Codes
(CONTRACT 6): ``MIGRATION_PENDING``, ``MIGRATION_MULTIPLE_HEADS``,
``MIGRATION_UNKNOWN_REVISION``, ``MIGRATION_OBJECT_EXISTS``, ``SCHEMA_DRIFT``.
"""

from __future__ import annotations

import re

import pandas as pd

from propflow_ops.checks.logs import matching
from propflow_ops.checks.logs import summary as log_summary
from propflow_ops.findings import Finding
from propflow_ops.reach import unreachable
from propflow_ops.records import AlembicState, DriftResult
from propflow_ops.results import takes_fetched

NOT_CONFIGURED = (
    "PROPFLOW_ALEMBIC_CONFIG is not set: point it at the backend's alembic.ini to check migrations"
)

#: What PostgreSQL (and MySQL/SQLite) say when a migration creates something that is already there.
_EXISTS = re.compile(
    r"(?P<kind>relation|table|column|index|constraint|type|schema|sequence|function|trigger|extension|view)"
    r"\s+[\"'`]?(?P<name>[\w.$]+)[\"'`]?"
    r"(?:\s+(?:of|for|on)\s+(?:relation|table)\s+[\"'`]?(?P<parent>[\w.$]+)[\"'`]?)?"
    r"\s+already exists",
    re.I,
)


def _gate(code: str, title: str, state: AlembicState, *, needs_db: bool = True) -> Finding | None:
    if not state.configured:
        return Finding.skipped(code, title, NOT_CONFIGURED)
    if state.script_error:
        return Finding.error(code, title, f"could not read the migration scripts: {state.script_error}")
    if needs_db and state.db_error and state.db_unreachable:
        return Finding.fail(code, "Database unreachable: its revision cannot be read", state.db_error)
    if needs_db and state.db_error:
        return Finding.error(code, title, f"could not read the database revision: {state.db_error}")
    return None


def pending(state: AlembicState) -> Finding:
    """MIGRATION_PENDING: ``fail`` when scripts exist that the database has not run (it is behind a head)."""
    code, title = "MIGRATION_PENDING", "Database revision vs. the scripts' head"
    gated = _gate(code, title, state)
    if gated:
        return gated
    data = {"current": state.current, "heads": state.heads, "pending": state.pending}
    if state.unknown:
        return Finding.skipped(
            code,
            title,
            "cannot tell what is pending: the database is at a revision the "
            "scripts do not know (see MIGRATION_UNKNOWN_REVISION)",
            **data,
        )
    if not state.version_table or not state.current:
        return Finding.fail(
            code,
            "Database has no migration applied",
            f"no alembic_version row: all {len(state.pending)} revisions are pending "
            "(a fresh database, or the wrong one).",
            **data,
        )
    if state.pending:
        return Finding.fail(
            code,
            f"{len(state.pending)} migration(s) pending",
            f"database at {', '.join(state.current)}; not yet applied: "
            f"{', '.join(state.pending)} (head {', '.join(state.heads)}). The deploy's "
            "migration step did not finish: see MIGRATION_OBJECT_EXISTS and the logs.",
            **data,
        )
    return Finding.ok(code, "Database at head", f"database at {', '.join(state.current)} = head", **data)


def multiple_heads(state: AlembicState) -> Finding:
    """MIGRATION_MULTIPLE_HEADS: ``fail`` when the scripts have more than one head (two branches)."""
    code, title = "MIGRATION_MULTIPLE_HEADS", "Heads of the migration scripts"
    gated = _gate(code, title, state, needs_db=False)
    if gated:
        return gated
    data = {"heads": state.heads}
    if len(state.heads) > 1:
        docs = dict(zip(state.history["revision"], state.history["doc"], strict=False))
        heads = "; ".join(f"{h} ({docs.get(h, '')})" for h in state.heads)
        return Finding.fail(
            code,
            f"{len(state.heads)} migration heads",
            f"{heads}. `alembic upgrade head` refuses to run. Two branches were merged in "
            "git without a merge migration: create one (`alembic merge heads -m ...`), "
            "review it, deploy.",
            **data,
        )
    if not state.heads:
        return Finding.fail(
            code, "No migration scripts found", f"no revisions under {state.config_path}", **data
        )
    return Finding.ok(code, "One migration head", state.heads[0], **data)


def unknown_revision(state: AlembicState) -> Finding:
    """MIGRATION_UNKNOWN_REVISION: ``fail`` when alembic_version names a revision no script has."""
    code, title = "MIGRATION_UNKNOWN_REVISION", "Database revision known to the scripts"
    gated = _gate(code, title, state)
    if gated:
        return gated
    data = {"current": state.current, "unknown": state.unknown}
    if state.unknown:
        return Finding.fail(
            code,
            f"Database at unknown revision {', '.join(state.unknown)}",
            "no migration script has this revision: the database was migrated by a newer (or "
            "abandoned) build than the one being deployed. Deploy the build that has the script, "
            "or, once the schema is verified, `alembic stamp` the right revision.",
            **data,
        )
    return Finding.ok(
        code,
        "Database revision known to the scripts",
        ", ".join(state.current) or "(no revision applied)",
        **data,
    )


@takes_fetched
def migration_lines(logs: pd.DataFrame | BaseException, limit: int = 30) -> pd.DataFrame:
    """The migration story in the logs (migration events and 'already exists' lines), newest last."""
    cols = ["timestamp", "level", "stream", "message"]
    if isinstance(logs, BaseException) or logs is None or len(logs) == 0:
        return pd.DataFrame(columns=cols)
    event = logs["event"].astype("object").fillna("") if "event" in logs else pd.Series("", index=logs.index)
    text = logs["message"].astype("object").fillna("").astype(str)
    picked = logs[
        (event == "migration")
        | text.str.contains("already exists|alembic|migration|running upgrade", case=False, regex=True)
    ]
    out = picked[[c for c in cols if c in picked]].tail(limit).reset_index(drop=True)
    return out.astype({c: object for c in ("level", "stream", "message") if c in out})


@takes_fetched
def objects_in_logs(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """The "already exists" lines with the object named: kind, object, count, first/last seen, example."""
    cols = ["kind", "object", "count", "first_seen", "last_seen", "example"]
    if isinstance(logs, BaseException) or logs is None:
        return pd.DataFrame(columns=cols)
    hits = matching(logs, "already exists") if len(logs) else logs
    rows = []
    for r in hits.itertuples():
        m = _EXISTS.search(str(r.message))
        kind = m.group("kind").lower() if m else "object"
        name = (
            (f"{m.group('parent')}.{m.group('name')}" if m and m.group("parent") else m.group("name"))
            if m
            else "?"
        )
        rows.append({"kind": kind, "object": name, "timestamp": r.timestamp, "example": str(r.message)[:200]})
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = (
        df.groupby(["kind", "object"], sort=False)
        .agg(
            count=("object", "size"),
            first_seen=("timestamp", "min"),
            last_seen=("timestamp", "max"),
            example=("example", "last"),
        )
        .reset_index()
        .astype({"example": object})
    )
    return out[cols].sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


@takes_fetched
def object_exists(logs: pd.DataFrame | BaseException) -> Finding:
    """MIGRATION_OBJECT_EXISTS: ``fail`` when the logs say a migration hit "already exists"."""
    code, title = "MIGRATION_OBJECT_EXISTS", "'already exists' errors in the logs"
    if isinstance(logs, BaseException) and unreachable(logs):
        return Finding.fail(
            code,
            "CloudWatch Logs unreachable: the migration logs cannot be read",
            f"{type(logs).__name__}: {str(logs).splitlines()[0] if str(logs) else ''}"[:300],
        )
    if isinstance(logs, BaseException):
        return Finding.error(code, title, logs)
    objects = objects_in_logs(logs)
    if len(objects):
        named = ", ".join(f"{r.kind} {r.object}" for r in objects.itertuples())
        return Finding.fail(
            code,
            f"Migration failed: {named} already exists",
            f"{int(objects['count'].sum())} 'already exists' lines, last at "
            f"{objects['last_seen'].max():%H:%M} UTC. The object was created outside this "
            "migration (by hand, or by a run that died before stamping its revision). "
            "Compare it with the migration; then either stamp the revision or make the "
            "migration idempotent (IF NOT EXISTS / a has_table check) and upgrade.",
            objects=objects[["kind", "object", "count"]].to_dict(orient="records"),
            logs=log_summary(logs),
        )
    return Finding.ok(
        code, "No 'already exists' errors in the logs", "0 lines in the window", logs=log_summary(logs)
    )


def schema_drift(drift: DriftResult) -> Finding:
    """SCHEMA_DRIFT: ``fail`` when the live schema differs from the backend's models."""
    code, title = "SCHEMA_DRIFT", "Live schema vs. the backend's models"
    if drift.skipped:
        return Finding.skipped(code, title, drift.skipped)
    if drift.error and drift.unreachable:
        return Finding.fail(code, "Database unreachable: the live schema cannot be read", drift.error)
    if drift.error:
        return Finding.error(code, title, drift.error)
    n = len(drift.diffs)
    data = {"models": drift.models, "differences": n, "diffs": drift.diffs.head(50).to_dict(orient="records")}
    if n:
        first = "; ".join(
            f"{r.change} {r.table}{'.' + r.name if r.name else ''}" for r in drift.diffs.head(6).itertuples()
        )
        return Finding.fail(
            code,
            f"Schema drift: {n} difference(s) from the models",
            f"{first}{' ...' if n > 6 else ''}. Someone changed the schema outside Alembic (or "
            "a migration is missing). Write a migration that brings them back in line; do not "
            "run autogenerate output unreviewed.",
            **data,
        )
    return Finding.ok(code, "Live schema matches the models", f"compared with {drift.models}", **data)
