"""The read-only engine against the machine's PostgreSQL (127.0.0.1:5432): the server holds every diagnostic
session read-only, one statement per execution, and typed SQL that would write, lock or reach outside its
transaction is refused. Each trick is tried against the real server; a table of ours and a session of ours
must come through untouched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from propflow_ops.sources import db

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    name = f"propflow_ro_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(CONNINFO, autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    conn.execute(f"CREATE TABLE {name} (id int)")
    conn.execute(f"INSERT INTO {name} SELECT generate_series(1, 5)")
    yield name
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.close()


def _rows(table: str) -> int:
    with psycopg.connect(CONNINFO) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def test_every_session_is_read_only_and_one_statement(table: str) -> None:
    engine = db.make_engine(PG_URL)
    df = db.query_df(
        engine,
        "SELECT current_setting('default_transaction_read_only') AS d,"
        " current_setting('transaction_read_only') AS t",
    )
    assert (df.iloc[0]["d"], df.iloc[0]["t"]) == ("on", "on")
    with pytest.raises(sa.exc.DBAPIError, match="read-only"):
        db.query_df(engine, f"DELETE FROM {table}")
    with pytest.raises(sa.exc.DBAPIError, match="multiple commands"):
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT 1; COMMIT; DELETE FROM {table}")
    assert _rows(table) == 5


TRICKS = {
    "commit in the string": "SELECT id FROM {t}; COMMIT; DELETE FROM {t}; SELECT id FROM {t}",
    "read-write off": "SET default_transaction_read_only = off; DELETE FROM {t}",
    "reset": "RESET ALL; DELETE FROM {t}",
    "session characteristics": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "transaction read write": "SET TRANSACTION READ WRITE",
    "begin": "BEGIN READ WRITE",
    "commit": "COMMIT",
    "cte": "WITH d AS (DELETE FROM {t} RETURNING id) SELECT id FROM d",
    "delete": "DELETE FROM {t} RETURNING id",
    "for update": "SELECT id FROM {t} FOR UPDATE",
    "terminate": "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity"
    " WHERE application_name = 'propflow-ro-victim' OFFSET 0) v",
    "cancel, schema-qualified": "SELECT pg_catalog.pg_cancel_backend(1)",
    "quoted name": "SELECT \"set_config\"('default_transaction_read_only', 'off', false)",
    "unicode escape": 'SELECT U&"pg_t\\0065rminate_backend"(1)',
    "large object": "SELECT lo_create(0)",
    "advisory lock": "SELECT pg_advisory_lock(42)",
    "notify": "SELECT pg_notify('x', 'y')",
}


@pytest.mark.parametrize("trick", list(TRICKS))
def test_typed_sql_cannot_change_anything(table: str, trick: str) -> None:
    victim = psycopg.connect(CONNINFO + " application_name=propflow-ro-victim", autocommit=True)
    engine = db.make_engine(PG_URL)
    try:
        with pytest.raises(db.ReadOnlyViolation):
            db.guarded_rows(engine, TRICKS[trick].format(t=table))
        assert victim.execute("SELECT 1").fetchone() == (1,), "the session we hold was signalled"
    finally:
        victim.close()
        engine.dispose()
    assert _rows(table) == 5


def test_a_plain_query_still_works(table: str) -> None:
    rows = db.guarded_rows(db.make_engine(PG_URL), f"SELECT id, 'a:b %s' FROM {table} ORDER BY id")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5] and rows[0][1] == "a:b %s"


def test_only_the_writer_engine_writes(table: str) -> None:
    writer = db.writer_engine(PG_URL)
    try:
        with writer.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES (6)")
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE id = 6")
        df = db.query_df(writer, "SELECT current_setting('transaction_read_only') AS t")
        assert df.iloc[0]["t"] == "off"
    finally:
        writer.dispose()
    assert _rows(table) == 5
