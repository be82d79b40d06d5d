"""What the sandbox refuses to inherit: every setting that could point a client at a real target.

The sandbox builds its own world and points every variable at it, whatever the environment says. A
variable that names (or changes how a client finds) a real database, Redis, API, Twilio, Meta Graph or
AWS account is *ignored*: it is removed from the environment of every process the sandbox starts or
drives (PostgreSQL, Redis, the kernels of ``demo``, JupyterLab of ``lab --sandbox``), and the sandbox's
own clients never read it. The sandbox says so in one line on stderr, naming the variables (never their
values).

The class, not a list of examples:

- ``AWS_*`` and ``BOTO_CONFIG``: profiles, config and credentials files, per-service endpoints
  (``AWS_ENDPOINT_URL_S3``), ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``, keys, tokens, roles, regions. The
  sandbox sets its own keys, region and endpoint.
- ``PROPFLOW_*`` except the folders (``*_DIR``), the sandbox's own options (``PROPFLOW_SANDBOX_*``),
  the test suite's knobs (``PROPFLOW_SAFETY_*``) and how long a step's verification may wait
  (``PROPFLOW_VERIFY_TIMEOUT_S``): every target URL, the alembic config, any future ``PROPFLOW_*_URL``.
- ``TWILIO_*``, ``WHATSAPP_*``, ``META_*``: the messaging providers' accounts and tokens.
- ``DATABASE_URL``/``*_DATABASE_URL``/``*_DATABASE_URI`` and ``REDIS*``/``*_REDIS_URL``: the
  twelve-factor names a library may fall back to.
- libpq's ``PG*`` (``PGHOSTADDR``, ``PGSERVICE``, ``PGOPTIONS``, ``PGPASSWORD`` ... would redirect or
  alter every PostgreSQL connection made without that option spelled out).
- HTTP proxies (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, any case): the sandbox's traffic (canary
  tokens included) stays on loopback; ``NO_PROXY`` is set to loopback.

External servers for the sandbox itself are named only by sandbox options
(``PROPFLOW_SANDBOX_DATABASE_URL``, ``PROPFLOW_SANDBOX_REDIS_URL``), never by a target variable.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping

SANDBOX_DATABASE_URL = "PROPFLOW_SANDBOX_DATABASE_URL"
SANDBOX_REDIS_URL = "PROPFLOW_SANDBOX_REDIS_URL"
LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"

_PREFIXES = ("AWS_", "TWILIO_", "WHATSAPP_", "META_", "REDIS")
_EXACT = frozenset(
    {
        "BOTO_CONFIG",
        "DATABASE_URL",
        "DATABASE_URI",
        "SQLALCHEMY_DATABASE_URI",
        "SQLALCHEMY_DATABASE_URL",
    }
)
_PATTERNS = (
    re.compile(r"^PG[A-Z_]*$"),  # libpq (and pg_ctl's PGDATA)
    re.compile(r"^[A-Za-z_]*_(DATABASE|REDIS)_UR[LI]$", re.IGNORECASE),
    re.compile(r"^(HTTPS?|ALL|FTP|WS|WSS)_PROXY$", re.IGNORECASE),
)
_PROPFLOW_KEEP = re.compile(r"^PROPFLOW_([A-Z_]+_DIR|SANDBOX_[A-Z_]+|SAFETY_[A-Z_]+|VERIFY_TIMEOUT_S)$")


def is_target_variable(name: str) -> bool:
    """True when ``name`` can point a client at something that is not the sandbox."""
    if name.startswith("PROPFLOW_"):
        return not _PROPFLOW_KEEP.match(name)
    if name in _EXACT or name.startswith(_PREFIXES):
        return True
    return any(p.match(name) for p in _PATTERNS)


def ignored(env: Mapping[str, str] | None = None) -> list[str]:
    """The target variables present in ``env`` (default: this process's environment), sorted."""
    env = os.environ if env is None else env
    return sorted(name for name in env if is_target_variable(name))


def clean(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without any target variable, proxies pinned to loopback."""
    env = os.environ if env is None else env
    out = {k: v for k, v in env.items() if not is_target_variable(k)}
    out["NO_PROXY"] = out["no_proxy"] = LOOPBACK_NO_PROXY
    return out


def pointed_at(sandbox_env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a process the sandbox drives: ``base`` cleaned, then the sandbox's own."""
    return {**clean(base), **sandbox_env}


def scrub(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove the target variables from ``environ`` (default: ``os.environ``), for a process that *is*
    the sandbox (``propflow-ops sandbox``, ``demo``, ``lab --sandbox``): whatever it starts later inherits
    a clean environment. Returns the names removed."""
    environ = os.environ if environ is None else environ
    names = ignored(environ)
    for name in names:
        environ.pop(name, None)
    environ["NO_PROXY"] = environ["no_proxy"] = LOOPBACK_NO_PROXY
    return names


def scrub_libpq(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove libpq's ``PG*`` variables from ``environ`` (default: ``os.environ``). libpq reads them at
    every connection (``PGHOSTADDR`` overrides a unix-socket host, ``PGSERVICE`` and ``PGOPTIONS`` add
    settings) and a connection string cannot say "ignore the environment", so the sandbox's own
    process drops them while it runs."""
    environ = os.environ if environ is None else environ
    names = sorted(n for n in environ if _PATTERNS[0].match(n))
    for name in names:
        environ.pop(name, None)
    return names


def notice(names: list[str]) -> str:
    """The one line that says which inherited variables the sandbox ignores (names only, no value)."""
    return (
        "propflow-ops sandbox: ignoring target settings inherited from the environment (the sandbox "
        f"points everything at its own world): {', '.join(names)}"
    )


_ANNOUNCED: set[str] = set()


def announce(names: list[str]) -> None:
    """Print :func:`notice` on stderr once per process for the same names."""
    fresh = [n for n in names if n not in _ANNOUNCED]
    if not fresh:
        return
    _ANNOUNCED.update(fresh)
    print(notice(sorted(fresh)), file=sys.stderr, flush=True)
