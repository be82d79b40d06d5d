"""HTTP probes and requests (urllib, no extra dependency) and the WebSocket handshake.

Nothing here raises on network errors: :func:`probe` and :func:`ws_handshake` return a
:class:`~propflow_ops.results.Fetched` (any answer is the value, no answer a one-line error).
Authorization headers and tokens never appear in results.

Every request of the package goes through :func:`send` (the probes here, ``sources.twilio.request_json`` for
Twilio and Meta Graph, the OTP step), which promises two things:

* **Credentials go only where they were meant to.** Redirects are never followed: a 3xx is the answer,
  reported with the host it points to (``HTTP 302 redirect to other.example:443, not followed``), so an
  ``Authorization`` header or a token in the URL never reaches another host, nor the same one twice.
* **A total deadline.** ``timeout_s`` bounds the whole request (connect, send, status, headers, body),
  not each read: a server that drips one byte a second is cut off at the deadline. A target that timed
  out trips its breaker in :mod:`propflow_ops.reach` (keyed by origin): the run's later requests to it
  fail at once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from propflow_ops import reach
from propflow_ops.errors import DeadlineExceeded as DeadlineExceeded  # callers import it from here
from propflow_ops.errors import FetchError, NoAnswer
from propflow_ops.records import HttpAnswer, WsAnswer
from propflow_ops.redact import redact_text
from propflow_ops.results import Fetched

BODY_CHARS = 500
MAX_BODY_BYTES = 2_000_000
_RETRY_DELAY_S = 0.2


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port made explicit): what a credential is bound to."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(scheme, 0)
    except ValueError:
        port = 0
    host = (parts.hostname or "").lower()
    return f"{scheme}://{host}:{port}"


def target_key(url: str) -> str:
    """The breaker key of an HTTP target: ``http <origin>`` (ws:// and wss:// share their http origin)."""
    o = origin(url)
    return "http " + o.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


def redirect_text(status: int, headers: dict[str, str], url: str) -> str:
    """``HTTP 302 redirect to host:port, not followed`` (the host only: a Location may hold a token)."""
    location = next((v for k, v in headers.items() if k.lower() == "location"), "")
    target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location)) if location else None
    where = ""
    if target is not None and target.hostname:
        try:
            port = target.port
        except ValueError:
            port = None
        where = f" to {target.hostname}" + (f":{port}" if port else "")
        if origin(urllib.parse.urljoin(url, location)) == origin(url):
            where += " (same origin)"
    return f"HTTP {status} redirect{where}, not followed"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then hands the 3xx back as the answer (an HTTPError we read as one)


class _Sockets:
    """The sockets one request opened, so that its deadline can cut them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.expired = False

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.socks.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            socks = list(self.socks)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _connection_class(base: type[http.client.HTTPConnection], sockets: _Sockets) -> Any:
    class Connection(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    return Connection


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, sockets: _Sockets) -> None:
        super().__init__()
        self.sockets = sockets

    def http_open(self, req: Any) -> Any:
        return self.do_open(_connection_class(http.client.HTTPConnection, self.sockets), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, sockets: _Sockets) -> None:
        super().__init__()
        self.sockets = sockets

    def https_open(self, req: Any) -> Any:
        context = self._context  # type: ignore[attr-defined]
        return self.do_open(
            _connection_class(http.client.HTTPSConnection, self.sockets), req, context=context
        )


def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout_s: float = 5,
    breaker: bool = True,
) -> tuple[int, bytes, dict[str, str]]:
    """One request, redirects NOT followed, within a total deadline of ``timeout_s``.

    ``breaker=False``: the request neither consults nor trips the run's per-origin breaker (a notification
    channel's send stands alone: its own deadline bounds it, and another channel's timeout says nothing of it).

    Returns ``(status, body bytes, headers)``: every status is returned (a 3xx too), none raised. Raises
    on network failure: :class:`DeadlineExceeded` past the deadline, ``reach.TargetDown`` when the origin
    already timed out in this run, ``ValueError`` for a URL that is not http(s).
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {origin(url)!r} (http or https expected)")
    key = target_key(url)
    if breaker:
        reach.check(key)
    deadline = max(0.05, float(timeout_s))
    sockets = _Sockets()
    opener = urllib.request.build_opener(_NoRedirect(), _HTTP(sockets), _HTTPS(sockets))
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=dict(headers or {}))
    timer = threading.Timer(deadline, sockets.expire)
    timer.daemon = True
    t0 = time.monotonic()
    timer.start()
    try:
        try:
            resp = opener.open(req, timeout=deadline)
        except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx: answers, not failures
            resp = err
        with contextlib.closing(resp):
            status = int(resp.status if hasattr(resp, "status") and resp.status else resp.code)
            body = resp.read(MAX_BODY_BYTES) if resp.fp is not None else b""
            resp_headers = dict(resp.headers.items()) if resp.headers else {}
        if sockets.expired:
            raise DeadlineExceeded(f"no complete answer within {deadline:g} s")
        return status, body, resp_headers
    except Exception as exc:
        if sockets.expired or time.monotonic() - t0 >= deadline:
            if breaker:
                reach.trip(key, f"no complete answer within {deadline:g} s")
            raise DeadlineExceeded(f"no complete answer within {deadline:g} s") from None
        if breaker and (
            reach.timed_out(exc) or isinstance(getattr(exc, "reason", None), (TimeoutError, socket.timeout))
        ):
            reach.trip(key, _error_text(exc))
        raise
    finally:
        timer.cancel()


