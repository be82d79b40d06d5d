"""Every input of a run, checked before anything runs: one place, reused by ``run``, ``review`` and (later)
config files. Each check raises :class:`~propflow_ops.incident.BadInput` with one line for the engineer
(the command turns it into exit 2, nothing written).

What is refused:

- numbers that are not finite (``nan``, ``inf``) anywhere, and numbers outside the range of their
  parameter (:data:`NUMBER_RULES`, decided per parameter of the notebooks' parameters cells: percentages
  0..100, shares 0..1, durations and thresholds positive, counts bounded);
- the time budget: finite, 1 s .. 24 h;
- ``--started-at``: ISO 8601 with a time zone or UTC by default, at most :data:`FUTURE_SLACK` ahead of
  now and at most :data:`MAX_PAST` before it (:data:`REVIEW_MAX_PAST` for the post-incident review);
- incident ids outside :data:`INCIDENT_ID` (``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``, no ``..``);
- control characters (C0, DEL, C1, Unicode format characters such as bidi overrides and zero-width
  marks, line/paragraph separators) in any string option, parameter or target URL; SQL parameters
  (``*_query``) may hold newlines and tabs;
- target URLs (environment and parameters) that do not parse, have the wrong scheme, no host, or a port
  that is not a number in 1..65535.

``resolve_output_dir`` makes the output folder absolute against the caller's working directory (the
kernel runs in ``notebooks/``: a relative path would point somewhere else there).
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from propflow_ops.findings import utcnow
from propflow_ops.incident import BadInput, parse_time
from propflow_ops.redact import redact_text

# ---------------------------------------------------------------- incident ids

INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_incident_id(value: str, *, name: str = "incident id") -> str:
    """An incident id is also a folder name: letters, digits, '.', '_', '-', at most 64, no '..'."""
    if not isinstance(value, str) or not INCIDENT_ID.fullmatch(value) or ".." in value:
        raise BadInput(f"{name} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}} without '..', not {value!r}")
    return value


# ---------------------------------------------------------------- control characters

_MULTILINE_OK = "\n\t\r"


def has_control(text: str, allow: str = "") -> bool:
    """C0/C1 controls, DEL, format characters (bidi overrides, zero-width), line/paragraph separators."""
    for ch in text:
        if ch in allow:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return True
    return False


def check_text(name: str, value: str, *, multiline: bool = False) -> str:
    if has_control(value, _MULTILINE_OK if multiline else ""):
        raise BadInput(f"{name} holds a control character: {redact_text(value)[:80]!r}")
    return value


def multiline_parameter(name: str) -> bool:
    """Parameters that are SQL may span lines."""
    return name.endswith("_query") or name.endswith("_sql")


# ---------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    low_open: bool = False  # True: the value must be greater than low (durations, thresholds)
    what: str = ""

    def text(self) -> str:
        return f"{'>' if self.low_open else '>='} {self.low:g} and <= {self.high:g}" + (
            f" ({self.what})" if self.what else ""
        )

    def holds(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high


DAY_S = 86_400.0
PERCENT = Range(0, 100, what="a percentage")
SHARE = Range(0, 1, what="a share, 0.1 is 10%")
SECONDS = Range(0, DAY_S, low_open=True, what="seconds")
MILLISECONDS = Range(0, DAY_S * 1000, low_open=True, what="milliseconds")
MINUTES = Range(0, 30 * 24 * 60, low_open=True, what="minutes, at most 30 days")
RATE = Range(0, 1e6, what="per minute")
COUNT = Range(0, 1e6)

# Per parameter of the notebooks' parameters cells; a name not listed falls back on its suffix
# (:data:`SUFFIX_RULES`), and a number with neither gets :data:`DEFAULT_RULE`.
NUMBER_RULES: dict[str, Range] = {
    "window_minutes": Range(0, 30 * 24 * 60, low_open=True, what="minutes, at most 30 days"),
    "recent_minutes": Range(0, 30 * 24 * 60, low_open=True, what="minutes, at most 30 days"),
    "rpo_minutes": MINUTES,
    "orphan_age_days": Range(1, 3650, what="days: 0 would call every fresh upload an orphan"),
    "health_retries": Range(0, 10, what="extra attempts"),
    "rollback_revision": Range(0, 1e7, what="a task definition revision, 0 = the previous one"),
    "scale_to": Range(0, 1000, what="tasks"),
    "send_error_threshold": SHARE,
    "reconnect_spike_factor": Range(1, 1e6, what="a factor over the typical minute"),
    "reconnect_min_per_minute": RATE,
    "error_spike_per_min": RATE,
    "errors_per_min": RATE,
    "twilio_min_balance": Range(0, 1e9, what="account currency"),
}
SUFFIX_RULES: tuple[tuple[str, Range], ...] = (
    ("_pct", PERCENT),
    ("_ms", MILLISECONDS),
    ("_s", SECONDS),
    ("_minutes", MINUTES),
    ("_per_min", RATE),
    ("_per_minute", RATE),
    ("_days", Range(1, 3650, what="days")),
    ("_retries", Range(0, 10)),
    ("_count", COUNT),
)
DEFAULT_RULE = Range(0, 1e9)


def number_rule(name: str) -> Range:
    if name in NUMBER_RULES:
        return NUMBER_RULES[name]
    for suffix, rule in SUFFIX_RULES:
        if name.endswith(suffix):
            return rule
    return DEFAULT_RULE


def has_rule(name: str) -> bool:
    """True when ``name`` has a decided range (not the generic fallback)."""
    return name in NUMBER_RULES or any(name.endswith(s) for s, _ in SUFFIX_RULES)


def check_number(label: str, value: float, rule: Range) -> float:
    """``value`` finite and inside ``rule``; ``label`` names it in the message (``parameter X``, ``--budget``)."""
    if isinstance(value, bool):
        return value
    if not math.isfinite(value):
        raise BadInput(f"{label} must be a finite number, not {value}")
    if not rule.holds(value):
        if value < 0 <= rule.low:
            raise BadInput(f"{label} must not be negative, got {value:g} (it must be {rule.text()})")
        raise BadInput(f"{label} must be {rule.text()}, not {value:g}")
    return value


BUDGET = Range(1, DAY_S, what="seconds")


def check_budget(value: float) -> float:
    return check_number("--budget", value, BUDGET)


def check_parameter(name: str, value: Any) -> Any:
    """A parameter value (any type, after coercion): finite and in range, no control characters."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return check_number(f"parameter {name}", value, number_rule(name))
    if isinstance(value, str):
        check_text(f"parameter {name}", value, multiline=multiline_parameter(name))
        if value and (name.endswith("_incident") or name.endswith("incident_id")):
            check_incident_id(value, name=f"parameter {name}")
        if value and _looks_like_url_parameter(name):
            check_url(f"parameter {name}", value, _scheme_for_parameter(name))
        return value
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_parameter(f"{name}[{k!r}]", k)
            check_parameter(f"{name}[{k!r}]", v)
        return value
    if isinstance(value, (list, tuple, set)):
        for item in value:
            check_parameter(name, item)
        return value
    return value


