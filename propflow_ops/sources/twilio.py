"""Twilio's REST API (2010-04-01): account status, balance, recent messages; and notification logs.

Credentials come from the environment (CONTRACT 2): ``TWILIO_ACCOUNT_SID``,
``TWILIO_AUTH_TOKEN`` and ``PROPFLOW_TWILIO_API_URL`` (default
``https://api.twilio.com``). Every call has a timeout and never raises for a
network or API failure: it returns a :class:`~propflow_ops.results.Fetched` (any HTTP answer is the value, an
:class:`~propflow_ops.records.HttpAnswer` whose ``problem`` says what went wrong; no answer is the error; not
configured is the empty ``Fetched`` whose target names the missing variables), so a runbook against a dead or
misconfigured Twilio finishes.

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

from propflow_ops.errors import FetchError, NoAnswer
from propflow_ops.records import HttpAnswer
from propflow_ops.records import TaskSettings as TaskSettings
from propflow_ops.results import Fetched

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
) -> Fetched[HttpAnswer]:
    """One HTTP request (``sources.http.send``: total deadline ``timeout_s``, redirects never followed, so the
    credentials in ``headers`` reach the configured host only), its JSON body parsed. Never raises for network or
    HTTP failures.

    Any answer is the value, an :class:`~propflow_ops.records.HttpAnswer` whose ``problem`` is None for a 2xx with a
    JSON body, else one line: the API's error (``HTTP 401: code 20003, Authenticate``), a 3xx naming where it
    pointed (not followed), a 2xx without JSON. No answer is the error, a one-line
    :class:`~propflow_ops.errors.NoAnswer` (``unreachable`` unless the URL could not be asked). The target is the URL
    without its query."""
    from propflow_ops.sources import http

    safe_url = url.split("?", 1)[0]
    t0 = time.monotonic()
    try:
        status, raw, resp_headers = http.send(
            method, url, headers=dict(headers or {}), data=data, timeout_s=timeout_s
        )
    except ValueError as exc:  # a malformed URL: never asked
        error = NoAnswer(f"bad URL: {exc}", unreachable=False, attempts=0)
        return Fetched(None, error, safe_url, time.monotonic() - t0)
    except Exception as exc:  # noqa: BLE001 - unreachable, timed out, breaker open: reported, never raised
        reason = getattr(exc, "reason", exc)
        if not isinstance(reason, BaseException):
            reason = exc
        text = f"{type(reason).__name__}: {reason}".splitlines()[0]
        error = NoAnswer(f"unreachable: {text}", unreachable=http.is_unreachable(exc), attempts=1)
        return Fetched(None, error, safe_url, time.monotonic() - t0)
    seconds = time.monotonic() - t0
    try:
        body = json.loads(raw.decode("utf-8", errors="replace")) if raw else None
    except ValueError:
        body = None
    problem = None
    if 300 <= status < 400:
        problem = http.redirect_text(status, resp_headers, url)
        body = {"redirect": problem}
    elif not 200 <= status < 300:
        problem = _error_line(body, status)
    elif body is None:
        problem = f"HTTP {status} without a JSON body"
    answer = HttpAnswer(safe_url, status, round(seconds * 1000, 1), body=body, problem=problem)
    return Fetched(answer, None, safe_url, seconds)


def _auth_header(cfg: TwilioConfig) -> dict[str, str]:
    pair = f"{cfg.account_sid}:{cfg.auth_token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Accept": "application/json"}


def _account_url(cfg: TwilioConfig, suffix: str = "") -> str:
    sid = urllib.parse.quote(cfg.account_sid, safe="")
    return f"{cfg.api_url}/2010-04-01/Accounts/{sid}{suffix}.json"


def not_configured(what: str, missing: list[str]) -> Fetched[Any]:
    """The empty :class:`~propflow_ops.results.Fetched` of a call that was not made: its target names what and the
    missing variables (names only), e.g. ``twilio account (not configured: TWILIO_AUTH_TOKEN not set)``."""
    return Fetched(None, None, f"{what} (not configured: {', '.join(missing)} not set)")


def account(cfg: TwilioConfig, *, timeout_s: float = TIMEOUT_S) -> Fetched[HttpAnswer]:
    """GET /Accounts/{sid}.json: ``body["status"]`` is active, suspended or closed."""
    if not cfg.configured:
        return not_configured("twilio account", cfg.missing)
    return request_json("GET", _account_url(cfg), headers=_auth_header(cfg), timeout_s=timeout_s)


def balance(cfg: TwilioConfig, *, timeout_s: float = TIMEOUT_S) -> Fetched[HttpAnswer]:
    """GET /Accounts/{sid}/Balance.json: ``body`` has ``balance`` (a string) and ``currency``."""
    if not cfg.configured:
        return not_configured("twilio balance", cfg.missing)
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
) -> Fetched[pd.DataFrame]:
    """The most recent messages (one page, newest first; :data:`MESSAGE_COLUMNS`): GET /Accounts/{sid}/Messages.json.

    An answer with a ``problem`` (a 4xx, 5xx, 3xx or no JSON) is the error, a one-line
    :class:`~propflow_ops.errors.FetchError` (not ``unreachable``: the API answered); no answer is the request's
    :class:`~propflow_ops.errors.NoAnswer`."""
    if not cfg.configured:
        return not_configured("twilio messages", cfg.missing)
    query: dict[str, str] = {"PageSize": str(max(1, min(page_size, 1000)))}
    if sent_after is not None:
        query["DateSent>"] = sent_after.strftime("%Y-%m-%d")
    url = _account_url(cfg, "/Messages") + "?" + urllib.parse.urlencode(query)
    got = request_json("GET", url, headers=_auth_header(cfg), timeout_s=timeout_s)
    answer = got.value
    if answer is None:
        return Fetched(None, got.error, got.target, got.seconds)
    if answer.problem:
        return Fetched(None, FetchError(answer.problem, unreachable=False), got.target, got.seconds)
    items = answer.body.get("messages", []) if isinstance(answer.body, dict) else []
    return Fetched(messages_frame(items), None, got.target, got.seconds)


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