def _decode_body(raw: bytes, content_type: str | None) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if text.strip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text[:BODY_CHARS]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _error_text(reason)
        return f"URLError: {reason}"
    if isinstance(exc, DeadlineExceeded):
        return f"timeout: {exc}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def _request(
    url: str,
    *,
    method: str,
    timeout_s: float,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """One request: (status, body bytes, headers). HTTP error statuses are returned, not raised."""
    data = None
    hdrs = {"Accept": "application/json", "User-Agent": "propflow-ops"}
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    return send(method, url, headers=hdrs, data=data, timeout_s=timeout_s)


def _check_scheme(url: str) -> str | None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        return f"unsupported URL scheme {scheme!r} (http or https expected)"
    return None


def is_unreachable(exc: BaseException) -> bool:
    """No usable answer from the target (refused, reset, timed out, breaker open, a broken HTTP answer), as
    opposed to a request that could not be made (a URL it cannot ask for)."""
    if reach.unreachable(exc):
        return True
    if type(exc).__name__ in ("InvalidURI", "InvalidProxy"):
        return False
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return True
    return type(exc).__module__.startswith("websockets")  # InvalidHandshake, InvalidMessage: no usable answer


def probe(
    url: str,
    *,
    timeout_s: float = 5,
    retries: int = 2,
    method: str = "GET",
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> Fetched[HttpAnswer]:
    """Request ``url``, retrying network failures and 5xx up to ``retries`` more times.

    Any answer is the value (:class:`~propflow_ops.records.HttpAnswer`: status, body, latency, attempts, and a
    ``problem`` line for a non-2xx; a 3xx is not followed and its ``problem`` names the host it points to). No
    answer (refused, timed out, breaker open, a scheme other than http(s)) is the error: a one-line
    :class:`~propflow_ops.errors.NoAnswer` (``unreachable`` unless the URL could not be asked), with its
    ``attempts``. The target is the URL (secrets masked). Never raises on network errors; each attempt has the
    total deadline ``timeout_s``, and an attempt that timed out is not retried (the origin's breaker is open for
    the rest of the run). The last attempt decides.
    """
    shown = redact_text(url)
    t_start = time.monotonic()
    bad = _check_scheme(url)
    if bad:
        return Fetched(None, NoAnswer(bad, attempts=0), shown, 0.0)
    answer: HttpAnswer | None = None
    error: NoAnswer | None = None
    for attempt in range(1, max(0, retries) + 2):
        t0 = time.perf_counter()
        try:
            status, raw, resp_headers = _request(
                url, method=method, timeout_s=timeout_s, json_body=json_body, headers=headers
            )
        except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
            answer = None
            error = NoAnswer(_error_text(exc), unreachable=is_unreachable(exc), attempts=attempt)
            if isinstance(exc, (TimeoutError, reach.TargetDown)):
                break
        else:
            body = _decode_body(raw, resp_headers.get("Content-Type"))
            problem = None if 200 <= status < 300 else f"HTTP {status}"
            if 300 <= status < 400:
                problem = redirect_text(status, resp_headers, url)
                body = {"redirect": problem}
            error = None
            answer = HttpAnswer(
                url=shown,
                status=status,
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
                attempts=attempt,
                body=body,
                problem=problem,
            )
            if status < 500:
                break
        if attempt <= retries:
            time.sleep(_RETRY_DELAY_S)
    return Fetched(answer, error, shown, time.monotonic() - t_start)


def ws_url(api_url: str, token: str) -> str:
    """``https://host/base`` + token -> ``wss://host/base/ws/<token>`` (http -> ws)."""
    parts = urllib.parse.urlsplit(api_url)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/ws/" + urllib.parse.quote(token, safe="")
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def _redact_ws(url: str) -> str:
    """The URL with the token (the last path segment after /ws/) masked."""
    head, sep, _tail = url.rpartition("/ws/")
    return f"{head}{sep}***" if sep else url


def _ws_connect(url: str, timeout_s: float) -> Any:
    """The sync WebSocket client, with redirects NOT followed (websockets follows up to 10 by default)."""
    from websockets.sync import client as ws_client

    kwargs: dict[str, Any] = {"open_timeout": timeout_s, "close_timeout": min(timeout_s, 2), "proxy": None}
    base = getattr(ws_client, "reconnect", None)
    if base is None or not hasattr(base, "process_redirect"):  # an older websockets: it does not follow them
        return ws_client.connect(url, **kwargs)

    class NoRedirect(base):  # type: ignore[misc,valid-type]
        def process_redirect(self, exc: Exception) -> Exception | str:
            return exc  # a 3xx is the answer

    connection = NoRedirect(url, **kwargs).connect()
    with contextlib.suppress(AttributeError):
        connection.pending_legacy_warning = False
    return connection


def _first_message(ws: Any, timeout_s: float) -> Any:
    """The server's first message within ``timeout_s`` (JSON parsed, else the first 500 characters), or None."""
    try:
        msg = ws.recv(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - nothing within the timeout, or closed after the 101: no first message
        return None
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", errors="replace")
    if isinstance(msg, str) and msg.strip()[:1] in ("{", "["):
        try:
            return json.loads(msg)
        except ValueError:
            return msg[:BODY_CHARS]
    return None if msg is None else str(msg)[:BODY_CHARS]


def ws_handshake(url: str, *, timeout_s: float = 5) -> Fetched[WsAnswer]:
    """Open a WebSocket, wait up to ``timeout_s`` for a first message, close.

    Any answer to the upgrade is the value (:class:`~propflow_ops.records.WsAnswer`): ``status`` 101 (``ok``), or
    the HTTP status the server refused it with and a ``problem`` line (a 3xx, never followed, names the host it
    points to); no first message within the timeout is not an error (``first_message`` None). No answer
    (refused, timed out, breaker open) is the error: a one-line :class:`~propflow_ops.errors.FetchError`. The
    token is masked in the URL, the target and every text. Never raises.
    """
    from websockets.exceptions import InvalidStatus

    shown = _redact_ws(url)
    token = url.rpartition("/ws/")[2]

    def masked(text: str) -> str:
        return text.replace(token, "***") if token else text

    t0 = time.perf_counter()
    key = target_key(url)
    answer: WsAnswer | None = None
    try:
        reach.check(key)
        # open_timeout bounds the whole opening handshake (connect, upgrade request, 101); a redirect is never
        # followed (a 3xx is InvalidStatus below): the token in the path stays on this origin.
        with _ws_connect(url, timeout_s) as ws:
            latency = round((time.perf_counter() - t0) * 1000, 2)
            status = getattr(getattr(ws, "response", None), "status_code", 101)
            answer = WsAnswer(shown, status, latency, first_message=_first_message(ws, timeout_s))
    except InvalidStatus as exc:
        status = exc.response.status_code
        problem = f"handshake refused: HTTP {status}"
        if 300 <= status < 400:
            http_url = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
            problem = "handshake refused: " + redirect_text(
                status, dict(exc.response.headers.raw_items()), http_url
            )
        answer = WsAnswer(
            url=shown,
            status=status,
            latency_ms=round((time.perf_counter() - t0) * 1000, 2),
            problem=masked(problem),
        )
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        if answer is None:  # no answer to the upgrade (after a 101, a failed close changes nothing)
            text = masked(_error_text(exc))
            if reach.timed_out(exc):
                reach.trip(key, text)
            seconds = time.perf_counter() - t0
            return Fetched(None, FetchError(text, unreachable=is_unreachable(exc)), shown, seconds)
    return Fetched(answer, None, shown, time.perf_counter() - t0)
