"""Alembic, through its Python API: script heads and history, the database's revision, offline SQL,
schema drift against the backend's models, and the online upgrade/downgrade the steps run.

The backend's ``alembic.ini`` comes from ``PROPFLOW_ALEMBIC_CONFIG`` (CONTRACT 2;
not set: the migration checks are skipped). The database URL comes from
``PROPFLOW_DATABASE_URL``, else the ini's ``sqlalchemy.url``, else
``DATABASE_URL`` (what the backend's ``env.py`` reads). It is handed to Alembic
through the Config object and never returned, printed or put in an error text.

Fetch only: no judging here. Functions that can fail return a
:class:`~propflow_ops.results.Fetched` (the value, or a one-line
:class:`~propflow_ops.errors.FetchError` with ``unreachable`` set) instead of
raising, so a broken target never stops a runbook. Not configured is an empty
Fetched (neither value nor error).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from propflow_ops.errors import FetchError
from propflow_ops.reach import unreachable
from propflow_ops.records import DRIFT_COLUMNS as DRIFT_COLUMNS
from propflow_ops.records import HISTORY_COLUMNS as HISTORY_COLUMNS
from propflow_ops.records import AlembicState as AlembicState
from propflow_ops.records import DbRevision as DbRevision
from propflow_ops.records import SchemaDrift as SchemaDrift
from propflow_ops.results import Fetched
from propflow_ops.urls import url_host

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
MIGRATION_TIMEOUT_MS = 600_000  # a step's migration (the writer session): long, but bounded
#: Keys of the ini's [alembic] section that may name the models' MetaData as "module:attribute".
MODELS_OPTIONS: tuple[str, ...] = ("propflow_models", "target_metadata", "models")


def config_path(env: Mapping[str, str] | None = None) -> str:
    """The backend's alembic.ini from ``PROPFLOW_ALEMBIC_CONFIG`` ("" when not set)."""
    env = os.environ if env is None else env
    return (env.get("PROPFLOW_ALEMBIC_CONFIG") or "").strip()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"[a-z][a-z0-9+.\-]*://\S+", "<database url>", text)  # never echo a URL with a password
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _error(exc: BaseException, prefix: str = "") -> FetchError:
    """``exc`` as a one-line FetchError (no URL) that says whether the database was unreachable."""
    return FetchError(prefix + _one_line(exc), unreachable=unreachable(exc))


