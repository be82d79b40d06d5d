"""Is this run's target the sandbox? Decided from the target variables, never from a bare flag.

The sandbox exports :data:`MARKER` = :func:`fingerprint` of its own target variables. The marker is trusted
only when (1) it equals the fingerprint of the target variables in effect now (so a variable re-pointed at
production after ``eval $(propflow-ops sandbox)`` makes the run "not the sandbox") and (2) the AWS endpoint
and every target URL that is set are loopback addresses or local sockets (so a marker copied into a
production environment, or computed over production URLs, proves nothing). Anything else, including no
marker, is treated as production: applying a step there needs a confirmation.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

MARKER = "PROPFLOW_SANDBOX_ID"
#: the variables that choose what a run talks to (CONTRACT.md section 2)
TARGET_VARS = (
    "AWS_ENDPOINT_URL",
    "PROPFLOW_API_URL",
    "PROPFLOW_DATABASE_URL",
    "PROPFLOW_REDIS_URL",
    "PROPFLOW_TWILIO_API_URL",
    "PROPFLOW_META_GRAPH_URL",
    "PROPFLOW_ALEMBIC_CONFIG",
    "AWS_PROFILE",
)
#: these default to production when unset, so the sandbox must set them
REQUIRED = ("AWS_ENDPOINT_URL", "PROPFLOW_API_URL", "PROPFLOW_DATABASE_URL", "PROPFLOW_REDIS_URL")
_URL_VARS = tuple(v for v in TARGET_VARS if v not in ("PROPFLOW_ALEMBIC_CONFIG", "AWS_PROFILE"))


def fingerprint(env: Mapping[str, str]) -> str:
    """A digest of the target variables (values never leave this function)."""
    text = "\n".join(f"{k}={env.get(k) or ''}" for k in TARGET_VARS)
    return "sbx-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def is_local(url: str) -> bool:
    """A loopback host (127.0.0.0/8, ::1, localhost) or a local socket (no host, a socket path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        socket = (parse_qs(parts.query).get("host") or [""])[0]
        return bool(parts.scheme) and (
            socket.startswith("/") or ("unix" in parts.scheme and parts.path.startswith("/"))
        )
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sandbox_check(env: Mapping[str, str]) -> tuple[bool, str]:
    """(True, "") for the sandbox, else (False, why not) in one line without any URL."""
    marker = env.get(MARKER) or ""
    if not marker:
        return False, f"no sandbox marker ({MARKER})"
    missing = [k for k in REQUIRED if not env.get(k)]
    if missing:
        return False, f"{', '.join(missing)} not set (it would default to production)"
    remote = [k for k in _URL_VARS if env.get(k) and not is_local(str(env[k]))]
    if remote:
        return False, f"{', '.join(remote)} not a loopback address"
    if env.get("AWS_PROFILE"):
        return False, "AWS_PROFILE is set"
    if marker != fingerprint(env):
        return False, "the target variables changed since the sandbox exported its marker"
    return True, ""


def is_sandbox(env: Mapping[str, str]) -> bool:
    return sandbox_check(env)[0]
