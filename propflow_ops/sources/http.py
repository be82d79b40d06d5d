"""HTTP probes (urllib, no extra dependency) and the WebSocket handshake.

Nothing here raises on network errors: results say ``ok: False`` with a
one-line ``error``. Authorization headers and tokens never appear in results.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

BODY_CHARS = 500
_RETRY_DELAY_S = 0.2


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
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # http(s) only, checked
            return int(resp.status), resp.read(), dict(resp.headers.items())
    except urllib.error.HTTPError as err:
        body = b""
        try:
            body = err.read()
        except Exception:  # noqa: BLE001 - the status is what matters
            pass
        return int(err.code), body, dict(err.headers.items()) if err.headers else {}


def _check_scheme(url: str) -> str | None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        return f"unsupported URL scheme {scheme!r} (http or https expected)"
    return None


def probe(
    url: str,
    *,
    timeout_s: float = 5,
    retries: int = 2,
    method: str = "GET",
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Request ``url``, retrying network failures and 5xx up to ``retries`` more times.

    Returns ``{"url", "ok", "status", "latency_ms", "attempts", "body", "error"}``:
    ``ok`` is a 2xx/3xx answer; ``status`` is None when no answer came;
    ``body`` is the parsed JSON or the first 500 characters; ``latency_ms`` is
    the last attempt's. Never raises on network errors; each attempt is bounded
    by ``timeout_s``.
    """
    result: dict[str, Any] = {
        "url": url,
        "ok": False,
        "status": None,
        "latency_ms": None,
        "attempts": 0,
        "body": None,
        "error": None,
    }
    bad = _check_scheme(url)
    if bad:
        result["error"] = bad
        return result
    for attempt in range(1, max(0, retries) + 2):
        result["attempts"] = attempt
        t0 = time.perf_counter()
        try:
            status, raw, resp_headers = _request(
                url, method=method, timeout_s=timeout_s, json_body=json_body, headers=headers
            )
        except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
            result.update(
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
                status=None,
                body=None,
                error=_error_text(exc),
            )
        else:
            result.update(
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
                status=status,
                body=_decode_body(raw, resp_headers.get("Content-Type")),
                ok=200 <= status < 400,
                error=None if 200 <= status < 400 else f"HTTP {status}",
            )
            if status < 500:
                break
        if attempt <= retries:
            time.sleep(_RETRY_DELAY_S)
    return result


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


def ws_handshake(url: str, *, timeout_s: float = 5) -> dict[str, Any]:
    """Open a WebSocket, wait up to ``timeout_s`` for a first message, close.

    Returns ``{"url" (token masked), "ok", "latency_ms" (handshake), "status"
    (101 or the HTTP status the server refused with), "first_message", "error"}``.
    ``ok`` means the handshake succeeded; no first message within the timeout
    is not an error (``first_message`` None). Never raises.
    """
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    result: dict[str, Any] = {
        "url": _redact_ws(url),
        "ok": False,
        "latency_ms": None,
        "status": None,
        "first_message": None,
        "error": None,
    }
    t0 = time.perf_counter()
    try:
        with connect(url, open_timeout=timeout_s, close_timeout=timeout_s) as ws:
            result["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
            result["ok"] = True
            response = getattr(ws, "response", None)
            result["status"] = getattr(response, "status_code", 101)
            try:
                msg = ws.recv(timeout=timeout_s)
            except TimeoutError:
                msg = None
            if isinstance(msg, bytes):
                msg = msg.decode("utf-8", errors="replace")
            if isinstance(msg, str) and msg.strip()[:1] in ("{", "["):
                try:
                    result["first_message"] = json.loads(msg)
                except ValueError:
                    result["first_message"] = msg[:BODY_CHARS]
            elif msg is not None:
                result["first_message"] = str(msg)[:BODY_CHARS]
    except InvalidStatus as exc:
        result["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        result["status"] = exc.response.status_code
        result["error"] = f"handshake refused: HTTP {exc.response.status_code}"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        result["latency_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        result["error"] = _error_text(exc)
    return result


def get_json(
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    bearer: str | None = None,
    timeout_s: float = 5,
) -> tuple[int | None, Any]:
    """GET ``url`` with Basic ``auth`` (Twilio) or a ``bearer`` token (Meta Graph).

    Returns ``(status, body)``: body parsed JSON, else the first 500 characters.
    On a network failure: ``(None, {"error": "<one line>"})``. Never raises on
    network errors.
    """
    bad = _check_scheme(url)
    if bad:
        return None, {"error": bad}
    headers: dict[str, str] = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        status, raw, resp_headers = _request(url, method="GET", timeout_s=timeout_s, headers=headers)
    except Exception as exc:  # noqa: BLE001 - report, never raise
        return None, {"error": _error_text(exc)}
    return status, _decode_body(raw, resp_headers.get("Content-Type"))
