"""The Sandbox: one simulated PropFlow production on this machine, and scenario switching."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import redis

from . import canaries, isolation
from . import fleet as fleet_mod
from .aws import BUCKET, CLUSTER, DB_INSTANCE, LOG_GROUP, SERVICE, AwsWorld
from .logs import DEFAULT_DIALECT, LogBuilder, baseline, validate_dialect
from .notify_standins import NotifyStandins
from .postgres import PostgresWorld
from .redisworld import RedisWorld
from .standins import GRAPH_VERSION, StandinServers, StandinState

log = logging.getLogger(__name__)
_LIVE: list[Sandbox] = []  # moto's backends are process-global: one live sandbox per process
BACKEND_DIR = Path(__file__).parent / "backend"
LOCK_TABLE = "propflow-ops-locks"
# Scenarios that change a server for everyone on it: only on the sandbox's own embedded server.
SERVER_WIDE_PG = frozenset({"db-pool-exhausted"})  # holds 90% of the server's max_connections
SERVER_WIDE_REDIS = frozenset({"redis-down", "redis-maxclients", "redis-memory-pressure"})  # CONFIG SET
JOIN_TIMEOUT_S = 5.0  # how long an interrupted start waits for its other parts to finish starting


class SandboxRefused(ValueError):
    """A sandbox configuration that would touch something the sandbox does not own."""


class Sandbox:
    """A real, local PropFlow world: moto (AWS), PostgreSQL, Redis and HTTP stand-ins.

    ``Sandbox(scenarios=("db-down",))`` starts healthy and injects the named
    faults; ``use(*names)`` switches to another set. ``env`` points any client
    (boto3, SQLAlchemy, redis-py, urllib) at this world; ``environ()`` is the whole environment of a
    process that should see only this world.

    The sandbox never reads a target variable (``PROPFLOW_DATABASE_URL``, ``AWS_PROFILE``, ... see
    :mod:`.isolation`): it says on stderr which ones it ignores. PostgreSQL and Redis are embedded unless
    ``database_url``/``redis_url`` (default: ``PROPFLOW_SANDBOX_DATABASE_URL``/``_REDIS_URL``) name a
    server for the sandbox, where it uses only a database it creates / an empty db number it claims.
    """

    def __init__(
        self,
        scenarios: Iterable[str] = (),
        *,
        base_dir: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
        log_dialect: str = DEFAULT_DIALECT,
    ) -> None:
        from .scenarios import validate

        self.scenarios: tuple[str, ...] = validate(scenarios)
        self.log_dialect = validate_dialect(
            log_dialect
        )  # how the API's log lines are written (logs.DIALECTS)
        self.database_url = database_url or os.environ.get(isolation.SANDBOX_DATABASE_URL) or None
        self.redis_url = redis_url or os.environ.get(isolation.SANDBOX_REDIS_URL) or None
        self.ignored: list[str] = []  # target variables present in the environment, ignored
        self._check_external(self.scenarios)
        self._parent_dir = Path(base_dir) if base_dir is not None else None
        self.dir = Path()
        self.aws = AwsWorld()
        self.pg: PostgresWorld | None = None
        self.redis: RedisWorld | None = None
        self.http_state = StandinState()
        self.http: StandinServers | None = None
        self.fleet = fleet_mod.Fleet()
        self.notify = (
            NotifyStandins()
        )  # Slack/PagerDuty stand-ins, the SNS topic, the sandbox's propflow-ops.toml
        self.logs: LogBuilder | None = None
        self.now = dt.datetime.now(dt.UTC)
        self.timings: dict[str, float] = {}
        self._started = False
        self._stopped = False

    # --- paths -------------------------------------------------------------------------------

    @property
    def backend_dir(self) -> Path:
        """The working copy of the sample backend (scenarios write migration files here)."""
        return self.dir / "backend"

    @property
    def alembic_ini(self) -> Path:
        return self.backend_dir / "alembic.ini"

    @property
    def versions_dir(self) -> Path:
        return self.backend_dir / "migrations" / "versions"

    def alembic_config(self) -> Any:
        assert self.pg is not None
        return self.pg.alembic_config(self.alembic_ini)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._started:
            return self
        if _LIVE:
            raise RuntimeError(
                f"{_LIVE[0]!r} is already running in this process (moto's state is "
                "process-global): stop it first, or start another sandbox in a subprocess"
            )
        t0 = time.monotonic()
        self.ignored = isolation.ignored()
        isolation.announce(self.ignored)
        isolation.scrub_libpq()  # libpq would read them at each of the sandbox's own connections
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="propflow-sandbox-", dir=self._parent_dir))
        self._started = True
        _LIVE.append(self)
        atexit.register(self.stop)
        try:
            self._copy_backend()
            self.pg = PostgresWorld(self.dir, self.database_url)
            self.redis = RedisWorld(self.dir, self.redis_url)
            self.http = StandinServers(
                self.http_state, {"database": self.check_database, "redis": self.check_redis}
            )
            self.http_state.reset()
            _parallel(
                lambda: self.pg.start(self.alembic_ini),  # type: ignore[union-attr]
                self.redis.start,
                lambda: self._start_aws(),
                self.http.start,
                self.notify.start,
                cancel=self.aws.cancel,
            )
            self.notify.write_config(self.dir, self.env)
            fleet_mod.add_alarm_rules(self.notify.config_path)
            self.timings["start_s"] = time.monotonic() - t0
            self._inject(self.scenarios)  # from here on an update_service rolls out (converge.py)
        except BaseException:
            self.stop()
            raise
        self.timings["ready_s"] = time.monotonic() - t0
        return self

    def _start_aws(self) -> None:
        self.aws.start()
        self._seed_aws()

    def _seed_aws(self) -> None:
        self.now = dt.datetime.now(dt.UTC)
        self.aws.seed(self.now)
        self.logs = LogBuilder(self.aws.state.streams, self.now, dialect=self.log_dialect)
        baseline(self.logs)
        self.notify.seed_aws(self.aws)
        fleet_mod.seed(
            self.aws, self.fleet
        )  # the evidence bucket, the alarm topic, the work queue and its DLQ
        from propflow_ops.change.lock import create_table

        create_table(self.aws.client("dynamodb"), LOCK_TABLE)  # the team-wide change lock

    def _copy_backend(self) -> None:
        shutil.rmtree(self.backend_dir, ignore_errors=True)
        shutil.copytree(BACKEND_DIR, self.backend_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def use(self, *names: str, log_dialect: str | None = None) -> None:
        """Reset everything to healthy, then inject the named scenarios (``healthy`` = no fault);
        ``log_dialect`` (when given) switches the dialect the API's logs are written in."""
        from .scenarios import validate

        scenarios = validate(names)
        self._check_external(scenarios)
        if log_dialect is not None:
            self.log_dialect = validate_dialect(log_dialect)
        if not self._started:
            self.scenarios = scenarios
            self.start()
            return
        t0 = time.monotonic()
        self.reset()
        self._inject(scenarios)
        self.scenarios = scenarios
        self.timings["use_s"] = time.monotonic() - t0

    def reset(self) -> None:
        assert self.pg is not None and self.redis is not None
        self.http_state.reset()
        self.notify.reset()
        self._copy_backend()

        def aws() -> None:
            self.aws.reset()
            self._seed_aws()

        _parallel(self.pg.reset, self.redis.reset, aws)
        self.aws.rollout.resume()  # (AwsWorld.reset paused it) from the healthy world

    def _check_external(self, names: Iterable[str]) -> None:
        """Refuse, before anything starts, a scenario that would change an external server for everyone."""
        for name in names:
            if self.database_url and name in SERVER_WIDE_PG:
                raise SandboxRefused(
                    f"scenario {name} changes server-wide state: it needs the embedded "
                    "PostgreSQL, not the external sandbox database server"
                )
            if self.redis_url and name in SERVER_WIDE_REDIS:
                raise SandboxRefused(
                    f"scenario {name} changes server-wide Redis settings (CONFIG SET, "
                    "SHUTDOWN): it needs the embedded Redis, not an external one"
                )

    def _inject(self, names: tuple[str, ...]) -> None:
        from .scenarios import SCENARIOS

        self.aws.rollout.pause()  # a scenario's own deployments are not rolled out; it states the model
        try:
            for name in names:
                SCENARIOS[name].inject(self)
            self.flush_logs()
        finally:
            self.aws.rollout.resume()  # from the injected world

    def flush_logs(self) -> None:
        if self.logs is not None and self.logs.lines:
            self.aws.put_logs(self.logs.lines)
            self.logs.lines = []

    def stop(self) -> None:
        """Stop every process and thread the sandbox started and remove its directory (idempotent)."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self.aws.cancel.set()  # a seed still running in a thread ends at its next AWS call
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        for part in (self.http, self.notify, self.redis, self.pg, self.aws):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # keep stopping the rest
                log.warning("sandbox: stopping %s failed", type(part).__name__, exc_info=True)
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what clients see --------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """What points a run at this world. ``PROPFLOW_SANDBOX_ID`` is trusted only with these very targets
        (see :mod:`propflow_ops.change.target`)."""
        from propflow_ops.change.target import MARKER, fingerprint

        env = self._env()
        env[MARKER] = fingerprint(env)
        return env

    def _env(self) -> dict[str, str]:
        assert self.pg is not None and self.redis is not None and self.http is not None
        return {
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "PROPFLOW_API_URL": self.http.url("api"),
            "PROPFLOW_DATABASE_URL": self.pg.url,
            "PROPFLOW_REDIS_URL": self.redis.url,
            "PROPFLOW_ALEMBIC_CONFIG": str(self.alembic_ini),
            "TWILIO_ACCOUNT_SID": canaries.TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": canaries.CANARY_TWILIO_AUTH_TOKEN,
            "PROPFLOW_TWILIO_API_URL": self.http.url("twilio"),
            "WHATSAPP_TOKEN": canaries.CANARY_WHATSAPP_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": canaries.WHATSAPP_PHONE_NUMBER_ID,
            "PROPFLOW_META_GRAPH_URL": f"{self.http.url('graph')}/{GRAPH_VERSION}",
            "PROPFLOW_SANDBOX": "1",
            "PROPFLOW_LOCK_TABLE": LOCK_TABLE,
            **self.notify.env,
            **self.fleet.env,
        }

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a process that must see only this world: ``base`` (default: this
        process's) without any target variable, then :attr:`env`."""
        return isolation.pointed_at(self.env, base)

    @property
    def otp_requests(self) -> int:
        """How many OTPs the API stand-in was asked to send."""
        return len(self.http_state.otp_requests)

    @property
    def sms_sent(self) -> int:
        return self.http_state.sms_sent

    def check_database(self) -> str | None:
        """None if PostgreSQL answers; else a short reason (used by /health)."""
        assert self.pg is not None
        try:
            with psycopg.connect(**self.pg.app_conninfo(connect_timeout=2)) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"error: {type(exc).__name__}"
        return None

    def check_redis(self) -> str | None:
        assert self.redis is not None
        try:
            client = self.redis.client(socket_timeout=1, socket_connect_timeout=1)
            client.ping()
            client.close()
        except (redis.RedisError, OSError) as exc:
            return f"error: {type(exc).__name__}"
        return None

    def snapshot(self) -> dict[str, Any]:
        """World state through public clients, to prove a read-only run changed nothing."""
        return {
            "ecs": _guard(self._snap_ecs),
            "s3": _guard(self._snap_s3),
            "rds": _guard(self._snap_rds),
            "elasticache": _guard(
                lambda: self.aws.client("elasticache").describe_cache_clusters()["CacheClusters"][0][
                    "CacheClusterStatus"
                ]
            ),
            "logs": _guard(
                lambda: sorted(
                    s["logStreamName"]
                    for s in self.aws.client("logs").describe_log_streams(logGroupName=LOG_GROUP)[
                        "logStreams"
                    ]
                )
            ),
            "database": _guard(self._snap_db),
            "redis": _guard(self._snap_redis),
            "migrations": sorted(p.name for p in self.versions_dir.glob("*.py") if p.name != "__init__.py"),
            "http": {"otp_requests": self.otp_requests, "sms_sent": self.sms_sent},
        }

    def _snap_ecs(self) -> dict[str, Any]:
        ecs = self.aws.client("ecs")
        svc = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        families = ecs.list_task_definitions(familyPrefix=SERVICE)["taskDefinitionArns"]
        return {
            "desired": svc["desiredCount"],
            "running": svc["runningCount"],
            "task_definition": svc["taskDefinition"],
            "task_definitions": sorted(families),
            "deployments": [(d["id"], d.get("rolloutState")) for d in svc["deployments"]],
            "tasks": sorted(ecs.list_tasks(cluster=CLUSTER)["taskArns"]),
        }

    def _snap_s3(self) -> dict[str, Any]:
        s3 = self.aws.client("s3")
        buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        if BUCKET not in buckets:
            return {"buckets": buckets}
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])
        ]
        policy = s3.get_bucket_policy(Bucket=BUCKET)["Policy"]
        uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return {
            "buckets": buckets,
            "object_count": len(keys),
            "keys": sorted(keys),
            "policy": policy,
            "multipart_uploads": len(uploads),
        }

    def _snap_rds(self) -> dict[str, Any]:
        rds = self.aws.client("rds").describe_db_instances()["DBInstances"]
        return {
            d["DBInstanceIdentifier"]: {
                "status": d["DBInstanceStatus"],
                "backup_retention": d["BackupRetentionPeriod"],
            }
            for d in rds
        }

    def _snap_db(self) -> dict[str, Any]:
        assert self.pg is not None
        return {"alembic_revision": self.pg.alembic_revision(), "row_counts": self.pg.row_counts()}

    def _snap_redis(self) -> dict[str, Any]:
        assert self.redis is not None
        client = self.redis.client()
        keys = self.redis.keys()
        return {
            "keys": len(keys),
            "sessions": sum(k.startswith("ws:session:") for k in keys),
            "maxclients": client.config_get("maxclients").get("maxclients"),
        }

    def __repr__(self) -> str:
        return f"Sandbox(scenarios={self.scenarios!r}, dir={str(self.dir)!r})"


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a snapshot reports what it could not read
        return {"unreachable": type(exc).__name__}


def _parallel(*fns: Callable[[], Any], cancel: threading.Event | None = None) -> None:
    """Run the callables in threads; re-raise the first error. Interrupted, set ``cancel`` (the AWS seed
    checks it at each call) and wait a bounded time for the others."""
    errors: list[BaseException] = []

    def run(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in fns[1:]]
    for thread in threads:
        thread.start()
    try:
        fns[0]()  # in this thread, uncaught: a Ctrl-C here goes straight to the bounded wait below
        for thread in threads:
            thread.join()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): let the other parts finish starting (bounded), so that the
        # caller's stop() finds every process they started, then re-raise.
        if cancel is not None:
            cancel.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise
    if errors:
        raise errors[0]


__all__ = ["Sandbox", "DB_INSTANCE"]
