"""Total deadlines and per-target breakers (propflow_ops.reach) against real loopback servers: one that drips
one byte every 2 s (read timeouts never fire), one that accepts and never answers. Bounds are generous: a
regression waits the drip out (100 000 bytes) or hangs, it does not miss by a second."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from propflow_ops import reach
from propflow_ops.sources import db, http, twilio
from propflow_ops.sources import redis as rsrc
from tests.safety.harness import DripServer, SilentServer


@pytest.fixture(scope="module")
def drip() -> Iterator[DripServer]:
    server = DripServer(2.0)
    yield server
    server.close()


@pytest.fixture(scope="module")
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def test_a_dripping_server_is_cut_off_at_the_deadline_then_fails_fast(drip: DripServer) -> None:
    res, took = timed(lambda: http.probe(drip.url + "/health", timeout_s=2, retries=2))
    assert res.value is None and "timeout" in str(res.error), res
    assert took < 10, f"the probe took {took:.1f} s against a 2 s deadline"
    assert getattr(res.error, "attempts", None) == 1  # a timed-out attempt is not retried
    assert reach.tripped(http.target_key(drip.url))
    again, took = timed(
        lambda: twilio.request_json("GET", drip.url + "/2010-04-01/Accounts/x.json", timeout_s=2)
    )
    assert again.value is None and "TargetDown" in str(again.error) and again.error.unreachable, again
    assert took < 1
    ws, took = timed(lambda: http.ws_handshake(http.ws_url(drip.url, "tok"), timeout_s=2))
    assert ws.value is None and "TargetDown" in str(ws.error) and took < 1, ws


def test_a_dripping_server_costs_each_run_its_own_timeout(drip: DripServer) -> None:
    reach.reset()  # a new run: the breaker starts closed
    res, took = timed(lambda: twilio.request_json("GET", drip.url + "/x.json", timeout_s=1.5))
    assert res.value is None and "Deadline" in str(res.error) and res.error.unreachable and took < 8, (
        res,
        took,
    )


def test_a_database_that_never_answers_costs_one_connect_timeout(silent: SilentServer) -> None:
    url = f"postgresql://u:pw@127.0.0.1:{silent.port}/x"
    first, took = timed(lambda: db.ping(db.make_engine(url, connect_timeout_s=1)))
    assert first.value is None and first.error.unreachable and took < 10, (first, took)
    second, took = timed(lambda: db.ping(db.make_engine(url, connect_timeout_s=1)))
    assert second.value is None and "TargetDown" in str(second.error) and took < 1, (second, took)
    codes = {f.code: f.status.value for f in reach.findings()}
    assert codes == {"DB_UNREACHABLE": "fail"}


def test_a_statement_timeout_is_an_answer_not_a_dead_database() -> None:
    engine = db.make_engine("postgresql://postgres@127.0.0.1:5432/postgres", statement_timeout_ms=300)
    if not db.ping(engine).ok:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    with pytest.raises(Exception, match="statement timeout"):
        db.query_df(engine, "SELECT pg_sleep(2)")
    assert db.ping(engine).ok, "a server that answered 'statement timeout' must not trip the breaker"


def test_a_redis_that_never_answers_costs_one_timeout(silent: SilentServer) -> None:
    client = rsrc.make_client(f"redis://127.0.0.1:{silent.port}/0", timeout_s=1)
    with pytest.raises(Exception, match="(?i)timeout"):
        client.ping()
    t0 = time.monotonic()
    with pytest.raises(reach.TargetDown):
        rsrc.make_client(f"redis://127.0.0.1:{silent.port}/0", timeout_s=1).info()
    assert time.monotonic() - t0 < 1


def test_a_redis_that_drips_its_reply_is_cut_off_at_the_deadline() -> None:
    """Each byte of the reply comes within the socket timeout, so no read ever times out; the command's total
    deadline (2 x timeout + 1 s) ends it, and the breaker fails the next command at once."""
    server = DripServer(0.3, payload=b"$100000\r\n" + b"x" * 100000 + b"\r\n")  # one RESP bulk string
    port = server.port
    try:
        client = rsrc.make_client(f"redis://127.0.0.1:{port}/0", timeout_s=1)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="within 3 s"):
            client.info()
        assert time.monotonic() - t0 < 10
        t0 = time.monotonic()
        with pytest.raises(reach.TargetDown):
            rsrc.make_client(f"redis://127.0.0.1:{port}/0", timeout_s=1).ping()
        assert time.monotonic() - t0 < 1
    finally:
        server.close()


class FreezingProxy:
    """A TCP proxy to the machine's PostgreSQL that can stop passing the server's answers on (``freeze``):
    a database that accepted the session and then went silent mid-query."""

    def __init__(self, port: int = 5432) -> None:
        import socket
        import threading

        self.frozen = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.upstream = port
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src, dst, answers: bool) -> None:  # type: ignore[no-untyped-def]
        try:
            while data := src.recv(65536):
                if answers and self.frozen.is_set():
                    continue  # swallowed: the client waits for an answer that never comes
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for c in self._conns:
            c.close()


def test_a_database_that_goes_silent_mid_query_is_cut_at_the_wall_clock() -> None:
    if not db.ping(db.make_engine("postgresql://postgres@127.0.0.1:5432/postgres")).ok:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    proxy = FreezingProxy()
    try:
        engine = db.make_engine(
            f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres", statement_timeout_ms=500
        )
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            proxy.frozen.set()
            t0 = time.monotonic()
            with pytest.raises(Exception):  # noqa: B017 - the socket is cut: psycopg's error, whatever its words
                conn.exec_driver_sql("SELECT 2").scalar()
            took = time.monotonic() - t0
        assert took < 20, (
            f"a silent server held the query {took:.1f} s (deadline 0.5 s + {db.EXECUTION_GRACE_S:g} s)"
        )
        assert reach.tripped(db.target_key(engine.url)), "the silent database did not trip its breaker"
    finally:
        proxy.close()


def test_a_dripping_aws_endpoint_is_cut_off_at_the_deadline_then_fails_fast(
    drip: DripServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's read timeout bounds one read; the drip never lets it fire. The attempt's total deadline
    does, the timed-out attempt is not retried, and the endpoint's breaker fails the next call at once."""
    from propflow_ops.errors import DeadlineExceeded
    from propflow_ops.sources import aws

    for name, value in {
        "AWS_ENDPOINT_URL": drip.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(aws, "ATTEMPT_DEADLINE_S", 2.0)
    aws.clear_cache()
    before = drip.accepted
    try:
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            aws.client("ecs").list_clusters()
        took = time.monotonic() - t0
        assert took < 10, f"the call took {took:.1f} s against a 2 s deadline"
        assert drip.accepted - before == 1, "a timed-out attempt was retried"
        logs = aws.client("logs")  # made before the clock starts: loading a service's model takes a second
        t0 = time.monotonic()
        with pytest.raises(reach.TargetDown):
            logs.describe_log_groups()
        assert time.monotonic() - t0 < 1
        (f,) = reach.findings()
        assert (f.code, f.status.value) == ("AWS_UNREACHABLE", "fail") and "within 2 s" in f.detail, f.detail
        # the same bound on the clients built from another environment (escalation's SNS, the operator's STS)
        sns = aws.client_from_env(
            "sns",
            {"AWS_ENDPOINT_URL": drip.url, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
            connect_s=0.5,
            read_s=2.5,
        )
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded):  # reads come every 2 s: only the deadline (7 s) ends it
            sns.list_topics()
        assert time.monotonic() - t0 < 14
    finally:
        aws.clear_cache()


@pytest.mark.slow  # waits out a real long poll (10 s)
def test_the_queue_client_outlasts_a_long_poll(aws_env: str, unique: str) -> None:
    """The worker's receive long-polls an empty queue for up to 20 s: that is an answer in the making, not a
    read timeout (the runbooks' 8 s read timeout made every idle receive fail against real SQS)."""
    from propflow_ops import store
    from propflow_ops.sources import aws

    store._plumbing.clear()
    sqs = store.plumbing_client("sqs")
    url = sqs.create_queue(QueueName=f"poll-{unique}")["QueueUrl"]
    wait = aws.READ_TIMEOUT_S + 2
    t0 = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=wait)  # raised ReadTimeoutError at 8 s before
    took = time.monotonic() - t0
    assert got.get("Messages", []) == [] and took >= wait - 1, (got, took)
    store._plumbing.clear()
