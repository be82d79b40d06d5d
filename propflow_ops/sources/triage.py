"""The triage sweep's fetches: the cheapest read-only signal of every component, fetched concurrently.

Every fetch runs in a thread pool with short timeouts and never raises: a value, or a
:class:`~propflow_ops.errors.FetchError` the checks report as ``error``. Values that hold
secrets (the task definition's environment, URLs) stay in memory and are never displayed.
Nothing here changes anything: the OTP route is probed with an empty body (a validation error
is the healthy answer; no phone number, so nothing is sent).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops.errors import FetchError
from propflow_ops.records import AlembicSignals, DatabaseSignals, RedisProbe
from propflow_ops.results import Fetched
from propflow_ops.signals import TriageSignals
from propflow_ops.urls import health_url

OTP_PATH = "/api/v1/auth/login/otp"
DEFAULT_TIMEOUT_S = 3.0


@dataclass
class TriageParams:
    cluster: str = "propflow"
    service: str = "propflow-api"
    task_family: str = "propflow-api"
    log_group: str = "/ecs/propflow-api"
    db_instance: str = "propflow-db"
    bucket: str = "propflow-uploads"
    cache_cluster: str = "propflow-redis"
    ws_token: str = "triage-probe"
    photo_keys_query: str = "SELECT s3_key FROM photos"
    models: str = ""
    window_minutes: int = 60
    timeout_s: float = DEFAULT_TIMEOUT_S
    budget_s: float = 25.0


#: What :func:`gather` returns (one typed field per signal; the checks read it).
Signals = TriageSignals


def _error_text(exc: BaseException) -> str:
    from propflow_ops.sources.fetch import error_text

    return error_text(exc)


class _Once:
    """A value fetched once and shared by the threads that need it (the task definition)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None

    def __call__(self) -> Any:
        with self.lock:
            if not self.done:
                try:
                    self.value = self.fn()
                except Exception as exc:  # noqa: BLE001 - returned as the value
                    self.value = FetchError(_error_text(exc))
                self.done = True
            return self.value


def sample_inventory(bucket: str, *, max_keys: int = 1000) -> dict[str, Any]:
    """The first page of objects and of incomplete multipart uploads (a bounded sample, not the bucket);
    ``truncated`` when the bucket holds more. Raises when the bucket cannot be listed."""
    from propflow_ops.sources import aws
    from propflow_ops.sources.s3 import MULTIPART_COLUMNS, OBJECT_COLUMNS

    s3 = aws.client("s3")
    page = s3.list_objects_v2(Bucket=bucket, MaxKeys=max_keys)
    ups = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=max_keys)
    objects = pd.DataFrame(
        [
            (o["Key"], int(o.get("Size", 0)), o.get("LastModified"), o.get("StorageClass"))
            for o in page.get("Contents", [])
        ],
        columns=OBJECT_COLUMNS,
    )
    objects["last_modified"] = pd.to_datetime(objects["last_modified"], utc=True)
    multipart = pd.DataFrame(
        [(u["Key"], u["UploadId"], u.get("Initiated")) for u in ups.get("Uploads", [])],
        columns=MULTIPART_COLUMNS,
    )
    multipart["initiated"] = pd.to_datetime(multipart["initiated"], utc=True)
    return {
        "objects": objects,
        "multipart": multipart,
        "pages": 1,
        "truncated": bool(page.get("IsTruncated")),
    }


def _database_probe(task: _Once, timeout_s: float) -> DatabaseSignals:
    """SELECT 1, pg_stat_activity and max_connections over one short-timeout engine (the last two only when
    the ping answered)."""
    from propflow_ops.sources import db as dbsrc
    from propflow_ops.sources.ecs import TaskDatabaseUrl

    td = task()
    task_url = TaskDatabaseUrl(env=td.get("env") or {}) if isinstance(td, dict) else None
    db = dbsrc.connect(task_url, connect_timeout_s=max(1, int(timeout_s)), statement_timeout_ms=5000)
    configured = db.configured or bool(db.error)
    if not configured:
        return DatabaseSignals(False, db.host, db.source)
    try:
        ping = db.ping()
        if ping.value is not None:
            activity = db.fetch(dbsrc.activity)
            max_connections = db.fetch(dbsrc.max_connections)
        else:
            down = FetchError("database unreachable", unreachable=getattr(ping.error, "unreachable", False))
            activity = Fetched(None, down, f"activity@{db.host}")
            max_connections = Fetched(None, down, f"max_connections@{db.host}")
    finally:
        if db.engine is not None:
            db.engine.dispose()
    return DatabaseSignals(True, db.host, db.source, ping, activity, max_connections)


def _redis_probe(task: _Once, timeout_s: float) -> Fetched[RedisProbe]:
    """PING (once), INFO, CONFIG and pub/sub channels of the Redis the tasks use (``elasticache.redis_probe``)."""
    from propflow_ops.sources import elasticache

    td = task()
    url, source = elasticache.resolve_redis_url(td.get("env") if isinstance(td, dict) else None)
    return elasticache.redis_probe(url, source, timeout_s=timeout_s, pings=1)