def load_config(path: str, *, output_buffer: io.StringIO | None = None, with_url: bool = True) -> Any:
    """An alembic Config for ``path`` with the database URL set (env.py reads ``sqlalchemy.url`` first)."""
    from alembic.config import Config

    cfg = Config(path, output_buffer=output_buffer, stdout=output_buffer or io.StringIO())
    if with_url:
        url = database_url(cfg)
        if url:
            cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def database_url(cfg: Any = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = env.get("PROPFLOW_DATABASE_URL") or ""
    if not url and cfg is not None:
        url = cfg.get_main_option("sqlalchemy.url") or ""
    url = url or env.get("DATABASE_URL") or ""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _engine(url: str) -> Any:
    """The read-only engine of ``sources.db`` (every diagnostic session comes from there)."""
    from propflow_ops.sources import db

    return db.make_engine(url, connect_timeout_s=CONNECT_TIMEOUT_S, statement_timeout_ms=STATEMENT_TIMEOUT_MS)


@contextlib.contextmanager
def _connection(cfg: Any) -> Iterator[Any]:
    url = database_url(cfg)
    if not url:
        raise RuntimeError("no database URL: set PROPFLOW_DATABASE_URL")
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _ancestors(revisions: list[str], parents: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(revisions)
    while stack:
        rev = stack.pop()
        if rev in seen or rev not in parents:
            continue
        seen.add(rev)
        stack.extend(parents[rev])
    return seen


def read_state(path: str | None = None) -> Fetched[AlembicState]:
    """Heads, history and the database's current revision (``alembic heads/history/current``).

    The target is the alembic.ini (``path``, default PROPFLOW_ALEMBIC_CONFIG; "" : an empty Fetched). Scripts that
    cannot be read are the error; a database that cannot be read is ``AlembicState.database``'s error (the
    scripts' heads and history are still known). Never raises.
    """
    from alembic.script import ScriptDirectory

    path = config_path() if path is None else path
    if not path:
        return Fetched()
    t0 = time.monotonic()
    try:
        cfg = load_config(path)
        script = ScriptDirectory.from_config(cfg)
        revisions = list(script.walk_revisions())  # newest first
        heads = list(script.get_heads())
    except Exception as exc:  # noqa: BLE001 - reported by the checks (local files: never "unreachable")
        return Fetched(None, FetchError(_one_line(exc), unreachable=False), path, time.monotonic() - t0)
    parents = {r.revision: _as_list(r.down_revision) for r in revisions}
    database = _revision(cfg, revisions, heads, parents)
    known = database.value is not None and not database.value.unknown  # from an unknown revision: nothing
    applied = _ancestors(database.value.current, parents) if database.value is not None else set()
    rows = []
    for r in revisions:
        create = None
        with contextlib.suppress(Exception):
            m = re.search(r"Create Date:\s*(.+)", r.longdoc or "")
            create = m.group(1).strip() if m else None
        rows.append(
            {
                "revision": r.revision,
                "down_revision": ", ".join(parents[r.revision]) or "(base)",
                "applied": (r.revision in applied) if known else None,
                "is_head": r.revision in heads,
                "is_branch_point": bool(r.is_branch_point),
                "is_merge": bool(r.is_merge_point),
                "doc": (r.doc or "").strip(),
                "create_date": create,
                "file": Path(r.path).name if r.path else "",
            }
        )
    state = AlembicState(
        heads=heads,
        known=[r.revision for r in revisions],
        history=pd.DataFrame(rows, columns=HISTORY_COLUMNS),
        down_revisions=parents,
        database=database,
    )
    return Fetched(state, None, path, time.monotonic() - t0)


def _revision(
    cfg: Any, revisions: list[Any], heads: list[str], parents: Mapping[str, list[str]]
) -> Fetched[DbRevision]:
    """The database's revision against the scripts; target ``alembic_version@host`` (never the URL)."""
    from alembic.runtime.migration import MigrationContext

    host = url_host(database_url(cfg))
    target = f"alembic_version@{host}" if host else "alembic_version"
    t0 = time.monotonic()
    try:
        with _connection(cfg) as conn:
            ctx = MigrationContext.configure(conn)
            version_table = ctx._has_version_table()
            current = list(ctx.get_current_heads())
    except Exception as exc:  # noqa: BLE001 - reported by the checks
        return Fetched(None, _error(exc), target, time.monotonic() - t0)
    unknown = [r for r in current if r not in parents]
    applied = _ancestors(current, parents)
    wanted = _ancestors(heads, parents)
    order = [r.revision for r in reversed(revisions)]
    pending = [r for r in order if r in wanted and r not in applied] if not unknown else []
    return Fetched(DbRevision(current, version_table, pending, unknown), None, target, time.monotonic() - t0)


def offline_sql(path: str, direction: str, revision_range: str) -> Fetched[str]:
    """``alembic upgrade|downgrade START:END --sql`` into a buffer: what the step would run, not run.

    The value is the SQL; the target ``alembic <direction> <range> --sql``; the error why there is none.
    """
    from alembic import command

    target = f"alembic {direction} {revision_range} --sql"
    buf = io.StringIO()
    t0 = time.monotonic()
    try:
        cfg = load_config(path, output_buffer=buf)
        fn = command.upgrade if direction == "upgrade" else command.downgrade
        fn(cfg, revision_range, sql=True)
    except Exception as exc:  # noqa: BLE001 - the plan shows why there is no preview
        return Fetched(None, _error(exc), target, time.monotonic() - t0)
    return Fetched(buf.getvalue().strip(), None, target, time.monotonic() - t0)


def run_command(path: str, direction: str, target: str) -> list[str]:
    """``alembic upgrade|downgrade TARGET`` online (a step's execute); returns the revision after."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from propflow_ops.sources import db

    cfg = load_config(path)
    fn = command.upgrade if direction == "upgrade" else command.downgrade
    url = database_url(cfg)
    if not url:
        fn(cfg, target)  # the backend's env.py says what is missing
    else:
        # The one session that writes: created here, in the step's execute, and handed to env.py (the
        # Alembic cookbook's config.attributes["connection"]); committed when the command returns.
        writer = db.writer_engine(
            url, connect_timeout_s=CONNECT_TIMEOUT_S, statement_timeout_ms=MIGRATION_TIMEOUT_MS
        )
        try:
            with writer.begin() as conn:
                cfg.attributes["connection"] = conn
                fn(cfg, target)
        finally:
            cfg.attributes.pop("connection", None)
            writer.dispose()
    with _connection(cfg) as conn:
        return list(MigrationContext.configure(conn).get_current_heads())


# --- schema drift ---------------------------------------------------------------------------------


def models_from_config(path: str) -> str:
    """The "module:attribute" the ini names for the models' MetaData ([alembic] propflow_models,
    target_metadata or models), or ""."""
    if not path:
        return ""
    try:  # alembic reads the file lazily: a file that does not parse raises on the first option read
        cfg = load_config(path, with_url=False)
        values = [cfg.get_main_option(key) for key in MODELS_OPTIONS]
    except Exception:  # noqa: BLE001 - an unreadable ini names nothing; schema_drift reports why
        return ""
    return next((v.strip() for v in values if v and ":" in v), "")


def load_metadata(spec: str, config: str = "") -> Any:
    """Import ``module:attribute`` (attribute may be dotted; a declarative Base gives its .metadata)
    with the ini's directory and its ``prepend_sys_path`` on sys.path; returns a MetaData."""
    from sqlalchemy import MetaData

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"models must be 'module:attribute', not {spec!r}")
    if config:
        base = Path(config).resolve().parent
        extra = [base]
        with contextlib.suppress(Exception):
            cfg = load_config(config, with_url=False)
            for entry in (cfg.get_main_option("prepend_sys_path") or "").replace(",", " ").split():
                p = Path(entry)
                extra.append(p if p.is_absolute() else base / p)
        for p in reversed(extra):
            if str(p) not in sys.path:
                sys.path.insert(0, str(p))
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, MetaData) and isinstance(getattr(obj, "metadata", None), MetaData):
        obj = obj.metadata
    if not isinstance(obj, MetaData):
        raise TypeError(f"{spec} is a {type(obj).__name__}, not a SQLAlchemy MetaData")
    return obj


