"""Where a target URL points, without the URL itself (it may carry a password)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit


def url_host(url: str | None, *, port: bool = False) -> str | None:
    """The host of ``url`` in lower case (``host:port`` with ``port=True``), or None when there is none.

    Unix sockets: ``postgresql://u@/db?host=/tmp/pg`` gives ``/tmp/pg``, ``unix:///tmp/redis.sock``
    gives ``/tmp/redis.sock``. Never the user, password, path or query otherwise.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
        number = parts.port if port else None
    except ValueError:
        return None
    if parts.hostname:
        return parts.hostname + (f":{number}" if number else "")
    hosts = parse_qs(parts.query).get("host")
    if hosts:
        return hosts[0]
    if "unix" in parts.scheme and parts.path:
        return parts.path
    return None


def health_url(api_url: str) -> str:
    """The API's ``/health`` URL."""
    return api_url.rstrip("/") + "/health"
