"""sources.db against the machine's PostgreSQL (trust auth on 127.0.0.1:5432)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from propflow_ops.checks import db as db_checks
from propflow_ops.errors import FetchError
from propflow_ops.sources import db
from tests.sources.conftest import free_port

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    eng = db.make_engine(PG_URL)
    if not db.ping(eng).ok:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield eng
    eng.dispose()


def test_make_engine_settings() -> None:
    eng = db.make_engine("postgresql://u:pw@h:5433/d", connect_timeout_s=2, statement_timeout_ms=1234)
    assert eng.url.drivername == "postgresql+psycopg"
    assert isinstance(eng.pool, sa.pool.NullPool)
    assert eng.pool._pre_ping is True


SECRET = "hunter2secret"


class PasswordRefusingServer:
    """Speaks just enough of the PostgreSQL protocol to ask for a cleartext password and refuse it (28P01), quoting
    the password it got back in its message (a worst case: nothing may repeat it)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        got = b""
        while len(got) < n:
            chunk = conn.recv(n - len(got))
            if not chunk:
                raise ConnectionError("client went away")
            got += chunk
        return got

    def _message(self, conn: socket.socket, typed: bool) -> bytes:
        if typed:
            self._read(conn, 1)
        (n,) = struct.unpack("!I", self._read(conn, 4))
        return self._read(conn, n - 4)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    body = self._message(conn, typed=False)
                    while struct.unpack("!I", body[:4])[0] in (80877103, 80877104):  # SSL/GSS request: no
                        conn.sendall(b"N")
                        body = self._message(conn, typed=False)
                    conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
                    password = self._message(conn, typed=True).rstrip(b"\0").decode()
                    said = f'password authentication failed for user "app" (got {password})'
                    fields = [(b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28P01"), (b"M", said)]
                    payload = b"".join(k + v.encode() + b"\0" for k, v in fields) + b"\0"
                    conn.sendall(b"E" + struct.pack("!I", len(payload) + 4) + payload)
                except (OSError, ConnectionError, struct.error):
                    continue

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def refusing() -> Iterator[PasswordRefusingServer]:
    server = PasswordRefusingServer()
    yield server
    server.close()


def test_ping_ok(engine: sa.Engine) -> None:
    res = db.ping(engine)
    assert res.ok and res.error is None and res.target == "127.0.0.1"
    assert res.value is not None and res.value.host == "127.0.0.1"
    assert res.value.server_version and res.value.server_version[0].isdigit()
    assert res.value.latency_ms >= 0
    f = db_checks.connectivity(res)
    assert f.status == "ok" and f.data == {"latency_ms": res.value.latency_ms, "host": "127.0.0.1"}


def test_ping_dead_port_is_an_unreachable_error_without_the_password() -> None:
    eng = db.make_engine(f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/x", connect_timeout_s=2)
    res = db.ping(eng)
    assert res.value is None and isinstance(res.error, FetchError)
    assert res.error.unreachable is True
    text = str(res.error)
    assert "OperationalError" in text and "\n" not in text and SECRET not in text
    assert res.target == "127.0.0.1" and SECRET not in repr(res)
    f = db_checks.connectivity(res)
    assert f.status == "fail" and f.title == "Database unreachable"
    assert f.detail.startswith("127.0.0.1: OperationalError") and f.data["host"] == "127.0.0.1"
    assert SECRET not in f.detail + repr(f.data) + repr(db_checks.ping_table(res).to_dict("records"))


def test_ping_wrong_password_is_an_answer_not_unreachable_and_never_shows_it(
    refusing: PasswordRefusingServer,
) -> None:
    eng = db.make_engine(f"postgresql://app:{SECRET}@127.0.0.1:{refusing.port}/x", connect_timeout_s=2)
    res = db.ping(eng)
    assert res.value is None and isinstance(res.error, FetchError)
    assert res.error.unreachable is False, res  # the server answered: it refused the session
    text = str(res.error)
    assert "password authentication failed" in text and "***" in text and "\n" not in text
    f = db_checks.connectivity(res)
    assert f.status == "fail" and "password authentication failed" in f.detail
    table = db_checks.ping_table(res, url_from="env PROPFLOW_DATABASE_URL")
    shown = [text, repr(res), f.title, f.detail, repr(f.data), repr(table.to_dict("records"))]
    assert not [s for s in shown if SECRET in s], shown


def test_a_refused_session_reads_as_an_answer_on_every_path(refusing: PasswordRefusingServer) -> None:
    """The ping, a fetch through the Database and the run's reach tally agree: a server that refused the
    session answered (not DB_UNREACHABLE from the tally); a closed port did not."""
    from propflow_ops import reach
    from propflow_ops.sources.fetch import fetch_error

    reach.reset()
    try:
        refused = db.make_engine(
            f"postgresql://app:{SECRET}@127.0.0.1:{refusing.port}/x", connect_timeout_s=2
        )
        with pytest.raises(sa.exc.OperationalError) as caught:
            with refused.connect():
                pass
        assert reach.unreachable(caught.value) is False
        assert fetch_error(caught.value, refused).unreachable is False
        assert [f.code for f in reach.findings() if f.status == "fail"] == []
        dead = db.make_engine(f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/x", connect_timeout_s=2)
        with pytest.raises(sa.exc.OperationalError) as caught:
            with dead.connect():
                pass
        assert reach.unreachable(caught.value) is True and fetch_error(caught.value, dead).unreachable is True
        assert [f.code for f in reach.findings() if f.status == "fail"] == ["DB_UNREACHABLE"]
    finally:
        reach.reset()


def test_an_error_classified_when_it_was_made_keeps_that_class() -> None:
    from propflow_ops import reach

    said_no = FetchError('OperationalError: FATAL: role "x" does not exist', unreachable=False)
    assert reach.unreachable(said_no) is False
    assert reach.unreachable(FetchError("database unreachable", unreachable=True)) is True
    assert (
        reach.unreachable(FetchError("OperationalError: connection refused")) is True
    )  # unclassified: its text
    assert reach.unreachable('OperationalError: FATAL: database "nope" does not exist') is False
    assert reach.unreachable("OperationalError: FATAL: sorry, too many clients already") is True


def test_database_ping_not_configured_bad_url_and_live(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROPFLOW_DATABASE_URL", raising=False)
    unset = db.connect(None).ping()
    assert unset.value is None and unset.error is None
    assert db_checks.connectivity(unset).status == "skipped"
    bad = db.Database("h", "env PROPFLOW_DATABASE_URL", None, "bad database URL (ValueError)").ping()
    assert (
        bad.value is None and str(bad.error) == "bad database URL (ValueError)" and not bad.error.unreachable
    )
    assert db_checks.connectivity(bad).status == "fail"
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", PG_URL)
    live = db.connect(None).ping()
    assert live.value is not None and live.value.server_version[0].isdigit() and live.target == "127.0.0.1"


def test_session_settings_are_applied(engine: sa.Engine) -> None:
    eng = db.make_engine(PG_URL, statement_timeout_ms=1500)
    df = db.query_df(
        eng,
        "SELECT current_setting('statement_timeout') AS st, current_setting('application_name') AS app",
    )
    assert df.iloc[0]["st"] == "1500ms"
    assert df.iloc[0]["app"] == "propflow-ops"
    with pytest.raises(sa.exc.OperationalError) as info:
        db.query_df(eng, "SELECT pg_sleep(5)")
    assert "statement timeout" in str(info.value)


def test_query_df_is_parameterized(engine: sa.Engine) -> None:
    evil = "x'; DROP TABLE nothing; --"
    df = db.query_df(engine, "SELECT :v AS v, :n + 1 AS n", {"v": evil, "n": 41})
    assert df.to_dict("records") == [{"v": evil, "n": 42}]


def test_resolve_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROPFLOW_DATABASE_URL", raising=False)
    assert db.resolve_database_url(None) == (None, "not configured")
    assert db.resolve_database_url({"DATABASE_URL": "postgresql://a@b/c"}) == (
        "postgresql://a@b/c",
        "task definition DATABASE_URL",
    )
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", "postgresql://x@y/z")
    assert db.resolve_database_url({"DATABASE_URL": "postgresql://a@b/c"}) == (
        "postgresql://x@y/z",
        "env PROPFLOW_DATABASE_URL",
    )


def test_activity_sees_an_idle_in_transaction_session(engine: sa.Engine) -> None:
    other = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        poolclass=sa.pool.NullPool,
        connect_args={"application_name": "idle-holder-test"},
    )
    conn = other.connect()
    try:
        conn.execute(sa.text("SELECT 1"))  # opens a transaction, left idle
        time.sleep(0.3)
        df = db.activity(engine)
        mine = df[df["application_name"] == "idle-holder-test"]
        assert len(mine) == 1
        assert mine.iloc[0]["state"] == "idle in transaction"
        assert mine.iloc[0]["age_s"] > 0
        assert mine.iloc[0]["query"] == "SELECT 1"
        assert str(df["state_change"].dtype).startswith("datetime64")
    finally:
        conn.close()
        other.dispose()


def test_activity_truncates_long_queries(engine: sa.Engine) -> None:
    other = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        poolclass=sa.pool.NullPool,
        connect_args={"application_name": "long-query-test"},
    )
    long_sql = "SELECT pg_sleep(60) /* " + "x" * 400 + " */"

    def run() -> None:
        try:
            with other.connect() as conn:
                conn.execute(sa.text(long_sql))
        except sa.exc.DBAPIError:
            pass  # cancelled below

    t = threading.Thread(target=run, daemon=True)
    t.start()
    row = None
    deadline = time.monotonic() + 30  # a loaded machine can take a while to start the query
    try:
        while time.monotonic() < deadline and row is None:
            df = db.activity(engine)
            hit = df[
                (df["application_name"] == "long-query-test")
                & (df["state"] == "active")
                & df["query"].astype(str).str.startswith("SELECT pg_sleep")
            ]
            if len(hit):
                row = hit.iloc[0]
            else:
                time.sleep(0.1)
    finally:
        with engine.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = :a"),
                {"a": "long-query-test"},
            )
        t.join(10)
        other.dispose()
    assert row is not None
    assert len(row["query"]) == 200
    assert row["query"].startswith("SELECT pg_sleep(60)")


def test_max_connections_and_counts(engine: sa.Engine) -> None:
    mc = db.max_connections(engine)
    assert isinstance(mc, int) and mc > 0
    counts = db.connection_counts(engine)
    assert counts["total"] >= 1 and counts.get("active", 0) >= 1


def test_table_scan_stats(engine: sa.Engine) -> None:
    name = "propflow_ops_sources_scan_test"
    writer = db.writer_engine(PG_URL)  # the diagnostic engine is read-only: set-up writes through a writer
    with writer.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE TABLE {name} (id int, v text)"))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT g, 'v' FROM generate_series(1, 500) g"))
    try:
        with engine.connect() as conn:
            for _ in range(3):
                conn.execute(sa.text(f"SELECT count(*) FROM {name} WHERE v = 'x'"))
        row = None
        deadline = time.monotonic() + 5  # stats reach the view on the next stats flush
        while time.monotonic() < deadline:
            df = db.table_scan_stats(engine)
            hit = df[df["relname"] == name]
            if len(hit) and hit.iloc[0]["seq_scan"] >= 3:
                row = hit.iloc[0]
                break
            time.sleep(0.3)
        assert list(df.columns) == [
            "schemaname",
            "relname",
            "seq_scan",
            "seq_tup_read",
            "idx_scan",
            "n_live_tup",
        ]
        assert row is not None
        assert row["seq_tup_read"] >= 1500
        assert str(df["seq_scan"].dtype) == "Int64"
    finally:
        with writer.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        writer.dispose()


