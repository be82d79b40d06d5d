"""The safety suite's machinery: composite worlds, dead targets, an AWS proxy that records or throttles,
the world-state snapshot and the canary grep.

Nothing here knows a runbook's insides: the suite runs every runbook whose
notebook exists, so it grows as runbooks land.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from propflow_ops.findings import STATUS_ORDER
from propflow_ops.runbooks import RUNBOOKS, Runbook
from propflow_ops.sandbox import SCENARIOS
from propflow_ops.sandbox import canaries as C

# ------------------------------------------------------------------ runbooks and worlds


def present_runbooks() -> list[Runbook]:
    """Every runbook whose notebook exists, post-incident last (it reviews the others' runs)."""
    found = [rb for rb in RUNBOOKS.values() if rb.path.exists()]
    return sorted(found, key=lambda rb: rb.slug == "post-incident")


def present_slugs(*, include_post_incident: bool = True) -> list[str]:
    return [rb.slug for rb in present_runbooks() if include_post_incident or rb.slug != "post-incident"]


# Composite worlds: every scenario in at least one, composed so that no two faults undo each other
# (one alembic_version state per world; database/Redis faults injected before db-down/redis-down stop them).
WORLDS: dict[str, tuple[str, ...]] = {
    "healthy": (),
    "w1": (
        "api-oom",
        "db-pool-exhausted",
        "db-backups-off",
        "db-url-mismatch",
        "s3-bucket-missing",
        "redis-maxclients",
        "ws-handshake-failing",
        "twilio-auth-failed",
        "whatsapp-token-expired",
        "migration-pending",
    ),
    "w2": (
        "api-bad-deploy",
        "db-idle-in-transaction",
        "db-long-query",
        "s3-write-denied",
        "redis-memory-pressure",
        "ws-reconnect-storm",
        "twilio-low-balance",
        "notify-send-errors",
        "otp-endpoint-failing",
        "migration-multiple-heads",
        "migration-object-exists",
        "schema-drift",
    ),
    "w3": (
        "api-latency-high",
        "migration-unknown-revision",
        "s3-policy-overbroad",
        "s3-orphans",
        "notify-config-missing",
        "db-down",
        "redis-down",
    ),
}


def uncovered_scenarios() -> set[str]:
    covered = {s for names in WORLDS.values() for s in names}
    return set(SCENARIOS) - covered - {"healthy"}


# ------------------------------------------------------------------ read-only verbs

READ_PREFIXES = ("Describe", "List", "Get", "Filter", "Head", "BatchGet")
READ_EXTRA = frozenset({"GetCallerIdentity", "StartQuery", "GetQueryResults"})


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str  # the API operation, or "GET /bucket?policy" style for S3's REST calls
    method: str
    path: str

    @property
    def read_only(self) -> bool:
        if self.service == "s3" or self.operation.startswith(("GET ", "HEAD ", "PUT ", "POST ", "DELETE ")):
            return self.method in ("GET", "HEAD")
        return self.operation.startswith(READ_PREFIXES) or self.operation in READ_EXTRA

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}"


_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_OPERATION = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)")


def classify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> AwsCall:
    """Which AWS operation a raw request is (JSON target header, CBOR path, query Action, or S3 REST)."""
    lower = {k.lower(): v for k, v in headers.items()}
    m = _CREDENTIAL.search(lower.get("authorization", ""))
    service = m.group(1) if m else "?"
    target = lower.get("x-amz-target")
    if target:
        return AwsCall(service, target.rsplit(".", 1)[-1], method, path)
    m = _CBOR_OPERATION.match(path)
    if m:
        return AwsCall(service, m.group(1), method, path)
    split = urllib.parse.urlsplit(path)
    action = urllib.parse.parse_qs(split.query).get("Action")
    if not action and "x-www-form-urlencoded" in lower.get("content-type", ""):
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return AwsCall(service, action[0], method, path)
    return AwsCall(
        service, f"{method} {split.path}" + (f"?{split.query}" if split.query else ""), method, path
    )


# ------------------------------------------------------------------ throttling answers


def _cbor_text(s: str) -> bytes:
    raw = s.encode()
    assert len(raw) < 256
    return (bytes([0x60 + len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])) + raw


