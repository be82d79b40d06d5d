"""Who is acting: the AWS caller identity (STS GetCallerIdentity), the local user and the host.

Recorded with every run (``run.operator`` in evidence.json) and every incident action. The STS call has a
total deadline (:data:`STS_DEADLINE_S`); when AWS does not answer in time, or there are no credentials, the
ARN is ``"unknown"`` and the reason is kept, never a hang and never an exception.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

STS_DEADLINE_S = 3.0
UNKNOWN = "unknown"
_cache: dict[tuple[str, ...], str] = {}
_lock = threading.Lock()
_ENV_KEYS = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
        return UNKNOWN


def local() -> dict[str, str]:
    """The local half of the operator: user and host."""
    return {"user": local_user(), "host": socket.gethostname()}


def caller_arn(
    env: Mapping[str, str] | None = None, deadline_s: float = STS_DEADLINE_S
) -> tuple[str, str | None]:
    """(ARN, None) or ("unknown", reason). Uses ``env`` (defaults to os.environ) for the AWS settings."""
    env = dict(os.environ if env is None else env)
    out: dict[str, Any] = {}

    def ask() -> None:
        try:
            from propflow_ops.sources.aws import client_from_env

            half = max(0.5, deadline_s / 2)
            sts = client_from_env("sts", env, connect_s=half, read_s=half, attempts=2)
            out["arn"] = str(sts.get_caller_identity()["Arn"])
        except Exception as exc:  # noqa: BLE001 - an unknown operator is recorded, never fatal
            out["error"] = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}".rstrip(": ")
            )

    worker = threading.Thread(target=ask, name="propflow-sts", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if "arn" in out:
        return out["arn"], None
    if worker.is_alive():
        return UNKNOWN, f"STS did not answer within {deadline_s:g} s"
    return UNKNOWN, out.get("error") or "no answer"


def current(env: Mapping[str, str] | None = None, deadline_s: float = STS_DEADLINE_S) -> dict[str, Any]:
    """``{"aws_arn", "user", "host"}`` (plus ``aws_error`` when the ARN is unknown). The ARN is cached per AWS
    settings (a known one only: an unreachable STS is asked again next time); user and host are read each time."""
    env = os.environ if env is None else env
    key = tuple(str(env.get(k) or "") for k in _ENV_KEYS)
    with _lock:
        arn = _cache.get(key)
    error = None
    if arn is None:
        arn, error = caller_arn(env, deadline_s)
        if error is None:
            with _lock:
                _cache[key] = arn
    who: dict[str, Any] = {"aws_arn": arn, **local()}
    if error:
        who["aws_error"] = error
    return who


def in_background(env: Mapping[str, str] | None = None) -> Future[dict[str, Any]]:
    """Start :func:`current` in a thread (a run asks STS while its kernel starts)."""
    fut: Future[dict[str, Any]] = Future()
    env = dict(os.environ if env is None else env)

    def go() -> None:
        try:
            fut.set_result(current(env))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            fut.set_exception(exc)

    threading.Thread(target=go, name="propflow-operator", daemon=True).start()
    return fut


def label(who: Mapping[str, Any] | None) -> str:
    """``user@host (arn)``: how reports and the review name an operator."""
    if not who:
        return UNKNOWN
    if who.get("name"):  # a person named by hand (``--by``)
        base = str(who["name"])
    else:
        base = f"{who.get('user') or UNKNOWN}@{who.get('host') or UNKNOWN}"
    arn = who.get("aws_arn")
    if arn == "pending":
        return base + " (AWS identity pending)"
    return base + (f" ({arn})" if arn and arn != UNKNOWN else " (AWS identity unknown)")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
