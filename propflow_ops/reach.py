"""Could each target be reached at all? One tally per target for the whole run.

The sources report every call they make to a target (AWS through botocore's event hooks, PostgreSQL
through SQLAlchemy's), and whether it failed for want of an answer: refused, timed out, throttled until
the retries gave up. At the end of the run :func:`findings` turns the tally into one finding per target
that was used: ``fail`` when any call went unanswered (the checks that needed it are ``error``, and the
run must not read as an all-clear: CONTRACT.md 2), ``ok`` otherwise. A runbook that already checks a
target's reachability itself (``DB_UNREACHABLE`` in api-down, say) keeps its own finding.

A target that timed out once is not waited on again in the same run: the sources :func:`trip` a
per-target breaker (keyed by origin: ``aws https://ecs...``, ``database host:port``, ``redis host:port``,
``http https://api...``) when a call to it timed out, and :func:`check` makes every later call to it fail
at once with :class:`TargetDown` (a ``ConnectionError``: it reads as unreachable). So a dead target costs a
run one timeout, not one per call.

State is per process (a kernel runs one run at a time) and reset by :func:`reset` (``notebook.begin`` calls
it at the top of each run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from propflow_ops.errors import DeadlineExceeded
from propflow_ops.findings import Finding

T = TypeVar("T")

# target -> (finding code, what it is called in a report)
TARGETS: dict[str, tuple[str, str]] = {
    "aws": ("AWS_UNREACHABLE", "AWS APIs"),
    "database": ("DB_UNREACHABLE", "PostgreSQL"),
}

# Markers (exception names, AWS error codes, message text) of a failure that means "no usable answer"
# (refused, timed out, throttled after retries), as opposed to an answer about the resource (access
# denied, not found). CONTRACT.md 2 reports the former as ``fail``.
UNREACHABLE_MARKERS = (
    "Throttl",
    "TooManyRequests",
    "RequestLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceeded",
    "ServiceUnavailable",
    "RequestTimeout",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "EndpointConnectionError",
    "ProxyConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "ConnectionClosed",
    "ConnectionRefused",
    "ConnectionReset",
    "OperationalError",
    "InterfaceError",
    "TimeoutError",
    "timed out",
    "Connection refused",
    "could not connect",
    "unreachable",
)
#: What libpq relays when the server answered and refused the session itself (credentials, access rules, a
#: database or role that does not exist): an answer about the request, not a database that is down. A server
#: refusing for want of capacity or while starting/stopping ("too many clients", "the database system is
#: starting up") is not among them: that is no usable answer.
SESSION_REFUSED_MARKERS = (
    "password authentication failed",
    "authentication failed for user",
    "password is required",
    "no password supplied",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects",
    "is not permitted to log in",
    "permission denied for database",
    '" does not exist',  # database "x" / role "x" does not exist
)
# HTTP statuses that mean the same whatever the error code says.
UNAVAILABLE_STATUS = frozenset({429, 502, 503, 504})


def unreachable(exc: BaseException | str | None) -> bool:
    """Whether a failure (an exception, or an error code or message) means the target did not answer usably."""
    if exc is None:
        return False
    flag = getattr(exc, "unreachable", None)
    if isinstance(flag, bool):  # a FetchError that kept what its original exception said: that decides
        return flag
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, str):
        response = getattr(exc, "response", None)
        code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
        text += " " + str(code)
    low = text.lower()
    if any(
        marker in low for marker in SESSION_REFUSED_MARKERS
    ):  # the server answered: it refused the session
        return False
    return any(marker.lower() in low for marker in UNREACHABLE_MARKERS)


@dataclass
class Tally:
    calls: int = 0
    failed: int = 0
    first_error: str = ""
    operations: set[str] = field(default_factory=set)


_lock = threading.Lock()
_tallies: dict[str, Tally] = {}
_tripped: dict[str, str] = {}  # breaker key -> why it tripped (first timeout)


class TargetDown(ConnectionError):
    """A call not tried: its target already timed out in this run (the breaker is open)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"not tried: {key} timed out earlier in this run ({reason})")
        self.key = key
        self.reason = reason


def reset() -> None:
    with _lock:
        _tallies.clear()
        _tripped.clear()


def trip(key: str, reason: str) -> None:
    """Open the breaker of ``key``: every later call to it in this run fails at once (:func:`check`)."""
    with _lock:
        _tripped.setdefault(key, (reason.strip().splitlines() or ["timed out"])[0][:200])


def tripped(key: str) -> str | None:
    """Why ``key``'s breaker is open, or None when it is closed."""
    with _lock:
        return _tripped.get(key)