def _cbor_map(d: Mapping[str, str]) -> bytes:
    assert len(d) < 24
    return bytes([0xA0 + len(d)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in d.items())


def throttle_response(call: AwsCall, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    """What AWS answers when it throttles, in the request's own protocol."""
    lower = {k.lower(): v for k, v in headers.items()}
    rid = {"x-amzn-RequestId": "00000000-0000-0000-0000-000000000000"}
    if "x-amz-target" in lower:
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return (
            400,
            {**rid, "Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"},
            body,
        )
    if _CBOR_OPERATION.match(call.path):
        return (
            400,
            {**rid, "Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
            _cbor_map({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        )
    if call.service == "s3" or not call.operation[:1].isupper():
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return 503, {"Content-Type": "application/xml"}, body
    body = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
        b"</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return 400, {"Content-Type": "text/xml"}, body


# ------------------------------------------------------------------ servers


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that hung up: not news
        pass


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread


class AwsProxy:
    """A loopback proxy in front of moto: records every call, or answers every call with throttling."""

    def __init__(self, upstream: str, *, throttle: bool = False) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.throttle = throttle
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items()}
                call = classify(self.command, self.path, headers, body)
                with proxy._lock:
                    proxy.calls.append(call)
                if proxy.throttle:
                    status, out_headers, out = throttle_response(call, headers)
                else:
                    status, out_headers, out = proxy._forward(self.command, self.path, headers, body)
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        self.server = _Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = _serve(self.server)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            send = {k: v for k, v in headers.items() if k.lower() not in hop}
            send["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in hop}
            return resp.status, out, data
        finally:
            conn.close()

    def mutating(self) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if not c.read_only]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts every TCP connection and never answers (a hung API, database, Redis or provider)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self._held.append(conn)  # keep it open, read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self.sock.close()


class StatusServer:
    """Answers every HTTP request with one status and a JSON error body (a provider having a bad day)."""

    def __init__(self, status: int = 500) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                owner.requests.append(f"{self.command} {self.path}")
                out = json.dumps(
                    {"code": 20500, "message": "Internal Server Error", "status": status}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

        self.server = _Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = _serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RecordingServer:
    """Answers every HTTP request 200 with a JSON body and records it: method, path with its query, and
    every header (an Authorization that arrives here is a credential sent to the wrong host)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with owner._lock:
                    owner.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body.decode("utf-8", "replace"),
                        }
                    )
                out = json.dumps(
                    {"status": "active", "balance": "100.0", "messages": [], "ok": True}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        self.server = _Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = _serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RedirectServer:
    """Answers every request with ``status`` (a 3xx) and a Location on ``target`` with the same path and
    query: a configured host that sends its callers (and their credentials) elsewhere. ``target`` None: its
    own origin, under ``/moved`` (a same-origin redirect)."""

    def __init__(self, target: str | None, status: int = 302) -> None:
        self.requests: list[str] = []
        self.status = status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                owner.requests.append(f"{self.command} {self.path}")
                self.send_response(owner.status)
                base = target.rstrip("/") if target else owner.url + "/moved"
                self.send_header("Location", base + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        self.server = _Quiet(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = _serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DripServer:
    """Accepts every connection and answers, whatever was asked, one byte every ``interval`` seconds (by
    default an HTTP 200 that never completes; ``payload`` for another protocol's answer): per-read timeouts
    never fire; only a total deadline ends the call."""

    HTTP_PAYLOAD = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000
    )

    def __init__(self, interval: float = 2.0, payload: bytes = HTTP_PAYLOAD) -> None:
        self.interval = interval
        self.payload = payload
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        payload = self.payload
        with contextlib.suppress(OSError), conn:
            for i in range(len(payload)):
                if self._stop.wait(self.interval if i else 0.05):
                    return
                conn.sendall(payload[i : i + 1])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ world state


def world_state(sandbox: Any) -> dict[str, Any]:
    """The sandbox's own snapshot, plus what it leaves out: every table's rows, the sessions the
    scenarios hold open, every Redis key and its memory/client limits."""
    state = dict(sandbox.snapshot())
    state["database_detail"] = _guard(lambda: _db_detail(sandbox))
    state["redis_detail"] = _guard(lambda: _redis_detail(sandbox))
    return state


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a dead store is a state too
        return {"unreachable": type(exc).__name__}


def _db_detail(sandbox: Any) -> dict[str, Any]:
    with sandbox.pg.connect(application_name="propflow-safety-snapshot", autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY 1"
            ).fetchall()
        ]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY 1, 2"
        ).fetchall()
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        sessions = sorted(
            (str(r[0]), str(r[1]), str(r[2]))
            for r in conn.execute(
                "SELECT application_name, state, left(query, 60) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND application_name NOT LIKE 'propflow-sandbox%'"
            ).fetchall()
        )
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections', 'idle_in_transaction_session_timeout', 'statement_timeout')"
            ).fetchall()
        )
    return {
        "tables": counts,
        "columns": hashlib.sha256(repr(columns).encode()).hexdigest()[:16],
        "indexes": indexes,
        "sessions": sessions,
        "settings": settings,
    }


def _redis_detail(sandbox: Any) -> dict[str, Any]:
    client = sandbox.redis.client()
    try:
        keys = sandbox.redis.keys()
        cfg = {k: client.config_get(k).get(k) for k in ("maxclients", "maxmemory", "maxmemory-policy")}
        return {
            "keys": len(keys),
            "key_digest": hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16],
            "config": cfg,
        }
    finally:
        client.close()


def diff(before: Any, after: Any, path: str = "") -> list[str]:
    """Human-readable differences between two snapshots."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for k in sorted(set(before) | set(after), key=str):
            out += diff(
                before.get(k, "<absent>"), after.get(k, "<absent>"), f"{path}.{k}" if path else str(k)
            )
        return out
    if before != after:
        b, a = repr(before), repr(after)
        return [f"{path}: {b[:200]} -> {a[:200]}"]
    return []


# ------------------------------------------------------------------ canaries


def _phone_variants(number: str) -> list[str]:
    digits = number.lstrip("+")
    national = digits[2:] if digits.startswith("91") else digits[1:]
    return [number, digits, urllib.parse.quote(number), national]


def canary_needles() -> dict[str, str]:
    """needle -> what it is: every planted secret, and the phone numbers in every written form."""
    needles = {v: name for name, v in vars(C).items() if name.startswith("CANARY_") and isinstance(v, str)}
    for v in C.SECRET_CANARIES:
        needles.setdefault(v, "secret")
    for phone in C.CANARY_PHONES:
        for form in _phone_variants(phone):
            needles[form] = f"phone {phone}"
    twilio_basic = base64.b64encode(f"{C.TWILIO_ACCOUNT_SID}:{C.CANARY_TWILIO_AUTH_TOKEN}".encode()).decode()
    needles[twilio_basic] = "Twilio basic-auth header"
    return needles


@dataclass
class Leak:
    where: str
    needle: str
    what: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what} ...{self.context}..."


def find_canaries(text: str, where: str, needles: Mapping[str, str] | None = None) -> list[Leak]:
    leaks = []
    for needle, what in (needles or canary_needles()).items():
        start = text.find(needle)
        if start >= 0:
            ctx = text[max(0, start - 60) : start + len(needle) + 20].replace("\n", " ")
            leaks.append(Leak(where, needle, what, ctx))
    return leaks


def files_under(root: Path) -> Iterator[Path]:
    yield from (p for p in sorted(root.rglob("*")) if p.is_file())


@dataclass
class RunRecord:
    """One `propflow-ops run` the suite made, and what it left."""

    world: str
    slug: str
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    folder: Path | None
    evidence: dict[str, Any]
    seconds: float
    calls: list[AwsCall] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.world}/{self.slug}"

    def findings(self) -> dict[str, dict[str, Any]]:
        order = STATUS_ORDER  # worst first; str keys find the StrEnum members
        out: dict[str, dict[str, Any]] = {}
        for f in self.evidence.get("findings", []):
            if f["code"] not in out or order.get(f["status"], 9) < order.get(out[f["code"]]["status"], 9):
                out[f["code"]] = f
        return out

    def explain(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        return (
            f"{self.label} exit {self.code} in {self.seconds:.1f}s, folder {self.folder}\n"
            f"stdout: {self.stdout.strip()[-800:]}\nstderr tail:\n{tail}"
        )


def all_text(records: Iterable[RunRecord]) -> Iterator[tuple[str, str]]:
    for r in records:
        yield f"{r.label} stdout", r.stdout
        yield f"{r.label} stderr", r.stderr


# ------------------------------------------------------------------ running the command


def run_cli(
    world: str, slug: str, env: Mapping[str, str], *args: str, output_dir: Path, timeout: float
) -> RunRecord:
    """`propflow-ops run SLUG ARGS` in a subprocess, as an engineer would; never waits past ``timeout``."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **env, "PROPFLOW_OUTPUT_DIR": str(output_dir)}
    return _record(
        world,
        slug,
        args,
        timeout,
        lambda: subprocess.run(
            [sys.executable, "-m", "propflow_ops.cli", "run", slug, *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        ),
    )


def run_in_process(
    world: str,
    slug: str,
    env: Mapping[str, str],
    *args: str,
    output_dir: Path,
    timeout: float,
    pool: Any = None,
) -> RunRecord:
    """`propflow-ops run SLUG ARGS` through the command's own code in this process, the notebook on a warm
    kernel (``pool``, default the session's: tests/runs.py); what it printed is the command's stdout and
    stderr plus what the kernel process wrote. Never waits past ``timeout``."""
    from runs import cli_in_process

    return _record(
        world,
        slug,
        args,
        timeout,
        lambda: cli_in_process(env, "run", slug, *args, timeout=timeout, output_dir=output_dir, pool=pool),
    )


def _record(world: str, slug: str, args: tuple[str, ...], timeout: float, call: Any) -> RunRecord:
    import subprocess
    import time

    t0 = time.monotonic()
    try:
        proc = call()
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = -9
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (
            exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        ) + f"\n[safety] HUNG: no exit within {timeout:g} s"
    seconds = time.monotonic() - t0
    folder = None
    evidence: dict[str, Any] = {}
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if last and Path(last).is_dir():
        folder = Path(last)
        with contextlib.suppress(OSError, ValueError):
            evidence = json.loads((folder / "evidence.json").read_text(encoding="utf-8"))
    return RunRecord(world, slug, tuple(args), code, out, err, folder, evidence, seconds)