# ---------------------------------------------------------------- times

FUTURE_SLACK = timedelta(minutes=5)  # clocks drift; an incident does not start in the future
MAX_PAST = timedelta(days=30)  # older than CloudWatch's useful look-back for an incident in progress
REVIEW_MAX_PAST = timedelta(days=3 * 365)  # a post-incident review may come long after the incident
_REVIEW_SLUGS = ("post-incident",)


def max_past(slug: str) -> timedelta:
    """How far back ``--started-at`` may lie for this runbook."""
    return REVIEW_MAX_PAST if slug in _REVIEW_SLUGS else MAX_PAST


def check_started_at(
    value: str | None,
    *,
    name: str = "--started-at",
    now: datetime | None = None,
    max_past: timedelta = MAX_PAST,
) -> datetime:
    """ISO 8601 (UTC when it has no zone), within [now - 30 days (3 years for a review), now + 5 min]."""
    if value is not None:
        check_text(name, value)
    try:
        dt = parse_time(value, name=name)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, BadInput):
            raise
        raise BadInput(f"{name} is not a usable time: {value!r}") from None
    now = now or utcnow()
    if dt > now + FUTURE_SLACK:
        raise BadInput(f"{name} {value} is in the future (now is {now:%Y-%m-%dT%H:%M:%SZ})")
    if dt < now - max_past:
        raise BadInput(f"{name} {value} is more than {max_past.days} days ago")
    return dt


# ---------------------------------------------------------------- target URLs

HTTP = ("http", "https")
POSTGRES = ("postgresql", "postgres")  # with an optional +driver (postgresql+psycopg)
REDIS = ("redis", "rediss", "unix")

