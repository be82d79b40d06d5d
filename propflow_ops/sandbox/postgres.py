"""The PostgreSQL side of the sandbox: a real server, embedded (pgserver's binaries) or external.

Embedded: ``initdb`` in the sandbox directory, a unix socket only, role
``propflow`` with the canary password (scram), ``max_connections = 40``.
External (only when named by the sandbox's own option ``--sandbox-database-url`` /
``PROPFLOW_SANDBOX_DATABASE_URL``, never by a target variable): a database
``propflow_sandbox_<random>`` that the sandbox creates there itself (``CREATE DATABASE`` fails if the
name exists: nothing is taken over) and its template; the sandbox drops only the databases it created,
and never a setting of the server (scenarios that would change the server for everyone, such as
holding most of ``max_connections``, are refused on an external server).

The schema comes from the sample backend's Alembic migrations; after seeding, the
database is copied to a template so that a reset is a fast ``CREATE DATABASE ...
TEMPLATE``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from . import canaries, dataset, isolation

# The injected idle-in-transaction and long-query sessions are at least this old when their scenario returns.
SESSION_MIN_AGE_S = 2.0

log = logging.getLogger(__name__)

APP_NAME = "propflow-api"
MAX_CONNECTIONS = 40
PG_CONF = {
    "listen_addresses": "''",
    "max_connections": str(MAX_CONNECTIONS),
    "superuser_reserved_connections": "1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "track_counts": "on",
}
HBA = "local all postgres trust\nlocal all all scram-sha-256\n"
TABLES = (
    "users",
    "properties",
    "units",
    "tenants",
    "maintenance_requests",
    "photos",
    "otp_codes",
    "notifications",
)


class PostgresWorld:
    """A real PostgreSQL server with the PropFlow database."""

    def __init__(self, base_dir: Path, external_url: str | None = None) -> None:
        self.base_dir = base_dir
        self.external_url = external_url
        self.pgdata = base_dir / "pg"
        self.socket_dir = self.pgdata
        self.dbname = "propflow" if not external_url else f"propflow_sandbox_{secrets.token_hex(6)}"
        self.template = f"{self.dbname}_tpl"
        self._created: list[str] = []  # databases this sandbox created on an external server
        self.user = "propflow"
        self.password = canaries.CANARY_DB_PASSWORD
        self._system_user: str | None = None
        self._server_running = False
        self._held: list[psycopg.Connection[Any]] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # --- connection strings ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the PropFlow database (what PROPFLOW_DATABASE_URL says)."""
        if self.external_url:
            return (
                make_url(self.external_url)
                .set(drivername="postgresql+psycopg", database=self.dbname)
                .render_as_string(hide_password=False)
            )
        return (
            f"postgresql+psycopg://{self.user}:{quote(self.password, safe='')}@/{self.dbname}"
            f"?host={self.socket_dir}"
        )

    def app_conninfo(self, **extra: Any) -> dict[str, Any]:
        if self.external_url:
            u = make_url(self.external_url)
            info: dict[str, Any] = {
                "host": u.host or u.query.get("host"),
                "port": u.port,
                "user": u.username,
                "password": u.password,
                "dbname": self.dbname,
            }
        else:
            info = {
                "host": str(self.socket_dir),
                "user": self.user,
                "password": self.password,
                "dbname": self.dbname,
            }
        info.update({"connect_timeout": 3, "application_name": APP_NAME})
        info.update(extra)
        return {k: v for k, v in info.items() if v is not None}

    def admin_conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        if self.external_url:
            info = self.app_conninfo(dbname=make_url(self.external_url).database or "postgres")
            info["application_name"] = "propflow-sandbox"
            if dbname != "postgres":
                info["dbname"] = dbname
            return info
        return {
            "host": str(self.socket_dir),
            "user": "postgres",
            "dbname": dbname,
            "connect_timeout": 3,
            "application_name": "propflow-sandbox",
        }

    def connect(self, **extra: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.app_conninfo(**extra))

    @contextlib.contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(**self.admin_conninfo(dbname), autocommit=True) as conn:
            yield conn

    # --- embedded server ---------------------------------------------------------------------

    def _pg(self, tool: str, args: list[str]) -> None:
        cmd = [str(_bin_path() / tool), "-D", str(self.pgdata), *args]
        subprocess.run(
            cmd,
            check=True,
            user=self._system_user,
            timeout=60,
            env=isolation.clean(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _init_embedded(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if len(str(self.pgdata)) > 80:
            import tempfile

            self.socket_dir = Path(tempfile.mkdtemp(prefix="pfpg-"))
        if os.geteuid() == 0:
            import pwd

            # its import warns about XDG_RUNTIME_DIR: the package's own filter (propflow_ops/__init__.py) hides it
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._system_user = "pgserver"
            ensure_user_exists(self._system_user)
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(_bin_path())
            pw = pwd.getpwnam(self._system_user)
            for path in {self.pgdata, self.socket_dir}:
                os.chown(path, pw.pw_uid, pw.pw_gid)
                path.chmod(0o700 if path == self.pgdata else 0o777)
        self._pg(
            "initdb", ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"]
        )
        conf = dict(PG_CONF, unix_socket_directories=f"'{self.socket_dir}'")
        with (self.pgdata / "postgresql.conf").open("a") as fh:
            fh.write("\n# propflow sandbox\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
        (self.pgdata / "pg_hba.conf").write_text(HBA)

    def start_server(self) -> None:
        if self.external_url or self._server_running:
            return
        self._pg("pg_ctl", ["-w", "-t", "30", "-l", str(self.pgdata / "server.log"), "start"])
        self._server_running = True

    def stop_server(self) -> None:
        """Stop the embedded server for real (the db-down scenario); no-op for an external one."""
        self.release()
        if self.external_url or not self._server_running:
            return
        self._pg("pg_ctl", ["-w", "-t", "30", "-m", "fast", "stop"])
        self._server_running = False

    @property
    def running(self) -> bool:
        return self._server_running if not self.external_url else True

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, alembic_ini: Path) -> None:
        if not self.external_url:
            self._init_embedded()
            self.start_server()
            with self.admin() as conn:
                conn.execute(
                    sql.SQL("CREATE ROLE propflow LOGIN PASSWORD {}").format(sql.Literal(self.password))
                )
                conn.execute("CREATE DATABASE propflow OWNER propflow")
        else:
            self._create(self.dbname)
        self._migrate(alembic_ini)
        self._seed_rows()
        if self.external_url:
            self._create(self.template, template=self.dbname)
        else:
            with self.admin() as conn:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(self.template), sql.Identifier(self.dbname)
                    )
                )
        self.warm_indexes()

    def _create(self, db: str, template: str | None = None) -> None:
        """CREATE DATABASE on an external server; it fails if the name is taken (nothing is taken over)."""
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db))
        if template is not None:
            stmt = sql.SQL("{} TEMPLATE {} STRATEGY FILE_COPY").format(stmt, sql.Identifier(template))
        with self.admin() as conn:
            conn.execute(stmt)
        self._created.append(db)

    def _drop(self, conn: psycopg.Connection[Any], db: str) -> None:
        """DROP a database this sandbox owns: any on its embedded server, only its own on an external one."""
        if self.external_url and db not in self._created:
            raise RuntimeError(f"refusing to drop database {db!r}: this sandbox did not create it")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        if db in self._created:
            self._created.remove(db)

    def _migrate(self, alembic_ini: Path) -> None:
        from alembic import command

        command.upgrade(self.alembic_config(alembic_ini), "head")

    def alembic_config(self, alembic_ini: Path) -> Any:
        from alembic.config import Config

        cfg = Config(str(alembic_ini))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def _seed_rows(self) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            for table, rows in (
                ("users", dataset.users()),
                ("properties", dataset.properties()),
                ("units", dataset.units()),
                ("tenants", dataset.tenants()),
            ):
                cols = list(rows[0])
                stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                )
                cur.executemany(stmt, [tuple(r[c] for c in cols) for r in rows])
            conn.commit()
            self._seed_maintenance_requests()
            cur.executemany(
                "INSERT INTO photos (id, maintenance_request_id, s3_key, size_bytes, uploaded_at) "
                "VALUES (%s, %s, %s, %s, now() - make_interval(secs => %s))",
                [
                    (p.id, p.maintenance_request_id, p.s3_key, p.size_bytes, p.age_days * 86400)
                    for p in dataset.photos()
                ],
            )
            cur.execute(SEED_SMALL_TABLES_SQL)
            for table in TABLES:
                cur.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({t}, 'id'), (SELECT max(id) FROM {i}))"
                    ).format(t=sql.Literal(table), i=sql.Identifier(table))
                )
            conn.commit()
            conn.autocommit = True
            for table in TABLES:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    def _seed_maintenance_requests(self) -> None:
        """The one big table; as superuser with FK triggers off when we can (5x faster)."""
        params = {
            "n": dataset.N_MAINTENANCE_REQUESTS,
            "units": dataset.N_UNITS,
            "per": dataset.UNITS_PER_PROPERTY,
            "tenants": dataset.N_TENANT_USERS,
        }
        if self.external_url:
            with self.connect() as conn:
                conn.execute(SEED_MAINTENANCE_SQL.encode(), params)
            return
        with self.admin(self.dbname) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(SEED_MAINTENANCE_SQL.encode(), params)

    def reset(self) -> None:
        """Back to the seeded head database: restart the server, drop held sessions, re-clone."""
        self.release()
        self.start_server()
        with self.admin() as conn:
            self._drop(conn, self.dbname)
            owner = sql.SQL(" OWNER propflow") if not self.external_url else sql.SQL("")
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY{}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.template), owner
                )
            )
            if self.external_url:
                self._created.append(self.dbname)
        self.warm_indexes()

    def warm_indexes(self, lookups: int = 60) -> None:
        """Indexed lookups, as the healthy API does them, so pg_stat_user_tables shows idx_scan."""
        with self.connect(application_name=APP_NAME) as conn:
            conn.execute("SET enable_seqscan = off")
            for i in range(lookups):
                conn.execute(
                    "SELECT id, status FROM maintenance_requests WHERE property_id = %s LIMIT 20",
                    (i % dataset.N_PROPERTIES + 1,),
                ).fetchall()

    def release(self) -> None:
        """Close every session a scenario holds open (terminating their backends first)."""
        with self._lock:
            held, self._held = self._held, []
        pids = [c.info.backend_pid for c in held if not c.closed]
        if pids and self.running:
            with contextlib.suppress(Exception), self.admin() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        for thread in self._threads:
            thread.join(timeout=3)
        self._threads = []
        for c in held:
            with contextlib.suppress(Exception):
                c.close()

    def stop(self) -> None:
        self.release()
        if self.external_url:
            with contextlib.suppress(Exception), self.admin() as conn:
                for db in list(reversed(self._created)):
                    self._drop(conn, db)
            return
        try:
            # also when a Ctrl-C cut `pg_ctl start` short: the postmaster may be up without our knowing
            if self._server_running or (self.pgdata / "postmaster.pid").exists():
                try:
                    self._pg("pg_ctl", ["-w", "-t", "8", "-m", "fast", "stop"])
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                        self._pg("pg_ctl", ["-w", "-t", "5", "-m", "immediate", "stop"])
                    self._kill_postmaster()
                self._server_running = False
        finally:
            if self.socket_dir != self.pgdata:
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """Last resort of a bounded stop: SIGKILL the postmaster named in postmaster.pid (its backends
        notice and exit)."""
        import signal

        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    # --- fault helpers -----------------------------------------------------------------------

    def hold(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._held.append(conn)

    def hold_connections(self, count: int) -> int:
        opened = 0
        for _ in range(count):
            try:
                conn = self.connect(autocommit=True)
            except psycopg.OperationalError:
                break
            self.hold(conn)
            opened += 1
        return opened

    def max_connections(self) -> int:
        with self.admin() as conn:
            row = conn.execute("SHOW max_connections").fetchone()
        return int(row[0]) if row else MAX_CONNECTIONS

    def client_backends(self) -> int:
        with self.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()
        return int(row[0]) if row else 0

    def idle_in_transaction(self) -> None:
        conn = self.connect()
        conn.execute(
            "UPDATE maintenance_requests SET status = 'in_progress', updated_at = now() WHERE id = 1"
        )
        self.hold(conn)
        self._wait_aged(conn.info.backend_pid, "idle in transaction", "state_change")

    def long_query(self, seconds: int = 3600) -> None:
        conn = self.connect(autocommit=True)
        self.hold(conn)
        started = threading.Event()

        def run() -> None:
            started.set()
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_sleep(%s)", (seconds,))

        thread = threading.Thread(target=run, name="pg-long-query", daemon=True)
        thread.start()
        self._threads.append(thread)
        started.wait(2)
        self._wait_aged(conn.info.backend_pid, "active", "query_start")

    def _wait_aged(self, pid: int, state: str, since: str, age_s: float = SESSION_MIN_AGE_S) -> None:
        """Return once session ``pid`` is in ``state`` and ``since`` is ``age_s`` old (at most 10 s): a runbook
        started at once (a warm kernel) then sees a session past the lowered test thresholds, never a newborn."""
        column = {"query_start": "query_start", "state_change": "state_change"}[since]
        deadline = time.monotonic() + 10
        with self.connect(autocommit=True, application_name="propflow-sandbox-probe") as probe:
            while time.monotonic() < deadline:
                row = probe.execute(
                    f"SELECT extract(epoch FROM clock_timestamp() - {column}) FROM pg_stat_activity "
                    "WHERE pid = %s AND state = %s",
                    (pid, state),
                ).fetchone()
                if row and row[0] is not None and float(row[0]) >= age_s:
                    return
                time.sleep(0.1)

    def execute(self, statement: str, params: tuple[Any, ...] | None = None) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(statement.encode(), params)

    def block_connections(self) -> None:
        """External server stand-in for 'database down': refuse new connections, drop the open ones."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(self.dbname))
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.dbname,)
            )

    def row_counts(self) -> dict[str, int]:
        with self.connect(application_name="propflow-sandbox") as conn:
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            }
            # a table a migration has not created (yet) is simply absent, not an unreachable database
            return {
                t: int(
                    conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
                )
                for t in TABLES
                if t in present
            }

    def alembic_revision(self) -> list[str]:
        with self.connect(application_name="propflow-sandbox") as conn:
            return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version").fetchall())


def _bin_path() -> Path:
    """PostgreSQL binaries of the pgserver wheel."""
    from pgserver._commands import POSTGRES_BIN_PATH  # its import's XDG warning: see propflow_ops/__init__.py

    return Path(POSTGRES_BIN_PATH)


SEED_MAINTENANCE_SQL = """
INSERT INTO maintenance_requests
    (id, property_id, unit_id, tenant_id, title, description, status, priority, created_at, updated_at)
SELECT g,
       ((g - 1) %% %(units)s) / %(per)s + 1,
       (g - 1) %% %(units)s + 1,
       CASE WHEN (g - 1) %% %(units)s + 1 <= %(tenants)s THEN (g - 1) %% %(units)s + 1 END,
       (ARRAY['Leaking tap', 'Broken window latch', 'No hot water', 'AC not cooling', 'Door lock jammed'])[g %% 5 + 1],
       'Reported by tenant through the app',
       (ARRAY['open', 'in_progress', 'resolved', 'closed', 'closed'])[g %% 5 + 1],
       (ARRAY['low', 'normal', 'normal', 'high'])[g %% 4 + 1],
       now() - (%(n)s - g) * interval '9 minutes',
       now() - (%(n)s - g) * interval '9 minutes' + interval '2 hours'
FROM generate_series(1, %(n)s) AS g
"""

SEED_SMALL_TABLES_SQL = """
INSERT INTO otp_codes (id, phone, code_hash, expires_at, consumed_at, created_at)
SELECT g, u.phone, md5('otp' || g), now() - g * interval '1 hour' + interval '5 minutes',
       CASE WHEN g % 3 = 0 THEN NULL ELSE now() - g * interval '1 hour' + interval '1 minute' END,
       now() - g * interval '1 hour'
FROM generate_series(1, 60) AS g JOIN users u ON u.id = 10 + (g % 150) + 1;
INSERT INTO notifications (id, user_id, channel, provider, template, status, error_code, created_at)
SELECT g, 10 + (g % 150) + 1, CASE WHEN g % 2 = 0 THEN 'sms' ELSE 'whatsapp' END,
       CASE WHEN g % 2 = 0 THEN 'twilio' ELSE 'whatsapp' END,
       (ARRAY['otp', 'maintenance_status', 'rent_reminder'])[g % 3 + 1], 'delivered', NULL,
       now() - g * interval '17 minutes'
FROM generate_series(1, 400) AS g;
"""
