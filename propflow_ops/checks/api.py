"""API checks: the ``/health`` probe.

Input: the result of ``sources.http.probe`` (``url``, ``ok``, ``status``,
``latency_ms``, ``attempts``, ``body``, ``error``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.findings import Finding
from propflow_ops.urls import health_url as health_url  # the notebooks call api.health_url

#: A healthy /health answers well under this; slower is a warning, not an outage.
HEALTH_SLOW_MS = 2000.0


def health(probe: Mapping[str, Any] | BaseException | None, *, slow_ms: float = HEALTH_SLOW_MS) -> Finding:
    """``API_HEALTH_FAILING``: ``/health`` did not answer 2xx/3xx after the retries (5xx, timeout, refused).
    ``warn`` when it answered only after retrying, or slower than ``slow_ms``."""
    code, title = "API_HEALTH_FAILING", "API /health"
    if isinstance(probe, BaseException):
        return Finding.error(code, title, probe)
    if not probe:
        return Finding.skipped(code, title, "no API URL configured (PROPFLOW_API_URL)")
    url = probe.get("url") or "/health"
    status = probe.get("status")
    latency = probe.get("latency_ms")
    attempts = int(probe.get("attempts") or 0)
    body = probe.get("body")
    data = {
        "url": url,
        "status": status,
        "latency_ms": latency,
        "attempts": attempts,
        "body": body if isinstance(body, (dict, list)) else (str(body)[:300] if body else None),
    }
    if not probe.get("ok"):
        what = f"HTTP {status}" if status else (probe.get("error") or "no answer")
        reason = _reason(body)
        return Finding.fail(
            code,
            f"/health failing ({what})",
            f"{url}: {what} after {attempts} attempt(s)" + (f"; body says {reason}" if reason else ""),
            **data,
        )
    if attempts > 1:
        return Finding.warn(
            code,
            f"/health flaky (ok on attempt {attempts})",
            f"{url}: HTTP {status} in {latency} ms after {attempts - 1} failed attempt(s)",
            **data,
        )
    if latency is not None and float(latency) > slow_ms:
        return Finding.warn(
            code,
            f"/health slow ({float(latency):.0f} ms)",
            f"{url}: HTTP {status} but slower than {slow_ms:g} ms",
            **data,
        )
    return Finding.ok(code, f"/health OK (HTTP {status}, {float(latency or 0):.0f} ms)", f"{url}", **data)


def _reason(body: Any) -> str:
    if isinstance(body, Mapping):
        parts = [f"{k}={v}" for k, v in body.items() if isinstance(v, (str, int, float, bool))]
        nested = [f"{k}={v}" for k, v in body.items() if isinstance(v, Mapping)]
        return ", ".join(parts + nested)[:300]
    return str(body or "")[:200]


def probe_table(probe: Mapping[str, Any] | None) -> pd.DataFrame:
    """The probe as a one-row table for display (no headers, no tokens)."""
    if not probe:
        return pd.DataFrame(columns=["url", "ok", "status", "latency_ms", "attempts", "error"])
    return pd.DataFrame(
        [{k: probe.get(k) for k in ("url", "ok", "status", "latency_ms", "attempts", "error")}]
    )


def follow_ups(findings: Iterable[Finding], *, current: str = "") -> dict[str, str]:
    """{runbook slug: reason} for the failed findings that another runbook covers (not ``current``)."""
    out: dict[str, str] = {}
    for f in findings:
        rule = codes.follow_up(f.code)
        if f.status == "fail" and rule and rule[0] != current and rule[0] not in out:
            out[rule[0]] = f"{f.code}: {rule[1]}"
    return out