def call_within(deadline_s: float, fn: Callable[[], T], what: str) -> T:
    """``fn()`` with a wall-clock deadline: it runs in a daemon thread, waited on for ``deadline_s``. Past
    it, :class:`~propflow_ops.errors.DeadlineExceeded`; the thread is left to end on its own (its connection
    belongs to a target that is now counted as not answering, and the process's end takes it)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"deadline: {what}"[:60], daemon=True).start()
    if not done.wait(max(0.01, deadline_s)):
        raise DeadlineExceeded(f"{what}: no complete answer within {deadline_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check(key: str) -> None:
    """Raise :class:`TargetDown` when ``key`` already timed out in this run."""
    reason = tripped(key)
    if reason is not None:
        raise TargetDown(key, reason)


TIMEOUT_MARKERS = ("timeout", "timed out", "deadline")


def timed_out(exc: BaseException | str | None) -> bool:
    """Whether a failure was a timeout (what trips a breaker; a refusal is fast and does not)."""
    if exc is None or isinstance(exc, TargetDown):
        return False
    if isinstance(exc, TimeoutError):
        return True
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    low = text.lower()
    return any(m in low for m in TIMEOUT_MARKERS)


def answered(target: str) -> None:
    """One call to ``target`` got an answer (an error about the resource counts: the target is up)."""
    with _lock:
        _tallies.setdefault(target, Tally()).calls += 1


def unanswered(target: str, reason: str, operation: str = "") -> None:
    """One call to ``target`` got no usable answer (refused, timed out, throttled past its retries)."""
    with _lock:
        t = _tallies.setdefault(target, Tally())
        t.calls += 1
        t.failed += 1
        if operation:
            t.operations.add(operation)
        if not t.first_error:
            t.first_error = reason[:300]


def tallies() -> dict[str, Tally]:
    with _lock:
        return {k: Tally(v.calls, v.failed, v.first_error, set(v.operations)) for k, v in _tallies.items()}


def findings(existing_codes: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """One finding per target this run used, unless the runbook reported that code itself."""
    out: list[Finding] = []
    for target, t in tallies().items():
        code, name = TARGETS.get(target, (f"{target.upper()}_UNREACHABLE", target))
        if code in existing_codes or t.calls == 0:
            continue
        data: dict[str, Any] = {"calls": t.calls, "unanswered": t.failed}
        if t.failed:
            ops = f" ({', '.join(sorted(t.operations)[:6])})" if t.operations else ""
            out.append(
                Finding.fail(
                    code,
                    f"{name} did not answer",
                    f"{t.failed} of {t.calls} call(s) got no usable "
                    f"answer{ops}; first: {t.first_error}. The checks that needed them are "
                    "error, not all-clear.",
                    **data,
                )
            )
        else:
            said = "the one call" if t.calls == 1 else f"all {t.calls} calls"
            out.append(Finding.ok(code, f"{name} answered", f"{said} answered", **data))
    return out


# ---------------------------------------------------------------- hooks


def aws_key(client: Any) -> str:
    return f"aws {client.meta.endpoint_url}"


def watch_boto3_client(client: Any) -> None:
    """Count every call of this botocore client (after its retries) in the ``aws`` tally; a call that timed
    out trips the endpoint's breaker, and later calls to that endpoint fail at once (:class:`TargetDown`)."""
    key = aws_key(client)

    def before_call(model: Any = None, **_: Any) -> None:
        reason = tripped(key)
        if reason is not None:
            op = f"{client.meta.service_model.service_name}:{getattr(model, 'name', '?')}"
            unanswered("aws", f"{op}: {TargetDown(key, reason)}", op)
            raise TargetDown(key, reason)

    def after_call(http_response: Any = None, parsed: Any = None, model: Any = None, **_: Any) -> None:
        status = getattr(http_response, "status_code", None)
        code = str((parsed.get("Error") or {}).get("Code") or "") if isinstance(parsed, dict) else ""
        op = f"{client.meta.service_model.service_name}:{getattr(model, 'name', '?')}"
        if status in UNAVAILABLE_STATUS or (code and unreachable(code)):
            unanswered("aws", f"{op}: {code or 'HTTP'} ({status})", op)
        else:
            answered("aws")

    def after_call_error(exception: BaseException | None = None, **kw: Any) -> None:
        from botocore.exceptions import NoCredentialsError, NoRegionError

        from propflow_ops.sources.aws import aws_error_text

        op = client.meta.service_model.service_name
        if exception is not None and unreachable(exception):
            unanswered("aws", f"{op}: {aws_error_text(exception)}", op)
            if timed_out(exception):
                trip(key, aws_error_text(exception))
        elif not isinstance(
            exception, (NoCredentialsError, NoRegionError)
        ):  # not configured is not unreachable
            answered("aws")

    client.meta.events.register("before-call", before_call)
    client.meta.events.register("after-call", after_call)
    client.meta.events.register("after-call-error", after_call_error)


def watch_engine(engine: Any) -> None:
    """Count connection attempts of this SQLAlchemy engine in the ``database`` tally."""
    import sqlalchemy as sa

    def on_connect(*_: Any) -> None:
        answered("database")

    def on_error(ctx: Any) -> None:
        if ctx.connection is None or ctx.is_disconnect:  # could not connect, or the server went away
            orig = ctx.original_exception
            text = (str(orig).strip().splitlines() or [""])[0]
            if any(marker in str(orig).lower() for marker in SESSION_REFUSED_MARKERS):
                answered("database")  # it answered, refusing the session: the checks say why
            else:
                unanswered("database", f"{type(orig).__name__}: {text}"[:300])

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "handle_error", on_error)
