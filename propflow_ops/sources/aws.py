"""boto3 clients with timeouts, the target description, and one-line error text.

boto3 reaches the sandbox (moto) through the environment variable
``AWS_ENDPOINT_URL``, which boto3 honours itself: no endpoint is ever passed here.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from propflow_ops import reach

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 8
#: TOTAL attempts per call, the first included (botocore's ``total_max_attempts``; its older
#: ``max_attempts`` counts retries, so ``max_attempts: 3`` made 4 attempts). A call against an endpoint that
#: accepts and never answers is bounded by TOTAL_ATTEMPTS x (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) plus the
#: back-off; once it timed out, the endpoint's breaker (``propflow_ops.reach``) fails the run's later calls at once.
TOTAL_ATTEMPTS = 2
#: Each attempt's TOTAL deadline (connect, send, status, headers, body): botocore's read timeout bounds one
#: read, so an endpoint that drips a byte every few seconds would hold a call for ever without it. An attempt
#: past the deadline is not retried (a timeout trips the endpoint's breaker, ``propflow_ops.reach``).
ATTEMPT_DEADLINE_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + 4

_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    # standard, not adaptive: adaptive adds client-side rate limiting that stretched 8 throttled calls from
    # 24 s to 64 s; during an incident a throttled call should give up soon and say so.
    retries={"mode": "standard", "total_max_attempts": TOTAL_ATTEMPTS},
)

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None], Any] = {}
_session: Any = None


def endpoint() -> str | None:
    """The endpoint boto3 will use from the environment (``AWS_ENDPOINT_URL``), or None."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


def region_name(region: str | None = None) -> str | None:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client with connect/read timeouts and bounded attempts, watched by ``reach`` (tally and breaker).

    Cached per (service, region, endpoint) in this process, so a notebook that
    points ``AWS_ENDPOINT_URL`` elsewhere gets a fresh client.
    """
    key = (service, region_name(region), endpoint())
    with _lock:
        found = _clients.get(key)
        if found is None:
            global _session
            if _session is None:  # one Session: creating one per client costs ~0.5 s each (data files)
                _session = boto3.session.Session()
            found = bound_attempts(_session.client(service, region_name=key[1], config=_CONFIG))
            reach.watch_boto3_client(found)
            _clients[key] = found
        return found


def client_from_env(
    service: str,
    env: Mapping[str, str],
    *,
    region: str | None = None,
    connect_s: float = 3,
    read_s: float = 8,
    attempts: int = 2,
) -> Any:
    """A boto3 client configured from ``env`` (not this process's environment): profile, keys, region and
    endpoint, with connect/read timeouts and ``attempts`` attempts in all."""
    session: Any = boto3.session.Session(
        profile_name=env.get("AWS_PROFILE") or None,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        region_name=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    made = session.client(
        service,
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        config=Config(
            connect_timeout=connect_s,
            read_timeout=read_s,
            retries={"mode": "standard", "total_max_attempts": attempts},
        ),
    )
    return bound_attempts(made, connect_s + read_s + 4)


class _DeadlineSession:
    """botocore's HTTP session with a total deadline on each request (see :data:`ATTEMPT_DEADLINE_S`).

    The request runs in a worker thread (:func:`propflow_ops.reach.call_within`); past the deadline the caller
    gets :class:`~propflow_ops.errors.DeadlineExceeded` (a ``TimeoutError``: botocore does not retry it, and
    ``reach`` counts the endpoint unanswered and opens its breaker). A response stubbed by an in-process mock
    never reaches ``send``."""

    def __init__(self, inner: Any, deadline_s: float) -> None:
        self.inner = inner
        self.deadline_s = deadline_s

    def send(self, request: Any) -> Any:
        where = urllib.parse.urlsplit(str(getattr(request, "url", ""))).netloc or "AWS"
        return reach.call_within(self.deadline_s, lambda: self.inner.send(request), f"AWS {where}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def bound_attempts(made: Any, deadline_s: float | None = None) -> Any:
    """``made`` (a botocore client) with a total deadline on every HTTP attempt (default
    :data:`ATTEMPT_DEADLINE_S`); returns it."""
    endpoint = getattr(made, "_endpoint", None)
    session = getattr(endpoint, "http_session", None)
    if session is not None and not isinstance(session, _DeadlineSession):
        deadline = ATTEMPT_DEADLINE_S if deadline_s is None else deadline_s
        endpoint.http_session = _DeadlineSession(session, deadline)  # type: ignore[union-attr]
    return made


def clear_cache() -> None:
    """Forget cached clients and the session (tests that move the endpoint or credentials call this)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None


def aws_error_text(exc: BaseException) -> str:
    """One short line describing a botocore/boto3 failure (no stack, no secrets)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code = err.get("Code") or "ClientError"
        lines = (err.get("Message") or "").strip().splitlines()
        message = lines[0].strip() if lines else ""
        op = getattr(exc, "operation_name", "") or ""
        text = f"{code}: {message}" if message else str(code)
        return f"{op}: {text}" if op else text
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"cannot connect to endpoint {exc.kwargs.get('endpoint_url', '?')}"
    if isinstance(exc, botocore.exceptions.ConnectTimeoutError):
        return f"connect timeout to {exc.kwargs.get('endpoint_url', '?')}"
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        return f"read timeout from {exc.kwargs.get('endpoint_url', '?')}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found"
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return "no AWS region configured (set AWS_REGION)"
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def target_info(region: str | None = None) -> dict[str, Any]:
    """Which AWS account/region/endpoint the runbook talks to (for the evidence report)."""
    info: dict[str, Any] = {
        "aws_account": None,
        "region": region_name(region),
        "endpoint": endpoint() or "aws default",
    }
    try:
        sts = client("sts", region)
        info["region"] = sts.meta.region_name
        info["aws_account"] = sts.get_caller_identity().get("Account")
    except Exception as exc:  # noqa: BLE001 - target info must never crash a runbook
        info["error"] = aws_error_text(exc)
    return info
