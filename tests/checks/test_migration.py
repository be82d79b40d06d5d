"""Pure checks of the migration runbook."""

from __future__ import annotations

import pandas as pd

from checks.logframes import frame, line
from propflow_ops.checks import migration as m
from propflow_ops.errors import FetchError
from propflow_ops.results import Fetched
from propflow_ops.sources.alembic import AlembicState, DbRevision, SchemaDrift

HEAD, PARENT = "5b6c7d8e9fa6", "4a5b6c7d8e95"


def _state(db_error=None, unreachable=False, **kw):
    """read_state's Fetched: the scripts at HEAD (PARENT before it), the database as ``kw`` says (or unread)."""
    db = {"current": [HEAD], "version_table": True}
    db.update({k: kw.pop(k) for k in ("current", "version_table", "pending", "unknown") if k in kw})
    scripts = {
        "heads": [HEAD],
        "known": [HEAD, PARENT],
        "history": pd.DataFrame({"revision": [HEAD, PARENT], "doc": ["notifications", "otp codes"]}),
        "down_revisions": {HEAD: [PARENT], PARENT: []},
    }
    scripts.update(kw)
    database = (
        Fetched(None, FetchError(db_error, unreachable=unreachable), "alembic_version@db")
        if db_error
        else Fetched(DbRevision(**db), None, "alembic_version@db")
    )
    return Fetched(AlembicState(**scripts, database=database), None, "/x/alembic.ini")


def test_not_configured_is_skipped_everywhere():
    state = Fetched()
    for check in (m.pending, m.multiple_heads, m.unknown_revision):
        f = check(state)
        assert f.status == "skipped" and "PROPFLOW_ALEMBIC_CONFIG" in f.detail
    assert m.overview(state) == {
        "alembic.ini": "not set",
        "scripts": "not read: PROPFLOW_ALEMBIC_CONFIG is not set",
    }
    assert m.history(state).empty and list(m.history(state).columns)[0] == "revision"


def test_errors_are_errors_not_ok():
    refused = _state(db_error="OperationalError: refused")
    assert m.pending(refused).status == "error"
    assert (
        m.unknown_revision(refused).detail
        == "could not read the database revision: OperationalError: refused"
    )
    assert m.multiple_heads(refused).status == "ok"  # scripts only
    assert m.overview(refused)["database at"] == "unreadable: OperationalError: refused"
    assert m.overview(refused)["heads"] == [HEAD]  # the scripts are still known
    bad = Fetched(None, FetchError("CommandError: bad", unreachable=False), "/x/alembic.ini")
    for check in (m.pending, m.multiple_heads, m.unknown_revision):
        f = check(bad)
        assert f.status == "error" and f.detail == "could not read the migration scripts: CommandError: bad"
    assert m.overview(bad) == {"alembic.ini": "/x/alembic.ini", "scripts": "unreadable: CommandError: bad"}


def test_unreachable_database_and_logs_fail_with_the_reason():
    dead = _state(db_error="OperationalError: connection refused", unreachable=True)
    for check in (m.pending, m.unknown_revision):
        f = check(dead)
        assert f.status == "fail" and "unreachable" in f.title and "refused" in f.detail
    timeout = FetchError("could not compare with the database: OperationalError: timeout", unreachable=True)
    drift = m.schema_drift(Fetched(None, timeout, "/x/alembic.ini"))
    assert drift.status == "fail" and drift.detail == str(timeout)

    class ThrottlingException(Exception):
        pass

    assert m.object_exists(ThrottlingException("Rate exceeded")).status == "fail"


def test_pending():
    assert m.pending(_state()).status == "ok"
    f = m.pending(_state(current=[PARENT], pending=[HEAD]))
    assert f.status == "fail" and f.data["pending"] == [HEAD]
    empty = m.pending(_state(current=[], version_table=False, pending=[PARENT, HEAD]))
    assert empty.status == "fail" and "no alembic_version" in empty.detail
    assert m.pending(_state(current=["e4f5"], unknown=["e4f5"])).status == "skipped"


def test_multiple_heads_and_unknown_revision():
    f = m.multiple_heads(_state(heads=[HEAD, "7c8d9e0fab17"]))
    assert f.status == "fail" and "merge heads" in f.detail and f.data["heads"] == [HEAD, "7c8d9e0fab17"]
    assert m.multiple_heads(_state()).status == "ok"
    none = m.multiple_heads(_state(heads=[]))
    assert none.status == "fail" and none.detail == "no revisions under /x/alembic.ini"
    u = m.unknown_revision(_state(current=["e4f5a6b7c8d9"], unknown=["e4f5a6b7c8d9"]))
    assert u.status == "fail" and "e4f5a6b7c8d9" in u.title
    assert m.unknown_revision(_state()).status == "ok"


def test_object_exists_names_each_object():
    logs = frame(
        [
            line(9, "INFO", "Running upgrade 4a5b -> 5b6c", event="migration"),
            line(
                9,
                "ERROR",
                'sqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateTable) relation "notifications" '
                "already exists",
                event="migration",
            ),
            line(
                5,
                "ERROR",
                '(psycopg.errors.DuplicateColumn) column "phone_verified" of relation "users" already exists',
                event="migration",
            ),
            line(
                4,
                "ERROR",
                '(psycopg.errors.DuplicateTable) relation "notifications" already exists',
                event="migration",
            ),
            line(3, "INFO", "GET /health", event="request"),
        ]
    )
    objects = m.objects_in_logs(logs)
    assert list(zip(objects["kind"], objects["object"], objects["count"], strict=True)) == [
        ("relation", "notifications", 2),
        ("column", "users.phone_verified", 1),
    ]
    f = m.object_exists(logs)
    assert (
        f.status == "fail"
        and "relation notifications" in f.title
        and "column users.phone_verified" in f.title
    )
    assert len(m.migration_lines(logs)) == 4
    assert m.object_exists(frame([line(1, "INFO", "ok")])).status == "ok"
    assert m.object_exists(RuntimeError("AccessDeniedException")).status == "error"
    assert m.objects_in_logs(RuntimeError("x")).empty


def test_schema_drift():
    ini = "/x/alembic.ini"
    not_set = m.schema_drift(Fetched())
    assert not_set.status == "skipped" and not_set.detail == "PROPFLOW_ALEMBIC_CONFIG is not set"
    no_models = m.schema_drift(Fetched(None, None, ini))
    assert no_models.status == "skipped" and no_models.detail.startswith("no models named")
    assert m.differences(Fetched(None, None, ini)).empty
    unimportable = Fetched(None, FetchError("could not import m: ImportError: no m", unreachable=False), ini)
    f = m.schema_drift(unimportable)
    assert f.status == "error" and f.detail == "could not import m: ImportError: no m"
    ok = m.schema_drift(Fetched(SchemaDrift("m:md"), None, ini))
    assert ok.status == "ok" and ok.detail == "compared with m:md"
    diffs = pd.DataFrame(
        [{"change": "add_column", "table": "units", "name": "rent_cents", "detail": "INTEGER"}]
    )
    drift = Fetched(SchemaDrift("m:md", diffs), None, ini)
    f = m.schema_drift(drift)
    assert f.status == "fail" and "add_column units.rent_cents" in f.detail and f.data["differences"] == 1
    assert m.differences(drift) is diffs
