"""The incident record (propflow_ops.incident_record) and `propflow-ops incident ...` (no kernel, no sandbox)."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from propflow_ops import cli
from propflow_ops import incident_record as ir
from propflow_ops import operator as operator_mod
from propflow_ops.incident import BadInput

from .helpers import ALICE, BOB, T0, at, z


def test_the_first_run_opens_later_runs_join_and_an_explicit_value_is_an_override(tmp_path):
    store = ir.LocalStore(tmp_path)
    st, written = ir.open_or_join(
        store,
        "INC-7",
        severity="P0",
        started_at=T0,
        severity_given=False,
        started_given=True,
        by=ALICE,
        via="run triage",
    )
    assert [e["event"] for e in written] == ["opened"]
    assert (st.severity, st.started_at, st.opened_by, st.opened_via) == ("P0", T0, ALICE, "run triage")
    # sixteen minutes later a run with no --started-at and the runbook's default severity joins: nothing changes
    asked = []
    st2, written2 = ir.open_or_join(
        store,
        "INC-7",
        severity="P1",
        started_at=at(16),
        severity_given=False,
        started_given=False,
        by=lambda: asked.append(1) or BOB,
        via="run api-down",
    )
    assert written2 == [] and asked == []  # joining writes nothing and does not wait for the operator
    assert (st2.severity, st2.started_at) == ("P0", T0)
    # an explicit --severity that differs is recorded as an override, by whom, and the record follows it
    st3, written3 = ir.open_or_join(
        store,
        "INC-7",
        severity="P1",
        started_at=at(20),
        severity_given=True,
        started_given=False,
        by=BOB,
        via="run api-latency",
    )
    assert [(e["event"], e["field"], e["previous"], e["value"], e["by"]["user"]) for e in written3] == [
        ("override", "severity", "P0", "P1", "bob")
    ]
    assert st3.severity == "P1" and st3.started_at == T0
    lines = (tmp_path / "INC-7" / ir.RECORD).read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["schema"] == ir.SCHEMA for x in lines)


def test_ack_resolve_note_with_times_and_authors(tmp_path):
    store = ir.LocalStore(tmp_path)
    with pytest.raises(BadInput, match="has no record"):
        ir.record(store, "INC-8", "ack", ALICE)
    ir.open_or_join(
        store,
        "INC-8",
        severity="P0",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="incident open",
    )
    st, ev, msg = ir.record(store, "INC-8", "ack", BOB, at(9))
    assert st.acknowledged_at == at(9) and st.acknowledged_by == BOB and "bob@laptop-b" in msg
    st, ev, msg = ir.record(store, "INC-8", "ack", ALICE, at(12))
    assert ev is None and "already acknowledged by bob@laptop-b" in msg and st.acknowledged_at == at(9)
    ir.record(store, "INC-8", "note", ALICE, at(10), text="rolled back to 1.14.2")
    st, ev, _ = ir.record(store, "INC-8", "resolve", ALICE, at(25), text="healthy again")
    assert st.resolved_at == at(25) and [n["text"] for n in st.notes] == ["rolled back to 1.14.2"]
    assert st.operators() == [
        "alice@laptop-a (arn:aws:iam::111122223333:user/alice)",
        "bob@laptop-b (AWS identity unknown)",
    ]
    ir.open_or_join(
        store,
        "INC-10",
        severity="P0",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="incident open",
    )
    with pytest.raises(BadInput, match="before the incident started"):
        ir.record(store, "INC-10", "ack", ALICE, at(-5))


def _open_many(args: tuple[str, int]) -> int:
    root, n = args
    store = ir.LocalStore(root)
    _, written = ir.open_or_join(
        store,
        "RACE",
        severity="P0",
        started_at=at(n),
        severity_given=False,
        started_given=False,
        by={"user": f"u{n}", "host": "h", "aws_arn": "unknown"},
        via=f"run {n}",
    )
    for i in range(20):
        with store.session("RACE") as s:
            s.append(ir.event("note", {"user": f"u{n}"}, text=f"{n}-{i}-" + "x" * 3000))
    return len(written)


def test_concurrent_writers_agree_on_one_opening_and_tear_no_line(tmp_path):
    with multiprocessing.get_context("fork").Pool(6) as pool:
        opened = pool.map(_open_many, [(str(tmp_path), n) for n in range(6)])
    assert sum(opened) == 1
    events = ir.LocalStore(tmp_path).events("RACE")
    assert [e["event"] for e in events].count("opened") == 1
    assert len(events) == 1 + 6 * 20 and not any(e["event"] == "corrupt" for e in events)


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    store = ir.LocalStore(tmp_path)
    ir.open_or_join(
        store,
        "INC-T",
        severity="P2",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="incident open",
    )
    with open(store.path("INC-T"), "ab") as fh:
        fh.write(b'{"event": "ack", "at": "2026-')  # a writer killed mid-line
    st = ir.load(store, "INC-T")
    assert st.exists and st.acknowledged_at is None and st.corrupt_lines == 1


@pytest.fixture
def as_alice(monkeypatch):
    monkeypatch.setattr(operator_mod, "current", lambda env=None, deadline_s=0: dict(ALICE))


def test_incident_commands(tmp_path, capsys, as_alice, monkeypatch):
    monkeypatch.delenv("PROPFLOW_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    out = ["--output-dir", str(tmp_path / "out")]
    assert cli.main(["incident", "ack", "INC-9", *out]) == 2
    assert "has no record" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "incident",
                "open",
                "INC-9",
                "--severity",
                "P0",
                "--started-at",
                z(T0),
                "--title",
                "API down",
                *out,
            ]
        )
        == 0
    )
    assert "opened INC-9: P0, started 2026-11-26T14:00:00Z, by alice@laptop-a" in capsys.readouterr().out
    assert cli.main(["incident", "ack", "INC-9", "--at", z(at(7)), *out]) == 0
    assert "response time: 7.0 min" in capsys.readouterr().out
    assert cli.main(["incident", "note", "INC-9", "memory limit raised to 2 GB", "--at", z(at(8)), *out]) == 0
    assert cli.main(["incident", "resolve", "INC-9", "--at", z(at(30)), "--note", "all ok", *out]) == 0
    assert "time to resolution: 30.0 min" in capsys.readouterr().out
    assert cli.main(["incident", "ack", "INC-9", "--at", z(at(40)), *out]) == 0
    assert "already acknowledged" in capsys.readouterr().out
    assert cli.main(["incident", "show", "INC-9", *out]) == 0
    shown = capsys.readouterr().out
    assert (
        "INC-9 P0 (API down): opened" in shown
        and "note: memory limit raised to 2 GB [alice@laptop-a" in shown
    )
    assert "acknowledged: 2026-11-26T14:07:00Z by alice@laptop-a" in shown
    assert cli.main(["incident", "show", "INC-9", "--json", *out]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["resolved_at"] == "2026-11-26T14:30:00Z" and state["notes"] == 1
    assert cli.main(["incident", "note", "../x", "hi", *out]) == 2
    assert cli.main(["incident", "ack", "INC-9", "--at", "soon", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


def test_operator_is_unknown_within_its_deadline_when_aws_does_not_answer():
    import socket
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts, never answers
    try:
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{srv.getsockname()[1]}",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_REGION": "us-east-1",
        }
        t0 = time.monotonic()
        who = operator_mod.current(env, deadline_s=1.0)
        assert time.monotonic() - t0 < 2.0
    finally:
        srv.close()
    assert who["aws_arn"] == "unknown" and who["user"] and who["host"] == os.uname().nodename
    assert "within 1 s" in who["aws_error"] or who["aws_error"]


def test_a_run_opens_without_waiting_for_sts_and_completes_the_identity_later(tmp_path):
    store = ir.LocalStore(tmp_path)
    pending = {"aws_arn": ir.PENDING, "user": "alice", "host": "laptop-a"}
    ir.open_or_join(
        store,
        "INC-P",
        severity="P0",
        started_at=T0,
        severity_given=False,
        started_given=True,
        by=pending,
        via="run triage",
    )
    assert operator_mod.label(ir.load(store, "INC-P").opened_by) == "alice@laptop-a (AWS identity pending)"
    ir.record(store, "INC-P", "note", BOB, at(1), text="bob's pending-free note")
    with store.session("INC-P") as s:
        s.append(ir.event("operator", ALICE, completes="..."))
    st = ir.load(store, "INC-P")
    assert st.opened_by == ALICE and "operator" not in [e["event"] for e in st.events]
    assert st.notes[0]["by"] == BOB
