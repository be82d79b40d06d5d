"""Pure checks of the migration runbook."""

from __future__ import annotations

import pandas as pd

from checks.logframes import frame, line
from propflow_ops.checks import migration as m
from propflow_ops.sources.alembic import AlembicState, DriftResult

HEAD, PARENT = "5b6c7d8e9fa6", "4a5b6c7d8e95"


def _state(**kw):
    base = {
        "config_path": "/x/alembic.ini",
        "configured": True,
        "heads": [HEAD],
        "known": [HEAD, PARENT],
        "current": [HEAD],
        "version_table": True,
        "history": pd.DataFrame({"revision": [HEAD, PARENT], "doc": ["notifications", "otp codes"]}),
    }
    base.update(kw)
    return AlembicState(**base)


def test_not_configured_is_skipped_everywhere():
    state = AlembicState()
    for check in (m.pending, m.multiple_heads, m.unknown_revision):
        f = check(state)
        assert f.status == "skipped" and "PROPFLOW_ALEMBIC_CONFIG" in f.detail


def test_errors_are_errors_not_ok():
    assert m.pending(_state(db_error="OperationalError: refused")).status == "error"
    assert m.unknown_revision(_state(db_error="OperationalError: refused")).status == "error"
    assert m.multiple_heads(_state(db_error="OperationalError: refused")).status == "ok"  # scripts only
    assert m.multiple_heads(_state(script_error="CommandError: bad")).status == "error"


def test_unreachable_database_and_logs_fail_with_the_reason():
    dead = _state(db_error="OperationalError: connection refused", db_unreachable=True)
    for check in (m.pending, m.unknown_revision):
        f = check(dead)
        assert f.status == "fail" and "unreachable" in f.title and "refused" in f.detail
    drift = m.schema_drift(
        DriftResult(error="could not compare: OperationalError: timeout", unreachable=True)
    )
    assert drift.status == "fail"

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
    assert m.schema_drift(DriftResult(skipped="no models named")).status == "skipped"
    assert m.schema_drift(DriftResult(models="m:md", error="could not import m")).status == "error"
    assert m.schema_drift(DriftResult(models="m:md")).status == "ok"
    diffs = pd.DataFrame(
        [{"change": "add_column", "table": "units", "name": "rent_cents", "detail": "INTEGER"}]
    )
    f = m.schema_drift(DriftResult(models="m:md", diffs=diffs))
    assert f.status == "fail" and "add_column units.rent_cents" in f.detail and f.data["differences"] == 1
