"""The sandbox never touches a real target (issue 14, item 1).

The "real targets" are this machine's PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379),
named in the environment as PROPFLOW_DATABASE_URL, PROPFLOW_REDIS_URL, DATABASE_URL and REDIS_URL, with
AWS_PROFILE, AWS_ENDPOINT_URL and the other AWS/API settings pointing at a recording HTTP server. With that
environment, ``propflow-ops sandbox`` with the faults that change database and Redis state, and a whole
``propflow-ops demo``, must leave the sentinel data, the databases of the server, the Redis server's
configuration (maxmemory, policy, maxclients) untouched, open no session on them, send nothing to the
recording server, and say on stderr which variables they ignore, without their values.

``PROPFLOW_SAFETY_REAL_REDIS`` / ``PROPFLOW_SAFETY_REAL_PG`` point the tests at other servers (to prove that
they fail on a version that injects faults into the target, use a private server, not the shared one).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from .procs import Lines, alive, environ_without_targets, exports, kill_all, start, tree

# One worker: the external-server tests create (and drop) propflow_sandbox_* databases on the same server
# whose database list the isolation tests compare.
pytestmark = [pytest.mark.xdist_group("safety-real-servers")]

REAL_REDIS = os.environ.get("PROPFLOW_SAFETY_REAL_REDIS", "redis://127.0.0.1:6379")
REAL_PG = os.environ.get("PROPFLOW_SAFETY_REAL_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_DBS = (9, 13)  # 13: the db number the sandbox used to take on an external Redis
READY_S = 180.0
CONFIG = ("maxmemory", "maxmemory-policy", "maxclients")
SECRET = "real-target-secret-9f1c"  # a password in the target URLs: never printed


@dataclass
class Recorder:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Targets:
    redis_url: str
    pg_url: str
    db: str
    sentinel: str
    config: dict[str, str]
    databases: set[str]

    def redis(self, db: int) -> redis.Redis:
        return redis.Redis.from_url(f"{REAL_REDIS}/{db}", socket_timeout=3, socket_connect_timeout=3)

    def pg(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        info = psycopg.conninfo.conninfo_to_dict(REAL_PG)
        if dbname:
            info["dbname"] = dbname
        return psycopg.connect(**info, autocommit=True, connect_timeout=3)  # type: ignore[arg-type]

    def redis_config(self) -> dict[str, str]:
        r = self.redis(0)
        try:
            return {k: str(r.config_get(k)[k]) for k in CONFIG}
        finally:
            r.close()

    def all_databases(self) -> set[str]:
        with self.pg() as conn:
            return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}

    def problems(self) -> list[str]:
        """What differs from the state the fixture set up."""
        found = []
        config = self.redis_config()
        if config != self.config:
            found.append(f"Redis configuration changed: {self.config} -> {config}")
        for db in REDIS_DBS:
            r = self.redis(db)
            try:
                if r.get(f"sentinel:{self.sentinel}") != b"keep-me":
                    found.append(f"Redis db {db}: sentinel key gone")
                if r.hlen(f"sentinel-hash:{self.sentinel}") != 20:
                    found.append(f"Redis db {db}: sentinel hash changed")
            finally:
                r.close()
        with self.pg(self.db) as conn:
            rows = conn.execute("SELECT count(*), coalesce(sum(id), 0) FROM sentinel").fetchone()
            if rows != (5, 15):
                found.append(f"sentinel table changed: {rows}")
        changed = {
            d for d in self.all_databases() ^ self.databases if d.startswith("propflow") or d == self.db
        }
        if changed:
            found.append(f"databases on the server changed: {sorted(changed)}")
        with self.pg() as conn:
            sessions = conn.execute(
                "SELECT datname, application_name FROM pg_stat_activity WHERE datname = %s "
                "OR datname LIKE 'propflow_sandbox%%'",
                (self.db,),
            ).fetchall()
        if sessions:
            found.append(f"sandbox sessions on the real server: {sessions[:5]} ({len(sessions)})")
        return found


@pytest.fixture
def targets() -> Iterator[Targets]:
    probe = redis.Redis.from_url(REAL_REDIS, socket_timeout=2, socket_connect_timeout=2)
    try:
        probe.ping()
    except (redis.RedisError, OSError):
        pytest.skip(f"no Redis at {REAL_REDIS}")
    finally:
        probe.close()
    try:
        psycopg.connect(REAL_PG, connect_timeout=3).close()
    except psycopg.Error:
        pytest.skip(f"no PostgreSQL at {REAL_PG}")
    token = secrets.token_hex(4)
    db = f"sentinel_h1_{token}"
    t = Targets(redis_url="", pg_url="", db=db, sentinel=token, config={}, databases=set())
    t.config = t.redis_config()
    for n in REDIS_DBS:
        r = t.redis(n)
        r.set(f"sentinel:{token}", "keep-me")
        r.hset(f"sentinel-hash:{token}", mapping={f"f{i}": str(i) for i in range(20)})
        r.close()
    with t.pg() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    with t.pg(db) as conn:
        conn.execute("CREATE TABLE sentinel (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO sentinel SELECT g, 'row ' || g FROM generate_series(1, 5) g")
    t.databases = t.all_databases()
    pg_info = psycopg.conninfo.conninfo_to_dict(REAL_PG)
    t.pg_url = (
        f"postgresql+psycopg://{pg_info.get('user', 'postgres')}:{SECRET}@{pg_info.get('host', '127.0.0.1')}:"
        f"{pg_info.get('port', 5432)}/{db}"
    )
    t.redis_url = (
        REAL_REDIS.replace("redis://", f"redis://:{SECRET}@", 1) if "@" not in REAL_REDIS else REAL_REDIS
    )
    try:
        yield t
    finally:
        r = t.redis(0)
        try:  # a failing run may have changed the server: put it back for everyone else
            for key, value in t.config.items():
                if str(r.config_get(key)[key]) != value:
                    r.config_set(key, value)
        finally:
            r.close()
        for n in REDIS_DBS:
            r = t.redis(n)
            r.delete(f"sentinel:{token}", f"sentinel-hash:{token}")
            r.close()
        with t.pg() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def target_env(t: Targets, recorder: Recorder, tmp_path: Any) -> dict[str, str]:
    """Every kind of target variable, pointing at the real servers or the recorder."""
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(f"[profile prod]\nregion = eu-west-1\nendpoint_url = {recorder.url}\n")
    return {
        **environ_without_targets(),
        "PROPFLOW_DATABASE_URL": t.pg_url,
        "DATABASE_URL": t.pg_url.replace("+psycopg", ""),
        "PROPFLOW_REDIS_URL": f"{t.redis_url}/{REDIS_DBS[0]}",
        "REDIS_URL": f"{t.redis_url}/{REDIS_DBS[1]}",
        "PROPFLOW_API_URL": recorder.url,
        "PROPFLOW_TWILIO_API_URL": recorder.url,
        "PROPFLOW_META_GRAPH_URL": recorder.url,
        "TWILIO_AUTH_TOKEN": SECRET,
        "WHATSAPP_TOKEN": SECRET,
        "AWS_PROFILE": "prod",
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_ENDPOINT_URL": recorder.url,
        "AWS_ENDPOINT_URL_S3": recorder.url,
        "AWS_ENDPOINT_URL_LOGS": recorder.url,
        "AWS_ACCESS_KEY_ID": "AKIAREALREALREAL0000",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "eu-west-1",
        "PGHOSTADDR": "127.0.0.1",
        "PGPORT": "5432",
    }


NAMED = (
    "PROPFLOW_DATABASE_URL",
    "PROPFLOW_REDIS_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "PROPFLOW_API_URL",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "TWILIO_AUTH_TOKEN",
    "PGHOSTADDR",
)


def _check_notice(err: str, recorder: Recorder) -> None:
    notices = [line for line in err.splitlines() if "ignoring" in line]
    assert len(notices) == 1, err[-2000:]
    for name in NAMED:
        assert name in notices[0], (name, notices[0])
    assert SECRET not in err and recorder.url not in err and "eu-west-1" not in err


def _stop(proc: subprocess.Popen[str], procs: list[Any]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        kill_all(procs)
        raise


SCENARIOS = (
    "redis-memory-pressure",
    "db-pool-exhausted",
    "db-idle-in-transaction",
    "schema-drift",
    "migration-unknown-revision",
)


def test_sandbox_ignores_target_variables_and_touches_no_target(
    targets: Targets, recorder: Recorder, tmp_path: Any
) -> None:
    env = target_env(targets, recorder, tmp_path)
    args = ["sandbox"] + [a for s in SCENARIOS for a in ("--scenario", s)]
    proc = start(args, env)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    procs: list[Any] = []
    try:
        ready = out.wait_for(r"^READY$", READY_S)
        assert ready, f"no READY; exit {proc.poll()}; stderr: {err.text()[-3000:]}"
        procs = tree(proc.pid)
        exported = exports(out.lines)
        for name in ("PROPFLOW_DATABASE_URL", "PROPFLOW_REDIS_URL", "AWS_ENDPOINT_URL", "PROPFLOW_API_URL"):
            assert exported[name] != env[name]
            assert ":5432" not in exported[name] and ":6379" not in exported[name], exported[name]
        assert recorder.url not in out.text() and SECRET not in out.text()
        unset = next((line for line in out.lines if line.startswith("unset ")), "")
        for name in NAMED:
            assert name in unset.split(), unset
        problems = targets.problems()  # while the faults are in place
    finally:
        code = _stop(proc, procs)
    assert problems == []
    assert code == 0, err.text()[-2000:]
    assert targets.problems() == []  # and after the stop (which empties the sandbox's own Redis db)
    assert recorder.requests == []
    _check_notice(err.text(), recorder)
    assert alive(procs) == []


def test_demo_ignores_target_variables_and_touches_no_target(
    targets: Targets, recorder: Recorder, tmp_path: Any
) -> None:
    env = target_env(targets, recorder, tmp_path)
    proc = start(["demo", "--scenario", "redis-memory-pressure", "--output-dir", str(tmp_path / "out")], env)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        code = proc.wait(600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, f"{out.text()[-2000:]}\n{err.text()[-3000:]}"
    assert targets.problems() == []
    assert recorder.requests == [], recorder.requests[:10]
    _check_notice(err.text(), recorder)
    # the runs saw the sandbox: the triage found the fault injected there
    assert "redis" in out.text().lower()


def test_external_redis_for_the_sandbox_must_be_an_empty_db_it_then_owns(
    targets: Targets, tmp_path: Any
) -> None:
    """--sandbox-redis-url naming a db with data: refused in one line, nothing emptied."""
    env = environ_without_targets()
    proc = start(["sandbox", "--sandbox-redis-url", f"{REAL_REDIS}/{REDIS_DBS[0]}"], env)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        code = proc.wait(READY_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 1 and "READY" not in out.text()
    lines = [line for line in err.text().splitlines() if line.strip()]
    assert len(lines) == 1 and "not empty" in lines[0], err.text()[-2000:]
    assert targets.problems() == []


@pytest.mark.parametrize("scenario", ["redis-memory-pressure", "redis-maxclients", "redis-down"])
def test_server_wide_redis_faults_are_refused_on_an_external_redis(targets: Targets, scenario: str) -> None:
    proc = start(
        ["sandbox", "--scenario", scenario, "--sandbox-redis-url", f"{REAL_REDIS}/15"],
        environ_without_targets(),
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "server-wide" in err and len(err.strip().splitlines()) == 1, err
    assert targets.problems() == []


def test_external_postgres_for_the_sandbox_gets_a_database_of_its_own(
    targets: Targets, tmp_path: Any
) -> None:
    """--sandbox-database-url: the sandbox creates its own database there and drops only that one."""
    info = psycopg.conninfo.conninfo_to_dict(REAL_PG)
    url = f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{targets.db}"
    proc = start(
        ["sandbox", "--scenario", "schema-drift", "--sandbox-database-url", url], environ_without_targets()
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    procs: list[Any] = []
    try:
        assert out.wait_for(r"^READY$", READY_S), err.text()[-3000:]
        procs = tree(proc.pid)
        exported = exports(out.lines)
        created = {
            d for d in targets.all_databases() - targets.databases if d.startswith("propflow_sandbox_")
        }
        assert created, created
        assert any(f"/{d}" in exported["PROPFLOW_DATABASE_URL"] for d in created)
    finally:
        code = _stop(proc, procs)
    assert code == 0
    assert targets.problems() == []  # its databases dropped, the sentinel database untouched
    assert alive(procs) == []


@pytest.mark.parametrize(
    "name",
    [
        "PROPFLOW_DATABASE_URL",
        "PROPFLOW_REDIS_URL",
        "PROPFLOW_API_URL",
        "PROPFLOW_TWILIO_API_URL",
        "PROPFLOW_META_GRAPH_URL",
        "PROPFLOW_ALEMBIC_CONFIG",
        "PROPFLOW_SOME_FUTURE_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_HOST",
        "REDISCLI_AUTH",
        "APP_DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "WHATSAPP_TOKEN",
        "META_GRAPH_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "BOTO_CONFIG",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGSERVICE",
        "PGOPTIONS",
        "PGPASSWORD",
        "PGPASSFILE",
        "HTTP_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ],
)
def test_every_kind_of_target_variable_is_ignored(name: str) -> None:
    from propflow_ops.sandbox.isolation import clean, is_target_variable

    assert is_target_variable(name)
    assert name not in clean({name: "x", "PATH": "/bin"})


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "PROPFLOW_OUTPUT_DIR",
        "PROPFLOW_NOTEBOOKS_DIR",
        "PROPFLOW_SANDBOX_DATABASE_URL",
        "PROPFLOW_SANDBOX_REDIS_URL",
        "PROPFLOW_SAFETY_JOBS",
        "PROPFLOW_VERIFY_TIMEOUT_S",
        "PYTHONPATH",
        "LANG",
        "TMPDIR",
    ],
)
def test_settings_that_name_no_target_are_kept(name: str) -> None:
    from propflow_ops.sandbox.isolation import is_target_variable

    assert not is_target_variable(name)


def test_server_wide_faults_are_refused_before_anything_starts() -> None:
    from propflow_ops.sandbox.core import Sandbox, SandboxRefused

    for scenario in ("redis-memory-pressure", "redis-maxclients", "redis-down"):
        with pytest.raises(SandboxRefused, match="server-wide"):
            Sandbox([scenario], redis_url="redis://127.0.0.1:6379/15")
    with pytest.raises(SandboxRefused, match="server-wide"):
        Sandbox(["db-pool-exhausted"], database_url="postgresql://postgres@127.0.0.1:5432/postgres")
    Sandbox(["redis-memory-pressure", "db-pool-exhausted"])  # embedded: fine


def test_external_redis_for_the_sandbox_is_claimed_used_and_given_back_empty(targets: Targets) -> None:
    """--sandbox-redis-url naming an empty db: the sandbox claims it, seeds it, and empties only it."""
    free = next(
        (n for n in range(1, 16) if n not in (*REDIS_DBS, 15) and targets.redis(n).dbsize() == 0), None
    )
    if free is None:
        pytest.skip("no empty Redis db number to lend the sandbox")
    proc = start(
        ["sandbox", "--scenario", "ws-reconnect-storm", "--sandbox-redis-url", f"{REAL_REDIS}/{free}"],
        environ_without_targets(),
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    procs: list[Any] = []
    try:
        assert out.wait_for(r"^READY$", READY_S), err.text()[-3000:]
        procs = tree(proc.pid)
        assert exports(out.lines)["PROPFLOW_REDIS_URL"].endswith(f"/{free}")
        r = targets.redis(free)
        assert r.get("propflow-sandbox:owner") and r.exists("propflow:feature:realtime")
        r.close()
    finally:
        code = _stop(proc, procs)
    assert code == 0, err.text()[-2000:]
    assert targets.redis(free).dbsize() == 0
    assert targets.problems() == []
