"""The triage sweep's typed signals: a mistyped name fails loudly, a failed fetch is judged as error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from propflow_ops.checks import triage as t
from propflow_ops.errors import FetchError
from propflow_ops.findings import Status
from propflow_ops.results import Fetched, failed
from propflow_ops.signals import TriageSignals

END = datetime(2026, 11, 26, 3, 15, tzinfo=UTC)


def test_a_mistyped_signal_is_an_error_not_none():
    s = TriageSignals(end=END, start=END - timedelta(hours=1))
    with pytest.raises(AttributeError):
        _ = s.helth  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        TriageSignals(helth=Fetched())  # type: ignore[call-arg]
    assert "health" in TriageSignals.names() and "start" not in TriageSignals.names()


def test_every_failed_signal_is_judged_error_and_timed():
    every = {name: failed("ReadTimeout: no answer", name, 0.5) for name in TriageSignals.names()}
    s = TriageSignals(**every, start=END - timedelta(hours=1), end=END)
    found = t.judge(s)
    assert len(found) == 9
    assert {f.status for f in found} <= {Status.ERROR, Status.FAIL}, [(f.code, f.status) for f in found]
    timings = s.timings()
    assert list(timings.columns) == ["signal", "ms", "outcome"] and set(timings["outcome"]) == {"error"}
    assert set(timings["ms"]) == {500.0} and len(timings) == len(TriageSignals.names())
    assert "ReadTimeout" not in repr(s)
    assert (
        isinstance(s.health.outcome, FetchError)
        and "ReadTimeout: no answer" in found[0].data["checks"][0]["detail"]
    )


def test_a_dead_database_in_the_signals_is_the_database_components_fail():
    from propflow_ops.records import DatabaseSignals

    refused = FetchError("OperationalError: connection refused", unreachable=True)
    probe = DatabaseSignals(True, "db.internal", "env", Fetched(None, refused, "db.internal", 0.003))
    every = {name: failed("ReadTimeout: no answer", name, 0.5) for name in TriageSignals.names()}
    every["database"] = Fetched(probe, None, "database", 0.01)
    s = TriageSignals(**every, start=END - timedelta(hours=1), end=END)
    found = {f.code: f for f in t.judge(s)}
    checks = {c["code"]: c for c in found["TRIAGE_DATABASE"].data["checks"]}
    assert found["TRIAGE_DATABASE"].status is Status.FAIL
    assert (
        checks["DB_UNREACHABLE"]["status"] == "fail"
        and "connection refused" in checks["DB_UNREACHABLE"]["detail"]
    )
    assert "db.internal" not in repr(s)  # the record stays out of the signals' repr