def test_pg_stat_statements_absent_or_frame(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        present = conn.execute(
            sa.text("SELECT count(*) FROM pg_extension WHERE extname='pg_stat_statements'")
        ).scalar()
    res = db.pg_stat_statements(engine)
    if not present:
        assert res is None
    else:
        assert res is None or {"query", "calls", "mean_exec_time_ms"} <= set(res.columns)


def test_triage_database_probe_live_dead_and_not_configured(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from propflow_ops.records import DatabaseSignals
    from propflow_ops.sources import triage

    no_task = triage._Once(lambda: {})
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", PG_URL)
    live = triage._database_probe(no_task, 2)
    assert isinstance(live, DatabaseSignals) and live.configured and live.host == "127.0.0.1"
    assert live.ping.value is not None and live.ping.value.server_version[0].isdigit()
    assert live.max_connections.value and live.max_connections.value > 0
    assert live.activity.ok and "pid" in live.activity.value.columns

    monkeypatch.setenv("PROPFLOW_DATABASE_URL", f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/x")
    dead = triage._database_probe(no_task, 1)
    assert dead.configured and dead.ping.value is None and dead.ping.error.unreachable
    assert dead.activity.value is None and dead.max_connections.value is None
    assert str(dead.activity.error) == "database unreachable"
    assert SECRET not in repr(dead) + str(dead.ping.error)

    monkeypatch.delenv("PROPFLOW_DATABASE_URL")
    unset = triage._database_probe(no_task, 1)
    assert not unset.configured and unset.source == "not configured" and unset.ping.value is None