def _name(obj: Any) -> str:
    return str(getattr(obj, "name", None) or obj)


def _describe(diff: Any) -> list[dict[str, Any]]:
    if isinstance(diff, list):
        return [row for d in diff for row in _describe(d)]
    kind = diff[0]
    table = name = detail = ""
    if kind in ("add_table", "remove_table"):
        table = _name(diff[1])
    elif kind in ("add_column", "remove_column"):
        table, name, detail = str(diff[2]), _name(diff[3]), str(diff[3].type)
    elif kind in ("add_index", "remove_index"):
        idx = diff[1]
        table, name = _name(idx.table), _name(idx)
        detail = "(" + ", ".join(c.name for c in idx.columns) + ")" + (" unique" if idx.unique else "")
    elif kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        con = diff[1]
        table, name = _name(getattr(con, "table", None) or getattr(con, "parent", "")), _name(con)
        detail = type(con).__name__
    elif kind.startswith("modify_"):
        table, name = str(diff[2]), str(diff[3])
        detail = f"{diff[5]!s} -> {diff[6]!s}"
    else:
        detail = str(diff[1:])[:200]
    direction = (
        "in the models, not in the database"
        if kind.startswith("add_")
        else "in the database, not in the models"
        if kind.startswith("remove_")
        else "differs"
    )
    return [{"change": kind, "table": table, "name": name, "detail": f"{detail} ({direction})".strip()}]


def schema_drift(path: str | None = None, models: str = "") -> Fetched[SchemaDrift]:
    """compare_metadata(models, live database). ``models`` empty: what the ini names.

    The target is the alembic.ini. Nothing compared is an empty Fetched: PROPFLOW_ALEMBIC_CONFIG not set
    (no target), or no models named (the ini as target; the database answered). A database that cannot be
    read, or models that cannot be imported, are the error. Never raises.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    path = config_path() if path is None else path
    if not path:
        return Fetched()
    spec = models.strip() or models_from_config(path)
    t0 = time.monotonic()
    try:  # the live schema first: a dead database is reported whether or not models are named
        cfg = load_config(path)
        with _connection(cfg) as conn:
            if not spec:
                return Fetched(None, None, path, time.monotonic() - t0)
            try:
                metadata = load_metadata(spec, path)
            except Exception as exc:  # noqa: BLE001 - a models import that fails is an error finding
                error = FetchError(f"could not import {spec}: {_one_line(exc)}", unreachable=False)
                return Fetched(None, error, path, time.monotonic() - t0)
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    except Exception as exc:  # noqa: BLE001
        error = _error(exc, "could not compare with the database: ")
        return Fetched(None, error, path, time.monotonic() - t0)
    rows = [row for d in diffs for row in _describe(d)]
    drift = SchemaDrift(spec, pd.DataFrame(rows, columns=DRIFT_COLUMNS))
    return Fetched(drift, None, path, time.monotonic() - t0)


# --- logs -----------------------------------------------------------------------------------------


def migration_logs(log_group: str, start: Any, end: Any) -> pd.DataFrame:
    """Migration log lines and every line saying "already exists" in the window; raises when the logs
    cannot be read (call it through ``sources.fetch.fetch``)."""
    from propflow_ops.sources.logs import fetch_log_events

    frames = [
        fetch_log_events(log_group, start, end, filter_pattern=p) for p in ('"already exists"', "migration")
    ]
    df = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else frames[0]
    )
    if len(df):
        key = df["timestamp"].astype(str) + "|" + df["stream"].astype(str) + "|" + df["message"].astype(str)
        df = df[~key.duplicated()].sort_values("timestamp", kind="stable").reset_index(drop=True)
    return df
