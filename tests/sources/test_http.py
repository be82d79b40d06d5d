"""sources.http against loopback servers: JSON, text, errors, a server that never answers, WebSockets."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from propflow_ops.checks import api as api_checks
from propflow_ops.checks import websocket as ws_checks
from propflow_ops.errors import FetchError, NoAnswer
from propflow_ops.reach import unreachable
from propflow_ops.records import HttpAnswer, WsAnswer
from propflow_ops.results import Fetched
from propflow_ops.sources import http, twilio
from tests.sources.conftest import free_port


class Handler(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}
    last_headers: dict[str, str] = {}
    last_body: bytes = b""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.calls[self.path] = Handler.calls.get(self.path, 0) + 1
        Handler.last_headers = dict(self.headers.items())
        if self.path == "/health":
            self._send(200, json.dumps({"status": "ok", "db": "ok"}).encode())
        elif self.path == "/text":
            self._send(200, ("x" * 2000).encode(), "text/plain")
        elif self.path == "/boom":
            self._send(503, json.dumps({"detail": "database unavailable"}).encode())
        elif self.path == "/missing":
            self._send(404, b"not here", "text/plain")
        elif self.path == "/flaky":
            if Handler.calls[self.path] == 1:
                self._send(502, b"bad gateway", "text/plain")
            else:
                self._send(200, b'{"ok": true}')
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        Handler.last_body = self.rfile.read(n)
        self._send(202, json.dumps({"received": json.loads(Handler.last_body)}).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def silent() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    sock.close()


def test_probe_json(server: str) -> None:
    res = http.probe(server + "/health")
    assert isinstance(res, Fetched) and res.error is None and res.target == server + "/health"
    got = res.value
    assert isinstance(got, HttpAnswer) and got.ok and got.status == 200 and got.attempts == 1
    assert got.body == {"status": "ok", "db": "ok"}
    assert got.problem is None and got.latency_ms >= 0
    assert got.url == server + "/health"


def test_probe_text_is_cut(server: str) -> None:
    got = http.probe(server + "/text").value
    assert got is not None and got.ok and got.body == "x" * 500


def test_probe_5xx_retries_then_is_an_answer(server: str) -> None:
    """A 503 is what the server answered: a value (not an error), for the check to fail."""
    res = http.probe(server + "/boom", retries=2)
    assert res.error is None and res.ok
    got = res.value
    assert got is not None and not got.ok and got.status == 503 and got.attempts == 3
    assert got.body == {"detail": "database unavailable"}
    assert got.problem == "HTTP 503"
    finding = api_checks.health(res)
    assert finding.status == "fail" and "HTTP 503" in finding.title
    assert finding.data["status"] == 503 and finding.data["attempts"] == 3
    assert json.loads(json.dumps(finding.to_json()))["data"]["body"] == {"detail": "database unavailable"}


def test_probe_4xx_is_not_retried(server: str) -> None:
    got = http.probe(server + "/missing", retries=2).value
    assert got is not None and (got.ok, got.status, got.attempts, got.body) == (False, 404, 1, "not here")


def test_probe_retry_recovers(server: str) -> None:
    got = http.probe(server + "/flaky", retries=2).value
    assert got is not None and (got.ok, got.status, got.attempts) == (True, 200, 2)


def test_probe_post_json(server: str) -> None:
    got = http.probe(
        server + "/api/v1/auth/login/otp", method="POST", json_body={"phone": "+919999900001"}
    ).value
    assert got is not None and got.status == 202 and got.body == {"received": {"phone": "+919999900001"}}


def test_probe_refused_is_an_unreachable_error_without_a_value() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    res = http.probe(url, retries=1)
    assert res.value is None and not res.ok and res.target == url
    assert isinstance(res.error, FetchError) and unreachable(res.error)
    assert "refused" in str(res.error).lower() and "\n" not in str(res.error)
    assert getattr(res.error, "attempts", None) == 2  # a refused connection is retried
    finding = api_checks.health(res)
    assert finding.status == "fail" and "refused" in finding.title.lower()
    assert finding.data["url"] == url and finding.data["attempts"] == 2 and finding.data["status"] is None


def test_probe_never_answering_server_returns(silent: str) -> None:
    res = http.probe(silent + "/health", timeout_s=0.5, retries=1)
    # a timed-out attempt is not retried: the origin's breaker is open for the rest of the run
    assert res.value is None and isinstance(res.error, FetchError) and unreachable(res.error)
    assert getattr(res.error, "attempts", None) == 1
    assert "timed out" in str(res.error) or "timeout" in str(res.error)


def test_probe_bad_scheme() -> None:
    res = http.probe("file:///etc/passwd")
    assert res.value is None and isinstance(res.error, FetchError) and "scheme" in str(res.error)
    assert not unreachable(res.error) and getattr(res.error, "attempts", None) == 0
    assert api_checks.health(res).status == "error"  # could not be asked: not an outage


def test_probe_masks_credentials_in_its_url_and_repr() -> None:
    res = http.probe(f"http://user:s3cretpw@127.0.0.1:{free_port()}/health?api_key=k3yk3yk3y", retries=0)
    shown = repr(res) + str(res.error) + res.target + repr(api_checks.probe_table(res).to_dict())
    assert "s3cretpw" not in shown and "k3yk3yk3y" not in shown


def test_request_json_carries_basic_and_bearer_credentials(server: str) -> None:
    """``sources.twilio.request_json`` (Twilio's Basic, Meta Graph's bearer) sends the headers it is given."""
    basic = "Basic " + base64.b64encode(b"AC123:tok").decode()
    got = twilio.request_json("GET", server + "/health", headers={"Authorization": basic})
    assert got.value.status == 200 and got.value.body["status"] == "ok" and got.value.problem is None
    assert Handler.last_headers["Authorization"] == basic
    got = twilio.request_json("GET", server + "/boom", headers={"Authorization": "Bearer EAAB"})
    assert got.value.status == 503 and got.value.body == {"detail": "database unavailable"}
    assert got.value.problem == "HTTP 503: database unavailable"  # the API's own message
    assert Handler.last_headers["Authorization"] == "Bearer EAAB"


def test_request_json_without_an_answer_is_the_error(silent: str) -> None:
    got = twilio.request_json("GET", silent + "/x", timeout_s=0.5)
    assert got.value is None and isinstance(got.error, NoAnswer) and got.error.unreachable


def test_ws_url() -> None:
    assert http.ws_url("https://api.propflow.com", "t0k") == "wss://api.propflow.com/ws/t0k"
    assert http.ws_url("http://127.0.0.1:8000/", "a b") == "ws://127.0.0.1:8000/ws/a%20b"
    assert http.ws_url("https://h/base", "x") == "wss://h/base/ws/x"


@pytest.fixture(scope="module")
def ws_server() -> Iterator[str]:
    from websockets.datastructures import Headers
    from websockets.http11 import Response
    from websockets.sync.server import serve

    def process_request(conn: Any, request: Any) -> Any:
        if not request.path.startswith("/ws/good"):
            return Response(403, "Forbidden", Headers(), b"bad token")
        return None

    def handler(ws: Any) -> None:
        if ws.request.path.endswith("quiet"):
            time.sleep(2)
            return
        ws.send(json.dumps({"type": "hello", "channel": "notifications"}))
        try:
            ws.recv(timeout=2)
        except Exception:  # noqa: BLE001 - the client hung up: fine for a stand-in
            pass

    srv = serve(handler, "127.0.0.1", 0, process_request=process_request)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.socket.getsockname()[1]}"
    srv.shutdown()


def test_ws_handshake_ok(ws_server: str) -> None:
    res = http.ws_handshake(http.ws_url(ws_server, "good-token"))
    assert res.error is None and isinstance(res.value, WsAnswer)
    got = res.value
    assert got.ok and got.status == 101 and got.problem is None
    assert got.first_message == {"type": "hello", "channel": "notifications"}
    assert "good-token" not in got.url and "good-token" not in res.target and "good-token" not in repr(res)
    assert ws_checks.check_handshake(res).status == "ok"


def test_ws_handshake_no_first_message_within_timeout(ws_server: str) -> None:
    got = http.ws_handshake(http.ws_url(ws_server, "good-quiet"), timeout_s=0.5).value
    assert got is not None and got.ok and got.first_message is None


def test_ws_handshake_refused_is_an_answer(ws_server: str) -> None:
    res = http.ws_handshake(http.ws_url(ws_server, "bad-s3cret"))
    assert res.error is None
    got = res.value
    assert got is not None and not got.ok and got.status == 403
    assert got.problem is not None and "403" in got.problem
    finding = ws_checks.check_handshake(res)
    assert finding.status == "fail" and "403" in finding.title
    assert "bad-s3cret" not in repr(res) + repr(got) + json.dumps(finding.to_json())


def test_ws_handshake_never_answering(silent: str) -> None:
    res = http.ws_handshake(http.ws_url(silent, "t0k3n-s3cret"), timeout_s=0.5)
    assert res.value is None and isinstance(res.error, FetchError) and unreachable(res.error)
    assert "t0k3n-s3cret" not in str(res.error) + repr(res)
    finding = ws_checks.check_handshake(res)
    assert finding.status == "fail" and finding.title == "WebSocket endpoint unreachable"
    assert "t0k3n-s3cret" not in json.dumps(finding.to_json())


def test_ws_handshake_refused_connection() -> None:
    res = http.ws_handshake(http.ws_url(f"http://127.0.0.1:{free_port()}", "tok"), timeout_s=2)
    assert res.value is None and isinstance(res.error, FetchError) and unreachable(res.error)
