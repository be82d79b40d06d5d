from datetime import UTC, datetime, timedelta

import pytest

from propflow_ops.incident import BadInput, clock, parse_severity, parse_time, rto_verdict

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("sev,minutes", [("P0", 15), ("P1", 60), ("P2", 240), ("P3", 1440)])
def test_response_due_follows_the_severity_matrix(sev, minutes):
    c = clock("INC-1", sev, T0, now=T0)
    assert c["response_due_at"] == (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "elapsed,due",
    [
        (5, None),
        (15, "Notify on-call engineer"),
        (31, "Notify engineering lead"),
        (60, "Notify CTO"),
        (125, "Consider external communication"),
    ],
)
def test_p0_escalation_steps_fall_due_on_the_matrix(elapsed, due):
    assert clock("INC-1", "P0", T0, now=T0 + timedelta(minutes=elapsed))["escalation_due"] == due


def test_p1_skips_the_p0_only_step_and_p2_escalates_only_when_overdue():
    assert clock("I", "P1", T0, now=T0 + timedelta(minutes=20))["escalation_due"] is None
    assert clock("I", "P1", T0, now=T0 + timedelta(minutes=45))["escalation_due"] == "Notify engineering lead"
    assert clock("I", "P2", T0, now=T0 + timedelta(hours=3))["escalation_due"] is None
    late = clock("I", "P2", T0, now=T0 + timedelta(hours=5))
    assert late["response_overdue"] and "overdue" in late["escalation_due"]


def test_bad_severity_and_time_are_bad_input():
    with pytest.raises(BadInput):
        parse_severity("P7", "P0")
    with pytest.raises(BadInput):
        parse_time("yesterday")
    assert parse_time("2026-11-26T03:00:00Z") == T0
    assert parse_severity("p2", "P0") == "P2"


def test_rto_verdicts():
    assert rto_verdict("api", T0, T0 + timedelta(minutes=14))["verdict"] == "met"
    assert rto_verdict("api", T0, T0 + timedelta(minutes=16))["verdict"] == "missed"
    assert rto_verdict("database", T0, T0 + timedelta(minutes=59))["verdict"] == "met"
    assert rto_verdict("file-storage", T0, None)["verdict"] == "not recovered"
