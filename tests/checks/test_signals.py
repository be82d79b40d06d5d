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


def test_signals_never_fetched_are_judged_skipped_not_a_crash():
    """The empty Fetched (never fetched, or not configured) of every signal: every component and every one of
    its checks is ``skipped`` (before issue 19 this raised AttributeError in the S3 and notification checks, and
    a never-described RDS instance, ECS service or bucket read as missing)."""
    found = t.judge(TriageSignals(start=END - timedelta(hours=1), end=END))
    assert [f.code for f in found] == [code for code, _ in t.COMPONENTS]
    assert {f.status for f in found} == {Status.SKIPPED}, [(f.code, f.status, f.title) for f in found]
    subs = [(c["code"], c["status"]) for f in found for c in f.data["checks"]]
    assert {status for _, status in subs} == {"skipped"}, subs
    assert all(f.title.endswith(": not checked") for f in found)


def test_an_unconfigured_alembic_is_a_typed_record_judged_skipped():
    """Triage's migration probe without PROPFLOW_ALEMBIC_CONFIG: an AlembicSignals of two empty fetches."""
    from propflow_ops.records import AlembicSignals
    from propflow_ops.results import Fetched

    s = TriageSignals(alembic=Fetched(AlembicSignals()), start=END - timedelta(hours=1), end=END)
    mig = {f.code: f for f in t.judge(s)}["TRIAGE_MIGRATIONS"]
    assert mig.status == Status.SKIPPED
    assert {c["code"] for c in mig.data["checks"]} >= {"MIGRATION_PENDING", "SCHEMA_DRIFT"}
    assert {c["status"] for c in mig.data["checks"]} == {"skipped"}


def test_an_unconfigured_provider_says_which_variables_are_missing():
    from propflow_ops.sources import twilio, whatsapp

    s = TriageSignals(
        twilio_account=twilio.account(twilio.config({})),
        twilio_balance=twilio.balance(twilio.config({})),
        whatsapp=whatsapp.phone_number(whatsapp.config({"WHATSAPP_TOKEN": "x"})),
        start=END - timedelta(hours=1),
        end=END,
    )
    notif = {f.code: f for f in t.judge(s)}["TRIAGE_NOTIFICATIONS"]
    checks = {c["code"]: c for c in notif.data["checks"]}
    assert checks["TWILIO_AUTH_FAILED"]["status"] == "skipped"
    assert "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN not set" in checks["TWILIO_AUTH_FAILED"]["detail"]
    assert "WHATSAPP_PHONE_NUMBER_ID not set" in checks["WHATSAPP_API_FAILING"]["detail"]


def test_a_redis_whose_info_failed_is_judged_from_the_typed_record():
    """Triage's Redis probe is a RedisProbe: PING answered (ok, one PING), INFO's own error makes memory and
    clients ``error`` saying why; no secret in the signals' repr."""
    from propflow_ops.records import RedisProbe

    no_info = FetchError("ResponseError: unknown command 'INFO'", unreachable=False)
    probe = RedisProbe(
        "cache.internal:6379",
        0.4,
        0.4,
        "task definition REDIS_URL",
        info=Fetched(None, no_info, "INFO cache.internal:6379"),
        config=Fetched({"maxclients": None, "maxmemory": None, "maxmemory-policy": None}),
        channels=Fetched({}),
    )
    cluster = {"cluster": "propflow-redis", "found": True, "status": "available"}
    s = TriageSignals(
        cache=Fetched(cluster, None, "cache"),
        redis=Fetched(probe, None, "cache.internal:6379", 0.01),
        start=END - timedelta(hours=1),
        end=END,
    )
    found = {f.code: f for f in t.judge(s)}["TRIAGE_REDIS"]
    checks = {c["code"]: c for c in found.data["checks"]}
    assert checks["REDIS_UNREACHABLE"]["status"] == "ok"
    assert checks["REDIS_UNREACHABLE"]["detail"] == "cache.internal:6379 PING 0.4 ms"
    for code in ("REDIS_MEMORY_PRESSURE", "REDIS_CLIENTS_EXHAUSTED"):
        assert checks[code]["status"] == "error"
        assert checks[code]["detail"] == "INFO unavailable: ResponseError: unknown command 'INFO'"
    assert found.status is Status.ERROR
    assert "cache.internal" not in repr(s)
