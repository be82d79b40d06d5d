"""Checks of the migration runbook: Alembic's view of the scripts and the database, the logs, drift.

Pure: ``sources.alembic`` results (each a :class:`~propflow_ops.results.Fetched`) and the log frame in,
Findings out. Codes
(CONTRACT 6): ``MIGRATION_PENDING``, ``MIGRATION_MULTIPLE_HEADS``,
``MIGRATION_UNKNOWN_REVISION``, ``MIGRATION_OBJECT_EXISTS``, ``SCHEMA_DRIFT``.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from propflow_ops.checks.logs import matching
from propflow_ops.checks.logs import summary as log_summary
from propflow_ops.findings import Finding
from propflow_ops.reach import unreachable
from propflow_ops.records import DRIFT_COLUMNS, HISTORY_COLUMNS, AlembicState, DbRevision, SchemaDrift
from propflow_ops.results import Fetched, takes_fetched

NOT_CONFIGURED = (
    "PROPFLOW_ALEMBIC_CONFIG is not set: point it at the backend's alembic.ini to check migrations"
)
CONFIG_NOT_SET = "PROPFLOW_ALEMBIC_CONFIG is not set"
#: Why SCHEMA_DRIFT compared nothing when the ini is set (``sources.alembic.schema_drift``: an empty Fetched
#: with the ini as target); without a target it is :data:`CONFIG_NOT_SET`.
NO_MODELS = (
    "no models named: pass the models parameter ('module:attribute' of the backend's "
    "MetaData) or set propflow_models in the ini's [alembic] section"
)

#: What PostgreSQL (and MySQL/SQLite) say when a migration creates something that is already there.
_EXISTS = re.compile(
    r"(?P<kind>relation|table|column|index|constraint|type|schema|sequence|function|trigger|extension|view)"
    r"\s+[\"'`]?(?P<name>[\w.$]+)[\"'`]?"
    r"(?:\s+(?:of|for|on)\s+(?:relation|table)\s+[\"'`]?(?P<parent>[\w.$]+)[\"'`]?)?"
    r"\s+already exists",
    re.I,
)


def _scripts(code: str, title: str, state: Fetched[AlembicState]) -> Finding | AlembicState:
    """What the scripts say, or the finding that says why nothing is known (not configured, unreadable)."""
    if state.error is not None:
        return Finding.error(code, title, f"could not read the migration scripts: {state.error}")
    if state.value is None:
        return Finding.skipped(code, title, NOT_CONFIGURED)
    return state.value


def _gate(code: str, title: str, state: Fetched[AlembicState]) -> Finding | tuple[AlembicState, DbRevision]:
    """The scripts and the database's revision, or the finding that says why they are not both known: an
    unreachable database ``fail``s, any other failure to read it is an ``error``."""
    scripts = _scripts(code, title, state)
    if isinstance(scripts, Finding):
        return scripts
    db = scripts.database
    if db.error is not None and unreachable(db.error):
        return Finding.fail(code, "Database unreachable: its revision cannot be read", str(db.error))
    if db.value is None:
        return Finding.error(code, title, f"could not read the database revision: {db.error or 'not read'}")
    return scripts, db.value


def pending(state: Fetched[AlembicState]) -> Finding:
    """MIGRATION_PENDING: ``fail`` when scripts exist that the database has not run (it is behind a head)."""
    code, title = "MIGRATION_PENDING", "Database revision vs. the scripts' head"
    gated = _gate(code, title, state)
    if isinstance(gated, Finding):
        return gated
    scripts, db = gated
    data = {"current": db.current, "heads": scripts.heads, "pending": db.pending}
    if db.unknown:
        return Finding.skipped(
            code,
            title,
            "cannot tell what is pending: the database is at a revision the "
            "scripts do not know (see MIGRATION_UNKNOWN_REVISION)",
            **data,
        )
    if not db.version_table or not db.current:
        return Finding.fail(
            code,
            "Database has no migration applied",
            f"no alembic_version row: all {len(db.pending)} revisions are pending "
            "(a fresh database, or the wrong one).",
            **data,
        )
    if db.pending:
        return Finding.fail(
            code,
            f"{len(db.pending)} migration(s) pending",
            f"database at {', '.join(db.current)}; not yet applied: "
            f"{', '.join(db.pending)} (head {', '.join(scripts.heads)}). The deploy's "
            "migration step did not finish: see MIGRATION_OBJECT_EXISTS and the logs.",
            **data,
        )
    return Finding.ok(code, "Database at head", f"database at {', '.join(db.current)} = head", **data)


def multiple_heads(state: Fetched[AlembicState]) -> Finding:
    """MIGRATION_MULTIPLE_HEADS: ``fail`` when the scripts have more than one head (two branches). The scripts
    alone: a database that cannot be read does not hide it."""
    code, title = "MIGRATION_MULTIPLE_HEADS", "Heads of the migration scripts"
    scripts = _scripts(code, title, state)
    if isinstance(scripts, Finding):
        return scripts
    data = {"heads": scripts.heads}
    if len(scripts.heads) > 1:
        docs = dict(zip(scripts.history["revision"], scripts.history["doc"], strict=False))
        heads = "; ".join(f"{h} ({docs.get(h, '')})" for h in scripts.heads)
        return Finding.fail(
            code,
            f"{len(scripts.heads)} migration heads",
            f"{heads}. `alembic upgrade head` refuses to run. Two branches were merged in "
            "git without a merge migration: create one (`alembic merge heads -m ...`), "
            "review it, deploy.",
            **data,
        )
    if not scripts.heads:
        return Finding.fail(code, "No migration scripts found", f"no revisions under {state.target}", **data)
    return Finding.ok(code, "One migration head", scripts.heads[0], **data)


def unknown_revision(state: Fetched[AlembicState]) -> Finding:
    """MIGRATION_UNKNOWN_REVISION: ``fail`` when alembic_version names a revision no script has."""
    code, title = "MIGRATION_UNKNOWN_REVISION", "Database revision known to the scripts"
    gated = _gate(code, title, state)
    if isinstance(gated, Finding):
        return gated
    _, db = gated
    data = {"current": db.current, "unknown": db.unknown}
    if db.unknown:
        return Finding.fail(
            code,
            f"Database at unknown revision {', '.join(db.unknown)}",
            "no migration script has this revision: the database was migrated by a newer (or "
            "abandoned) build than the one being deployed. Deploy the build that has the script, "
            "or, once the schema is verified, `alembic stamp` the right revision.",
            **data,
        )
    return Finding.ok(
        code,
        "Database revision known to the scripts",
        ", ".join(db.current) or "(no revision applied)",
        **data,
    )


def overview(state: Fetched[AlembicState]) -> dict[str, Any]:
    """Where the database and the scripts are, for display: each part its value, or why it is not known."""
    if state.value is None:
        why = f"unreadable: {state.error}" if state.error is not None else "not read: " + CONFIG_NOT_SET
        return {"alembic.ini": state.target or "not set", "scripts": why}
    scripts, db = state.value, state.value.database
    out: dict[str, Any] = {"alembic.ini": state.target}
    if db.value is None:
        out["database at"] = f"unreadable: {db.error}" if db.error is not None else "not read"
    else:
        out["database at"] = db.value.current
    out["heads"] = scripts.heads
    if db.value is not None:
        out["pending"] = db.value.pending
        out["unknown to the scripts"] = db.value.unknown
    return out


def history(state: Fetched[AlembicState]) -> pd.DataFrame:
    """The scripts' revisions, newest first (:data:`~propflow_ops.records.HISTORY_COLUMNS`; empty when they
    were not read)."""
    return state.value.history if state.value is not None else pd.DataFrame(columns=HISTORY_COLUMNS)


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


def differences(drift: Fetched[SchemaDrift]) -> pd.DataFrame:
    """The differences found (:data:`~propflow_ops.records.DRIFT_COLUMNS`; empty when nothing was compared)."""
    return drift.value.diffs if drift.value is not None else pd.DataFrame(columns=DRIFT_COLUMNS)


def schema_drift(drift: Fetched[SchemaDrift]) -> Finding:
    """SCHEMA_DRIFT: ``fail`` when the live schema differs from the backend's models (``drift``: the Fetched
    of ``sources.alembic.schema_drift``; an empty one is ``skipped``: no target, no alembic.ini; the ini as
    target, no models named)."""
    code, title = "SCHEMA_DRIFT", "Live schema vs. the backend's models"
    if drift.error is not None and unreachable(drift.error):
        return Finding.fail(code, "Database unreachable: the live schema cannot be read", str(drift.error))
    if drift.error is not None:
        return Finding.error(code, title, str(drift.error))
    if drift.value is None:
        return Finding.skipped(code, title, NO_MODELS if drift.target else CONFIG_NOT_SET)
    models, diffs = drift.value.models, drift.value.diffs
    n = len(diffs)
    data = {"models": models, "differences": n, "diffs": diffs.head(50).to_dict(orient="records")}
    if n:
        first = "; ".join(
            f"{r.change} {r.table}{'.' + r.name if r.name else ''}" for r in diffs.head(6).itertuples()
        )
        return Finding.fail(
            code,
            f"Schema drift: {n} difference(s) from the models",
            f"{first}{' ...' if n > 6 else ''}. Someone changed the schema outside Alembic (or "
            "a migration is missing). Write a migration that brings them back in line; do not "
            "run autogenerate output unreviewed.",
            **data,
        )
    return Finding.ok(code, "Live schema matches the models", f"compared with {models}", **data)
