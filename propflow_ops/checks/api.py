"""API checks: the ``/health`` probe.

Input: the :class:`~propflow_ops.results.Fetched` of ``sources.http.probe``: an
:class:`~propflow_ops.records.HttpAnswer` (``url``, ``status``, ``latency_ms``, ``attempts``, ``body``,
``problem``) when the server answered, else a one-line error (``unreachable`` when no answer came). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.findings import Finding
from propflow_ops.reach import unreachable
from propflow_ops.records import HttpAnswer
from propflow_ops.results import Fetched
from propflow_ops.urls import health_url as health_url  # the notebooks call api.health_url

#: A healthy /health answers well under this; slower is a warning, not an outage.
HEALTH_SLOW_MS = 2000.0

#: What a check reads of ``sources.http.probe``: its Fetched, or (unwrapped) the answer or the error.
Probe = Fetched[HttpAnswer] | HttpAnswer | BaseException | None


def answer_of(probe: Probe) -> tuple[HttpAnswer | BaseException | None, dict[str, Any]]:
    """A probe as (the answer, or the error; None when not configured) and the facts of a failed one
    (``url``, ``status`` None, ``latency_ms``, ``attempts``) for a finding's data."""
    if isinstance(probe, Fetched):
        outcome = probe.outcome
        facts = {
            "url": probe.target or None,
            "status": None,
            "latency_ms": round(probe.seconds * 1000, 2) if probe.error is not None else None,
            "attempts": getattr(probe.error, "attempts", None),
        }
        return outcome, facts
    return probe, {
        "url": None,
        "status": None,
        "latency_ms": None,
        "attempts": getattr(probe, "attempts", None),
    }


def health(probe: Probe, *, slow_ms: float = HEALTH_SLOW_MS) -> Finding:
    """``API_HEALTH_FAILING``: ``/health`` did not answer 2xx after the retries (3xx, 4xx, 5xx, timeout,
    refused: ``fail``). ``warn`` when it answered only after retrying, or slower than ``slow_ms``; ``error`` when
    it could not be asked (a URL it cannot request)."""
    code, title = "API_HEALTH_FAILING", "API /health"
    got, facts = answer_of(probe)
    if isinstance(got, BaseException):
        if not unreachable(got):
            return Finding.error(code, title, got, url=facts["url"])
        url = facts["url"] or "/health"
        attempts = int(facts["attempts"] or 0)
        data = {**facts, "url": url, "attempts": attempts, "body": None}
        return Finding.fail(
            code, f"/health failing ({got})", f"{url}: {got} after {attempts} attempt(s)", **data
        )
    if got is None:
        return Finding.skipped(code, title, "no API URL configured (PROPFLOW_API_URL)")
    url = got.url or "/health"
    status, latency, attempts, body = got.status, got.latency_ms, got.attempts, got.body
    data = {
        "url": url,
        "status": status,
        "latency_ms": latency,
        "attempts": attempts,
        "body": body if isinstance(body, (dict, list)) else (str(body)[:300] if body else None),
    }
    if not got.ok:
        what = f"HTTP {status}"
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


PROBE_COLUMNS = ["url", "ok", "status", "latency_ms", "attempts", "error"]


def probe_table(probe: Probe) -> pd.DataFrame:
    """The probe as a one-row table for display (no headers, no tokens); ``error`` is the answer's problem
    (a non-2xx) or why no answer came."""
    got, facts = answer_of(probe)
    if got is None:
        return pd.DataFrame(columns=PROBE_COLUMNS)
    if isinstance(got, BaseException):
        row = {**facts, "ok": False, "error": str(got)}
    else:
        row = {
            "url": got.url,
            "ok": got.ok,
            "status": got.status,
            "latency_ms": got.latency_ms,
            "attempts": got.attempts,
            "error": got.problem,
        }
    return pd.DataFrame([{k: row.get(k) for k in PROBE_COLUMNS}], columns=PROBE_COLUMNS)


def follow_ups(findings: Iterable[Finding], *, current: str = "") -> dict[str, str]:
    """{runbook slug: reason} for the failed findings that another runbook covers (not ``current``)."""
    out: dict[str, str] = {}
    for f in findings:
        rule = codes.follow_up(f.code)
        if f.status == "fail" and rule and rule[0] != current and rule[0] not in out:
            out[rule[0]] = f"{f.code}: {rule[1]}"
    return out