# The environment variables that name a target, and the schemes each may have.
TARGET_URLS: dict[str, tuple[str, ...]] = {
    "PROPFLOW_API_URL": HTTP,
    "PROPFLOW_TWILIO_API_URL": HTTP,
    "PROPFLOW_META_GRAPH_URL": HTTP,
    "AWS_ENDPOINT_URL": HTTP,
    "PROPFLOW_DATABASE_URL": POSTGRES,
    "PROPFLOW_REDIS_URL": REDIS,
}
# Service-specific botocore endpoints (AWS_ENDPOINT_URL_S3, _ECS...) are targets too.
_AWS_SERVICE_ENDPOINT = re.compile(r"^AWS_ENDPOINT_URL_[A-Z0-9_]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


def _looks_like_url_parameter(name: str) -> bool:
    return name.endswith("_url")


def _scheme_for_parameter(name: str) -> tuple[str, ...]:
    if "database" in name or name.startswith("db_"):
        return POSTGRES
    if "redis" in name:
        return REDIS
    return HTTP


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        import ipaddress

        try:
            ipaddress.IPv6Address(host[1:-1].split("%", 1)[0])
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME.match(host))


def _check_hostport(name: str, shown: str, hostport: str, *, need_host: bool) -> None:
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if port is None:
            raise BadInput(f"{name} has a malformed host: {shown!r}")
    else:
        host, colon, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        if not colon:
            host, port = hostport, ""
    if not host:
        if need_host:
            raise BadInput(f"{name} has no host: {shown!r}")
    elif not _valid_host(host):
        raise BadInput(f"{name} has a malformed host: {shown!r}")
    if port != "":
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise BadInput(f"{name} has a port that is not a number in 1..65535: {shown!r}")


def check_url(name: str, value: str, schemes: Iterable[str]) -> str:
    """A target URL: known scheme, a host (or a unix socket), ports numeric in 1..65535, no control chars.

    The message never echoes a password (the URL is shown masked)."""
    schemes = tuple(schemes)
    shown = redact_text(value)
    if has_control(value) or any(c.isspace() for c in value):
        raise BadInput(f"{name} holds a control character or a space: {shown[:120]!r}")
    if "://" not in value:
        raise BadInput(f"{name} is not a URL ({'/'.join(schemes)}://...): {shown!r}")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise BadInput(f"{name} is not a URL: {shown!r}") from None
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if base not in schemes or ("+" in scheme and schemes != POSTGRES):
        raise BadInput(f"{name} must be a {'/'.join(schemes)} URL, not {scheme or 'no scheme'}: {shown!r}")
    netloc = parts.netloc.rpartition("@")[2]  # the host part: after the LAST '@' (a password may hold '@')
    if scheme == "unix":
        if not parts.path:
            raise BadInput(f"{name} names no socket path: {shown!r}")
        return value
    socket_host = bool(parse_qs(parts.query).get("host")) if base in POSTGRES else False
    hosts = netloc.split(",") if base in POSTGRES else [netloc]  # libpq accepts host1:p1,host2:p2
    for hostport in hosts:
        _check_hostport(name, shown, hostport, need_host=not socket_host)
    if base in REDIS and parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise BadInput(f"{name} has a database number that is not a number: {shown!r}")
    return value


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Every target URL in the environment, before a kernel starts (a typo should not become a 'fail')."""
    env = os.environ if env is None else env
    for name, schemes in TARGET_URLS.items():
        value = env.get(name)
        if value:
            check_url(name, value, schemes)
    for name in sorted(env):
        if _AWS_SERVICE_ENDPOINT.match(name) and env[name]:
            check_url(name, env[name], HTTP)
    cfg = env.get("PROPFLOW_ALEMBIC_CONFIG")
    if cfg:
        check_text("PROPFLOW_ALEMBIC_CONFIG", cfg)
        if not (os.path.isfile(cfg) and os.access(cfg, os.R_OK)):
            raise BadInput(f"PROPFLOW_ALEMBIC_CONFIG names a file that cannot be read: {cfg}")


# ---------------------------------------------------------------- the output folder


def resolve_output_dir(
    output_dir: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
    """``--output-dir``, else PROPFLOW_OUTPUT_DIR, else ./outputs: absolute against the caller's working dir."""
    env = os.environ if env is None else env
    raw = os.fspath(output_dir) if output_dir else (env.get("PROPFLOW_OUTPUT_DIR") or "outputs")
    check_text("the output folder", raw)
    return Path(os.path.abspath(os.path.expanduser(raw)))
