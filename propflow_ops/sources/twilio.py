"""Twilio's REST API (2010-04-01): account status, balance, recent messages; and notification logs.

Credentials come from the environment (CONTRACT 2): ``TWILIO_ACCOUNT_SID``,
``TWILIO_AUTH_TOKEN`` and ``PROPFLOW_TWILIO_API_URL`` (default
``https://api.twilio.com``). Every call has a timeout and never raises for a
network or API failure: it returns an :class:`ApiResult` whose ``error`` says
what went wrong, so a runbook against a dead or misconfigured Twilio finishes.

This module fetches and shapes; it does not judge (no thresholds here).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pandas as pd

from propflow_ops.errors import FetchError
from propflow_ops.records import ApiResult as ApiResult
from propflow_ops.records import MessagesResult as MessagesResult
from propflow_ops.records import TaskSettings as TaskSettings

DEFAULT_API_URL = "https://api.twilio.com"
TIMEOUT_S = 10.0

#: Columns of :func:`messages` (the recipient number is deliberately not kept).
MESSAGE_COLUMNS = ["sid", "date_created", "status", "error_code", "error_message", "direction"]


@dataclass
class TwilioConfig:
    account_sid: str = ""
    auth_token: str = field(default="", repr=False)
    api_url: str = DEFAULT_API_URL

    @property
    def missing(self) -> list[str]:
        """The environment variables this runbook needs and did not get (names only)."""
        out = []
        if not self.account_sid:
            out.append("TWILIO_ACCOUNT_SID")
        if not self.auth_token:
            out.append("TWILIO_AUTH_TOKEN")
        return out

    @property
    def configured(self) -> bool:
        return not self.missing


def config(env: Mapping[str, str] | None = None) -> TwilioConfig:
    """Twilio settings from the environment (CONTRACT 2)."""
    env = os.environ if env is None else env
    return TwilioConfig(
        account_sid=(env.get("TWILIO_ACCOUNT_SID") or "").strip(),
        auth_token=(env.get("TWILIO_AUTH_TOKEN") or "").strip(),
        api_url=(env.get("PROPFLOW_TWILIO_API_URL") or DEFAULT_API_URL).rstrip("/"),
    )


def _error_line(body: Any, status: int) -> str:
    """Twilio answers errors as {"code", "message", "more_info", "status"}; Meta as {"error": {...}}."""
    if isinstance(body, dict):
        inner = body.get("error")
        err: dict[str, Any] = inner if isinstance(inner, dict) else body
        code = err.get("code")
        msg = err.get("message") or err.get("detail")
        sub = err.get("error_subcode")
        parts = []
        if code is not None:
            parts.append(f"code {code}" + (f"/{sub}" if sub is not None else ""))
        if msg:
            parts.append(str(msg).splitlines()[0][:200])
        if parts:
            return f"HTTP {status}: " + ", ".join(parts)
    return f"HTTP {status}"


def request_json(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    timeout_s: float = TIMEOUT_S,
) -> ApiResult:
    """One HTTP request (``sources.http.send``: total deadline ``timeout_s``, redirects never followed, so the
    credentials in ``headers`` reach the configured host only); JSON parsed; never raises for network/HTTP
    failures. A 3xx is an error naming where it pointed."""
    from propflow_ops.sources import http

    safe_url = url.split("?", 1)[0]
    t0 = time.monotonic()
    try:
        status, raw, resp_headers = http.send(
            method, url, headers=dict(headers or {}), data=data, timeout_s=timeout_s
        )
    except ValueError as exc:  # a malformed URL
        return ApiResult(url=safe_url, error=f"bad URL: {exc}")
    except Exception as exc:  # noqa: BLE001 - unreachable, timed out, breaker open: reported, never raised
        reason = getattr(exc, "reason", exc)
        if not isinstance(reason, BaseException):
            reason = exc
        text = f"{type(reason).__name__}: {reason}".splitlines()[0]
        return ApiResult(
            url=safe_url, error=f"unreachable: {text}", latency_ms=round((time.monotonic() - t0) * 1000, 1)
        )
    latency = round((time.monotonic() - t0) * 1000, 1)
    try:
        body = json.loads(raw.decode("utf-8", errors="replace")) if raw else None
    except ValueError:
        body = None
    ok = 200 <= status < 300
    error = None
    if 300 <= status < 400:
        body = None
        error = http.redirect_text(status, resp_headers, url)
    elif not ok:
        error = _error_line(body, status)
    elif body is None:
        ok, error = False, f"HTTP {status} without a JSON body"
    return ApiResult(url=safe_url, ok=ok, status=status, body=body, error=error, latency_ms=latency)


def _auth_header(cfg: TwilioConfig) -> dict[str, str]:
    pair = f"{cfg.account_sid}:{cfg.auth_token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Accept": "application/json"}


def _account_url(cfg: TwilioConfig, suffix: str = "") -> str:
    sid = urllib.parse.quote(cfg.account_sid, safe="")
    return f"{cfg.api_url}/2010-04-01/Accounts/{sid}{suffix}.json"


def _not_configured(cfg: TwilioConfig, what: str) -> ApiResult:
    return ApiResult(
        url=what, error="not configured: " + ", ".join(cfg.missing) + " not set", configured=False
    )


def account(cfg: TwilioConfig, *, timeout_s: float = TIMEOUT_S) -> ApiResult:
    """GET /Accounts/{sid}.json: ``body["status"]`` is active, suspended or closed."""
    if not cfg.configured:
        return _not_configured(cfg, "account")
    return request_json("GET", _account_url(cfg), headers=_auth_header(cfg), timeout_s=timeout_s)


def balance(cfg: TwilioConfig, *, timeout_s: float = TIMEOUT_S) -> ApiResult:
    """GET /Accounts/{sid}/Balance.json: ``body`` has ``balance`` (a string) and ``currency``."""
    if not cfg.configured:
        return _not_configured(cfg, "balance")
    return request_json("GET", _account_url(cfg, "/Balance"), headers=_auth_header(cfg), timeout_s=timeout_s)


def _parse_date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def messages_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    """Twilio message resources -> typed frame (date_created UTC, error_code Int64); no phone numbers."""
    rows = [
        {
            "sid": m.get("sid"),
            "date_created": _parse_date(m.get("date_created")),
            "status": m.get("status"),
            "error_code": m.get("error_code"),
            "error_message": m.get("error_message"),
            "direction": m.get("direction"),
        }
        for m in items
        if isinstance(m, dict)
    ]
    df = pd.DataFrame(rows, columns=MESSAGE_COLUMNS)
    df["date_created"] = pd.to_datetime(df["date_created"], utc=True)
    df["error_code"] = pd.to_numeric(df["error_code"], errors="coerce").astype("Int64")
    df["status"] = df["status"].astype("object")
    return df.sort_values("date_created", ascending=False, kind="stable").reset_index(drop=True)


def messages(
    cfg: TwilioConfig,
    *,
    page_size: int = 200,
    sent_after: datetime | None = None,
    timeout_s: float = TIMEOUT_S,
) -> MessagesResult:
    """The most recent messages (one page, newest first): GET /Accounts/{sid}/Messages.json."""
    if not cfg.configured:
        return MessagesResult(_not_configured(cfg, "messages"), messages_frame([]))
    query: dict[str, str] = {"PageSize": str(max(1, min(page_size, 1000)))}
    if sent_after is not None:
        query["DateSent>"] = sent_after.strftime("%Y-%m-%d")
    url = _account_url(cfg, "/Messages") + "?" + urllib.parse.urlencode(query)
    res = request_json("GET", url, headers=_auth_header(cfg), timeout_s=timeout_s)
    items = res.body.get("messages", []) if res.ok and isinstance(res.body, dict) else []
    return MessagesResult(res, messages_frame(items))


def task_settings(cluster: str, service: str, family: str = "") -> TaskSettings:
    """The settings of the task definition the service runs (else the family's latest revision); raises
    when ECS could not be read (call it through ``sources.fetch.fetch``)."""
    from propflow_ops.sources import ecs

    try:
        td = ecs.current_task_definition(cluster, service, family)
    except LookupError as exc:  # no such service, no family to fall back on: said as it is
        raise FetchError(str(exc)) from None
    names: dict[str, str] = {}
    for container in td.get("containerDefinitions", []) or []:
        for item in container.get("environment", []) or []:
            if item.get("name"):
                names[item["name"]] = "value" if str(item.get("value") or "").strip() else "empty"
        for item in container.get("secrets", []) or []:
            if item.get("name"):
                names[item["name"]] = "secret" if item.get("valueFrom") else "empty"
    label = f"{td.get('family', '?')}:{td.get('revision', '?')}"
    return TaskSettings(task_definition=label, names=names)