def _referenced(task: _Once, query: str, timeout_s: float) -> set[str]:
    from propflow_ops.sources import s3

    url = os.environ.get("PROPFLOW_DATABASE_URL")
    if not url:
        td = task()
        url = (td.get("env") or {}).get("DATABASE_URL") if isinstance(td, dict) else None
    return s3.referenced_keys(query, url, timeout_s=int(max(timeout_s, 1)))


def _alembic(models: str) -> AlembicSignals:
    """The Fetched of ``alembic.read_state`` and of ``alembic.schema_drift``."""
    from propflow_ops.sources import alembic

    return AlembicSignals(alembic.read_state(), alembic.schema_drift(models=models))


def _preload() -> None:
    """Import in this thread what the workers import lazily: concurrent first imports of sqlalchemy in
    several threads fail with "partially initialized module" (seen as a triage error on a healthy world)."""
    import importlib

    for name in (
        "sqlalchemy",
        "sqlalchemy.dialects.postgresql.psycopg",
        "psycopg",
        "alembic.config",
        "alembic.script",
        "alembic.runtime.migration",
        "alembic.autogenerate",
        "redis",
        "websockets.sync.client",
    ):
        importlib.import_module(name)


def gather(p: TriageParams, *, now: datetime | None = None, workers: int = 24) -> Signals:
    """Fetch every signal concurrently; anything not back within ``budget_s`` is an error."""
    from propflow_ops.sources import ecs, elasticache, http, logs, rds, s3, twilio, whatsapp
    from propflow_ops.sources.fetch import fetch

    _preload()

    end = now or datetime.now(UTC)
    start = end - timedelta(minutes=p.window_minutes)
    api = (os.environ.get("PROPFLOW_API_URL") or "https://api.propflow.com").rstrip("/")
    t = p.timeout_s
    task = _Once(lambda: s3.service_task_definition(p.cluster, p.service, p.task_family))
    twilio_cfg = twilio.config()
    jobs: dict[str, Callable[[], Any]] = {
        "health": lambda: http.probe(health_url(api), timeout_s=t, retries=0),
        "otp_route": lambda: http.probe(api + OTP_PATH, method="POST", json_body={}, timeout_s=t, retries=0),
        "ws": lambda: http.ws_handshake(http.ws_url(api, p.ws_token), timeout_s=t),
        "service": lambda: ecs.service(p.cluster, p.service),
        "stopped": lambda: ecs.stopped_tasks(p.cluster, p.service, end - timedelta(minutes=15)),
        "task": task,
        "settings": lambda: fetch(twilio.task_settings, p.cluster, p.service, p.task_family),
        "rds": lambda: rds.db_instance(p.db_instance),
        "database": lambda: _database_probe(task, t),
        "cache": lambda: elasticache.cache_cluster(p.cache_cluster),
        "redis": lambda: _redis_probe(task, t),
        "bucket": lambda: s3.bucket_status(p.bucket),
        "policy": lambda: s3.bucket_policy(p.bucket),
        "sample": lambda: sample_inventory(p.bucket),
        "referenced": lambda: _referenced(task, p.photo_keys_query, t),
        "logs": lambda: logs.fetch_log_events(p.log_group, start, end),
        "twilio_account": lambda: twilio.account(twilio_cfg, timeout_s=t),
        "twilio_balance": lambda: twilio.balance(twilio_cfg, timeout_s=t),
        "whatsapp": lambda: whatsapp.phone_number(whatsapp.config(), timeout_s=t),
    }
    # The slowest first (the alembic comparison takes the longest), so the critical path starts at once.
    jobs = {"alembic": lambda: _alembic(p.models), **jobs}
    got: dict[str, Fetched[Any]] = {}
    t0 = time.monotonic()

    def timed(name: str, fn: Callable[[], Any]) -> None:
        s = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the check to report as error
            value = FetchError(_error_text(exc))
        seconds = time.monotonic() - s
        if isinstance(value, Fetched):  # a source that made its own result (its target names what it asked)
            got[name] = Fetched(value.value, value.error, value.target or name, seconds)
            return
        got[name] = (
            Fetched(None, value, name, seconds)
            if isinstance(value, BaseException)
            else Fetched(value, None, name, seconds)
        )

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="triage")
    futures = {pool.submit(timed, name, fn): name for name, fn in jobs.items()}
    wait(futures, timeout=p.budget_s)
    pool.shutdown(wait=False, cancel_futures=True)
    done = {
        name: got.get(name)
        or Fetched(
            None, FetchError(f"no answer within the triage budget of {p.budget_s:g} s"), name, p.budget_s
        )
        for name in jobs
    }
    return TriageSignals(**done, start=start, end=end, total_ms=(time.monotonic() - t0) * 1000)
