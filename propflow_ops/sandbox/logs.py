"""Structured application logs of the simulated PropFlow API (what CloudWatch Logs holds).

Each JSON message has the keys ``ts`` (ISO 8601 UTC), ``level`` (INFO, WARNING,
ERROR), ``logger``, ``event`` (``request``, ``upload``, ``ws_connect``,
``ws_disconnect``, ``ws_reconnect``, ``notification``, ``db``, ``migration``,
``startup``), ``method``, ``path``, ``status`` (int), ``latency_ms`` (float),
``request_id`` and ``message``; where apt also ``provider``, ``error_code``,
``error_type``, ``client_id`` and ``duration_ms``. A few lines are plain text
(a traceback), as real containers print them.

That is the ``propflow`` dialect. The same world can be written in other dialects
(:data:`DIALECTS`, ``Sandbox(log_dialect=...)``, ``propflow-ops sandbox --log-dialect``), with
the same events at the same times, so a runbook can be proven on logs it was not written for:

- ``python-json``: python-json-logger style: ``asctime``/``levelname``/``name``/``message``,
  the request nested under ``http`` (``method``, ``url``, ``status_code``), ``duration`` in
  seconds, errors as ``exc_info`` tracebacks and ``error.code``; no ``event`` field at all.
- ``text``: plain text: gunicorn access lines (``%(h)s - - [%(t)s] "%(r)s" %(s)s %(b)s "-" "%(a)s"
  %(L)s``, response time in seconds) for successful requests, Python ``logging`` lines
  (``2026-11-27 10:00:00,123 ERROR [logger] GET /path 500 84.1ms - message``) for the rest, with
  the traceback in the same event for exceptions.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .canaries import CANARY_BEARER, CANARY_PHONE_IN, CANARY_PHONE_US

UTC = dt.UTC
BASELINE_MINUTES = 120

REQUEST_PATHS: tuple[tuple[str, str, float], ...] = (
    ("GET", "/api/v1/properties", 0.30),
    ("GET", "/api/v1/properties/{id}/units", 0.22),
    ("GET", "/api/v1/maintenance-requests", 0.20),
    ("POST", "/api/v1/maintenance-requests", 0.06),
    ("GET", "/health", 0.17),
    ("POST", "/api/v1/auth/login/otp", 0.05),
)


@dataclass(frozen=True)
class LogLine:
    stream: str
    ts: dt.datetime
    message: str

    @property
    def timestamp_ms(self) -> int:
        return int(self.ts.timestamp() * 1000)


def stream_name(task_id: str) -> str:
    return f"ecs/api/{task_id}"


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: The log dialects the sandbox can write (``propflow`` is the API's own).
DIALECTS = ("propflow", "python-json", "text")
DEFAULT_DIALECT = "propflow"


class UnknownDialectError(ValueError):
    pass


def validate_dialect(name: str | None) -> str:
    name = name or DEFAULT_DIALECT
    if name not in DIALECTS:
        raise UnknownDialectError(f"unknown log dialect {name!r} (known: {', '.join(DIALECTS)})")
    return name


def _body(
    ts: dt.datetime, level: str, event: str, message: str, rng: random.Random, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ts": _iso(ts),
        "level": level,
        "logger": fields.pop("logger", "propflow.api"),
        "event": event,
        "method": fields.pop("method", None),
        "path": fields.pop("path", None),
        "status": fields.pop("status", None),
        "latency_ms": fields.pop("latency_ms", None),
        "request_id": f"req-{rng.getrandbits(48):012x}",
        "message": message,
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def record(ts: dt.datetime, level: str, event: str, message: str, rng: random.Random, **fields: Any) -> str:
    return json.dumps(_body(ts, level, event, message, rng, **fields), separators=(",", ":"))


def _logger_of(body: dict[str, Any]) -> str:
    event = str(body.get("event") or "")
    if event == "notification":
        return "propflow.notifications"
    if event.startswith("ws_"):
        return "propflow.ws"
    return str(body.get("logger") or "propflow.api")


def _trace(body: dict[str, Any]) -> str:
    return (
        'Traceback (most recent call last):\n  File "/app/app/main.py", line 112, in dispatch\n'
        f"    return await handler(request)\n{body['error_type']}: {body['message']}"
    )


def render_python_json(body: dict[str, Any]) -> str:
    ts = dt.datetime.strptime(body["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    out: dict[str, Any] = {
        "asctime": ts.strftime("%Y-%m-%d %H:%M:%S,") + f"{ts.microsecond // 1000:03d}",
        "levelname": body["level"],
        "name": _logger_of(body),
        "message": body["message"],
    }
    http = {
        k2: body[k]
        for k, k2 in (("method", "method"), ("path", "url"), ("status", "status_code"))
        if body.get(k) is not None
    }
    if http:
        out["http"] = http
    if body.get("latency_ms") is not None:
        out["duration"] = round(float(body["latency_ms"]) / 1000.0, 6)
    out["correlation_id"] = body["request_id"]
    if body.get("error_type") and body["level"] == "ERROR":
        out["exc_info"] = _trace(body)
    error = {k2: body[k] for k, k2 in (("error_code", "code"),) if body.get(k) is not None}
    if body.get("error_type") and body["level"] != "ERROR":
        error["type"] = body["error_type"]
    if error:
        out["error"] = error
    return json.dumps(out, separators=(",", ":"))


def render_text(body: dict[str, Any], rng: random.Random) -> str:
    ts = dt.datetime.strptime(body["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    method, path, status, latency = (
        body.get("method"),
        body.get("path"),
        body.get("status"),
        body.get("latency_ms"),
    )
    event = str(body.get("event") or "")
    if (
        method
        and path
        and status
        and body["level"] == "INFO"
        and not event.startswith("ws_")
        and body["message"] in ("request completed", "OTP sent")
        or event == "upload"
        and body["level"] == "INFO"
    ):
        client = f"10.0.{rng.randrange(1, 4)}.{rng.randrange(2, 250)}"
        return (
            f'{client} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "{method} {path} HTTP/1.1" {status} '
            f'{rng.randrange(120, 9000)} "-" "okhttp/4.12.0" {float(latency or 0) / 1000:.6f}'
        )
    stamp = ts.strftime("%Y-%m-%d %H:%M:%S,") + f"{ts.microsecond // 1000:03d}"
    message = str(body["message"])
    if event.startswith("ws_"):
        code = f" (code {status})" if status and status != 101 else ""
        message = f"websocket {path} {message}{code}"
    elif method and path and status:
        lat = f" {float(latency):.1f}ms" if latency is not None else ""
        message = f"{method} {path} {status}{lat} - {message}"
    elif body.get("error_code") is not None:
        message = f"{message} (code {body['error_code']})"
    line = f"{stamp} {body['level']} [{_logger_of(body)}] {message}"
    if body.get("error_type") and body["level"] == "ERROR":
        line += "\n" + _trace(body)
    return line


def render(dialect: str, body: dict[str, Any], rng: random.Random) -> str:
    """One record in ``dialect`` (see :data:`DIALECTS`)."""
    if dialect == "python-json":
        return render_python_json(body)
    if dialect == "text":
        return render_text(body, rng)
    return json.dumps(body, separators=(",", ":"))


class LogBuilder:
    """Builds log lines over the task streams with a seeded random generator."""

    def __init__(
        self, streams: list[str], now: dt.datetime, seed: int = 11, dialect: str = DEFAULT_DIALECT
    ) -> None:
        self.streams = streams
        self.now = now
        self.rng = random.Random(seed)
        self.dialect = validate_dialect(dialect)
        self._render_rng = random.Random(seed + 1)  # the dialect's own draws leave the world's unchanged
        self.lines: list[LogLine] = []

    def at(self, minutes_ago: float, jitter_s: float = 59.0) -> dt.datetime:
        return (
            self.now - dt.timedelta(minutes=minutes_ago) + dt.timedelta(seconds=self.rng.uniform(0, jitter_s))
        )

    def add(self, ts: dt.datetime, level: str, event: str, message: str, **fields: Any) -> None:
        ts = min(ts, self.now - dt.timedelta(milliseconds=1))
        stream = fields.pop("stream", None) or self.rng.choice(self.streams)
        body = _body(ts, level, event, message, self.rng, **fields)
        self.lines.append(LogLine(stream, ts, render(self.dialect, body, self._render_rng)))

    def add_text(self, ts: dt.datetime, text: str, stream: str | None = None) -> None:
        self.lines.append(LogLine(stream or self.streams[0], ts, text))

    def per_minute(self, minutes: int, count: int, emit: Callable[[dt.datetime], None]) -> None:
        """Call ``emit`` ``count`` times a minute over the last ``minutes`` minutes."""
        for m in range(minutes, 0, -1):
            for _ in range(count):
                emit(self.at(m))

    def latency(self, median_ms: float = 45.0, sigma: float = 0.55) -> float:
        return round(self.rng.lognormvariate(0, sigma) * median_ms, 1)

    def client_id(self) -> str:
        return f"c-{self.rng.randrange(1000, 9999)}"

    def sorted_lines(self) -> list[LogLine]:
        return sorted(self.lines, key=lambda line: line.ts)


def _path(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    acc = 0.0
    for method, path, weight in REQUEST_PATHS:
        acc += weight
        if r <= acc:
            return method, path.replace("{id}", str(rng.randrange(1, 26)))
    return "GET", "/api/v1/properties"


def _request(b: LogBuilder, ts: dt.datetime) -> None:
    method, path = _path(b.rng)
    status = 201 if method == "POST" else 200
    latency = 3.0 + b.rng.random() * 4 if path == "/health" else b.latency()
    r = b.rng.random()
    if r < 0.004:
        b.add(
            ts,
            "ERROR",
            "request",
            "Internal Server Error",
            method=method,
            path=path,
            status=500,
            latency_ms=latency,
            error_type="KeyError",
        )
        return
    if r < 0.015:
        status = 404 if method == "GET" else 422
    message = "OTP sent" if path.endswith("/otp") else "request completed"
    b.add(ts, "INFO", "request", message, method=method, path=path, status=status, latency_ms=latency)


def _upload(b: LogBuilder, ts: dt.datetime) -> None:
    b.add(
        ts,
        "INFO",
        "upload",
        "photo uploaded to s3://propflow-uploads",
        method="POST",
        path="/api/v1/photos/upload",
        status=201,
        latency_ms=b.latency(220.0, 0.35),
    )


def _ws(b: LogBuilder, ts: dt.datetime) -> None:
    kind = b.rng.choice(("ws_connect", "ws_connect", "ws_disconnect", "ws_disconnect", "ws_reconnect"))
    token = f"wst_{b.rng.getrandbits(32):08x}"
    messages = {
        "ws_connect": "websocket connected",
        "ws_disconnect": "websocket closed (1000)",
        "ws_reconnect": "client reconnected",
    }
    b.add(
        ts,
        "INFO",
        kind,
        messages[kind],
        method="GET",
        path=f"/ws/{token}",
        status=101,
        latency_ms=b.latency(8.0),
        client_id=b.client_id(),
    )


def _notification(b: LogBuilder, ts: dt.datetime) -> None:
    provider = b.rng.choice(("twilio", "whatsapp"))
    b.add(
        ts,
        "INFO",
        "notification",
        f"{provider} message queued: maintenance status update",
        provider=provider,
        status=200,
        latency_ms=b.latency(310.0, 0.3),
    )


def baseline(b: LogBuilder, minutes: int = BASELINE_MINUTES) -> None:
    """A healthy API: ~20-40 lines a minute, a handful of errors, p95 latency ~120 ms."""
    _startup(b, minutes)
    for m in range(minutes, 0, -1):
        for _ in range(b.rng.randrange(18, 32)):
            _request(b, b.at(m))
        if m % 2 == 0:
            _upload(b, b.at(m))
        for _ in range(b.rng.randrange(1, 4)):
            _ws(b, b.at(m))
        if m % 3 == 0:
            _notification(b, b.at(m))
        if m % 5 == 0:
            b.add(b.at(m), "INFO", "db", "pool status size=20 checked_out=3 overflow=0", logger="propflow.db")
    _planted(b, minutes)


def _startup(b: LogBuilder, minutes: int) -> None:
    for stream in b.streams:
        t0 = b.now - dt.timedelta(minutes=minutes + 2)
        b.add(t0, "INFO", "startup", "Started server process [1]", stream=stream, logger="uvicorn")
        b.add(
            t0 + dt.timedelta(seconds=1),
            "INFO",
            "migration",
            "alembic: database is at head 5b6c7d8e9fa6, nothing to upgrade",
            stream=stream,
            logger="alembic.runtime.migration",
        )
        b.add(
            t0 + dt.timedelta(seconds=2),
            "INFO",
            "startup",
            "Application startup complete.",
            stream=stream,
            logger="uvicorn",
        )


def _planted(b: LogBuilder, minutes: int) -> None:
    """A traceback, a leaked bearer token and phone numbers: what a redactor must cope with."""
    ts = b.at(minutes * 0.6)
    b.add(
        ts,
        "ERROR",
        "request",
        "Internal Server Error",
        method="GET",
        path="/api/v1/properties/7/units",
        status=500,
        latency_ms=61.2,
        error_type="KeyError",
        stream=b.streams[0],
    )
    b.add_text(ts, "Traceback (most recent call last):", b.streams[0])
    b.add_text(ts, '  File "/app/app/api/v1/units.py", line 88, in list_units', b.streams[0])
    b.add_text(ts, "KeyError: 'unit_id'", b.streams[0])
    b.add(
        b.at(minutes * 0.4),
        "WARNING",
        "request",
        f"rejected request: invalid token in header Authorization: Bearer {CANARY_BEARER}",
        method="GET",
        path="/api/v1/maintenance-requests",
        status=401,
        latency_ms=4.1,
    )
    b.add_text(
        b.at(minutes * 0.3),
        f"DEBUG outgoing headers {{'Authorization': 'Bearer {CANARY_BEARER}'}}",
        b.streams[-1],
    )
    for i, phone in enumerate((CANARY_PHONE_IN, CANARY_PHONE_US, CANARY_PHONE_IN)):
        b.add(
            b.at(minutes * (0.2 + 0.25 * i)),
            "INFO",
            "notification",
            f"OTP sent to {phone} via twilio",
            provider="twilio",
            status=201,
            latency_ms=b.latency(290.0, 0.3),
        )


# --- fault spikes, always in the last minutes -------------------------------------------------


def oom_spike(b: LogBuilder, minutes: int = 15) -> None:
    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "request",
            "502 Bad Gateway: upstream worker killed",
            method="GET",
            path="/api/v1/properties",
            status=502,
            latency_ms=b.latency(900.0),
            error_type="WorkerKilled",
        )

    b.per_minute(minutes, 8, emit)
    for m in (14, 6):
        ts = b.at(m)
        b.add(
            ts,
            "ERROR",
            "startup",
            "Worker (pid:7) was sent SIGKILL! Perhaps out of memory?",
            logger="gunicorn.error",
            error_type="OutOfMemory",
        )
        b.add_text(ts, "MemoryError", b.streams[0])


def bad_deploy_spike(b: LogBuilder, stream: str, minutes: int = 15) -> None:
    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "startup",
            "Application startup failed. Exiting.",
            logger="uvicorn",
            error_type="ImportError",
            stream=stream,
        )

    b.per_minute(minutes, 2, emit)
    b.add_text(b.at(3), "ImportError: cannot import name 'PhotoService' from 'app.services'", stream)


def db_down_spike(b: LogBuilder, minutes: int = 12) -> None:
    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "db",
            "(psycopg.OperationalError) connection failed: connection to server at "
            '"10.0.3.12", port 5432 failed: Connection refused',
            logger="sqlalchemy.pool",
            error_type="OperationalError",
            status=500,
            method="GET",
            path="/api/v1/properties",
            latency_ms=b.latency(30.0),
        )

    b.per_minute(minutes, 10, emit)


def pool_exhausted_spike(b: LogBuilder, minutes: int = 15) -> None:
    def emit(ts: dt.datetime) -> None:
        if b.rng.random() < 0.6:
            msg = (
                "QueuePool limit of size 20 overflow 10 reached, connection timed out, timeout 30.00 "
                "(Background on this error at: https://sqlalche.me/e/20/3o7r)"
            )
            etype = "TimeoutError"
        else:
            msg = "(psycopg.OperationalError) connection failed: FATAL:  sorry, too many clients already"
            etype = "OperationalError"
        b.add(
            ts,
            "ERROR",
            "db",
            msg,
            logger="sqlalchemy.pool",
            error_type=etype,
            status=500,
            method="GET",
            path="/api/v1/maintenance-requests",
            latency_ms=round(30000 + b.rng.random() * 50, 1),
        )

    b.per_minute(minutes, 6, emit)


def latency_spike(b: LogBuilder, minutes: int = 20) -> None:
    def slow_request(ts: dt.datetime) -> None:
        method, path = _path(b.rng)
        b.add(
            ts,
            "INFO",
            "request",
            "request completed",
            method=method,
            path=path,
            status=201 if method == "POST" else 200,
            latency_ms=b.latency(1600.0, 0.35),
        )

    def slow_query(ts: dt.datetime) -> None:
        duration = round(900 + b.rng.random() * 4000, 1)
        b.add(
            ts,
            "WARNING",
            "db",
            f"slow query: {duration} ms SELECT maintenance_requests.* FROM "
            "maintenance_requests WHERE maintenance_requests.property_id = %(property_id)s",
            logger="propflow.db",
            duration_ms=duration,
        )

    b.per_minute(minutes, 30, slow_request)
    b.per_minute(minutes, 4, slow_query)


def upload_error_spike(b: LogBuilder, error_type: str, minutes: int = 15) -> None:
    texts = {
        "NoSuchBucket": "The specified bucket does not exist",
        "AccessDenied": "Access Denied",
    }

    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "upload",
            f"Upload failed: An error occurred ({error_type}) when calling the PutObject operation: "
            f"{texts.get(error_type, error_type)}",
            method="POST",
            path="/api/v1/photos/upload",
            status=500,
            latency_ms=b.latency(140.0),
            error_type=error_type,
            error_code=error_type,
        )

    b.per_minute(minutes, 4, emit)


def redis_down_spike(b: LogBuilder, minutes: int = 12) -> None:
    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "ws_disconnect",
            "Error 111 connecting to propflow-redis.x1y2z3.0001.use1.cache.amazonaws.com:6379. Connection refused.",
            method="GET",
            path=f"/ws/wst_{b.rng.getrandbits(32):08x}",
            status=1011,
            latency_ms=b.latency(5.0),
            error_type="ConnectionError",
            client_id=b.client_id(),
        )

    b.per_minute(minutes, 8, emit)
    reconnect_storm(b, minutes, per_minute=10)


def reconnect_storm(b: LogBuilder, minutes: int = 15, per_minute: int = 14) -> None:
    def emit(ts: dt.datetime) -> None:
        client = b.client_id()
        b.add(
            ts,
            "WARNING",
            "ws_disconnect",
            "websocket closed abnormally (1006)",
            method="GET",
            path=f"/ws/wst_{b.rng.getrandbits(32):08x}",
            status=1006,
            latency_ms=b.latency(5.0),
            client_id=client,
        )
        b.add(
            ts + dt.timedelta(seconds=1),
            "INFO",
            "ws_reconnect",
            "client reconnected",
            method="GET",
            path=f"/ws/wst_{b.rng.getrandbits(32):08x}",
            status=101,
            latency_ms=b.latency(9.0),
            client_id=client,
        )

    b.per_minute(minutes, per_minute, emit)


def ws_handshake_spike(b: LogBuilder, minutes: int = 15) -> None:
    def emit(ts: dt.datetime) -> None:
        b.add(
            ts,
            "ERROR",
            "ws_connect",
            "WebSocket handshake failed: upgrade rejected (503)",
            method="GET",
            path=f"/ws/wst_{b.rng.getrandbits(32):08x}",
            status=503,
            latency_ms=b.latency(4.0),
            error_type="HandshakeError",
            client_id=b.client_id(),
        )

    b.per_minute(minutes, 6, emit)


TWILIO_ERRORS = (
    (30003, "Unreachable destination handset"),
    (30005, "Unknown destination handset"),
    (30007, "Message filtered (carrier violation)"),
    (21211, "Invalid 'To' Phone Number"),
    (21610, "Attempt to send to unsubscribed recipient"),
    (21408, "Permission to send an SMS has not been enabled for the region"),
)


def notify_error_spike(b: LogBuilder, minutes: int = 15) -> None:
    def emit(ts: dt.datetime) -> None:
        if b.rng.random() < 0.7:
            code, text = b.rng.choice(TWILIO_ERRORS)
            b.add(
                ts,
                "ERROR",
                "notification",
                f"twilio send failed: {text}",
                provider="twilio",
                error_code=code,
                status=400,
                latency_ms=b.latency(280.0, 0.3),
                error_type="TwilioRestException",
            )
        else:
            b.add(
                ts,
                "ERROR",
                "notification",
                "whatsapp send failed: (#131026) Message undeliverable",
                provider="whatsapp",
                error_code=131026,
                status=400,
                latency_ms=b.latency(330.0, 0.3),
                error_type="GraphAPIError",
            )

    b.per_minute(minutes, 4, emit)


def migration_exists_spike(b: LogBuilder, stream: str) -> None:
    ts = b.at(9)
    b.add(
        ts,
        "INFO",
        "migration",
        "Running upgrade 4a5b6c7d8e95 -> 5b6c7d8e9fa6, notifications sent over SMS and WhatsApp",
        logger="alembic.runtime.migration",
        stream=stream,
    )
    b.add(
        ts + dt.timedelta(seconds=1),
        "ERROR",
        "migration",
        'sqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateTable) relation "notifications" already exists',
        logger="alembic",
        error_type="DuplicateTable",
        stream=stream,
    )
    b.add_text(
        ts + dt.timedelta(seconds=1),
        "[SQL: \nCREATE TABLE notifications (\n\tid SERIAL NOT NULL, ...)]",
        stream,
    )
    b.add(
        ts + dt.timedelta(seconds=2),
        "ERROR",
        "startup",
        "migration step failed, container exiting with code 1",
        logger="entrypoint",
        stream=stream,
    )
