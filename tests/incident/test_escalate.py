"""`propflow-ops escalate` against the sandbox: SNS in moto, Slack and PagerDuty stand-ins on loopback.

A simulated clock (``--now``) walks a P0 incident through its escalation matrix; every test asserts the
exact messages each channel received at each time, that nothing is sent twice, and that a dead channel
is reported, recorded and retried at the next escalate without failing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from propflow_ops import cli
from propflow_ops import incident_record as ir
from propflow_ops import operator as operator_mod
from propflow_ops.sandbox.canaries import CANARY_PAGERDUTY_KEY, CANARY_SLACK_TOKEN

from .helpers import ALICE, BOB, T0, at, fabricate_run, z

INC = "INC-ESC"


@pytest.fixture
def env(sandbox, monkeypatch, tmp_path):
    """The sandbox's environment (its own propflow-ops.toml, the channels' secrets), a clean channel state."""
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path))
    sandbox.notify.reset()
    sandbox.notify.sns_messages(sandbox.aws)  # drain
    monkeypatch.setattr(operator_mod, "current", lambda env=None, deadline_s=0: dict(ALICE))
    return sandbox


def escalate(now_min: float, capsys) -> str:
    assert cli.main(["escalate", INC, "--now", z(at(now_min))]) == 0
    return capsys.readouterr().out


def received(sandbox) -> tuple[list[str], list[str], list[dict]]:
    """(SNS messages, Slack texts, PagerDuty bodies) received since the last call."""
    sns = sandbox.notify.sns_messages(sandbox.aws)
    with sandbox.notify.state.lock:
        slack = [m["text"] for m in sandbox.notify.state.slack]
        pd = list(sandbox.notify.state.pagerduty)
        sandbox.notify.state.slack.clear()
        sandbox.notify.state.pagerduty.clear()
    return sns, slack, pd


def message(
    step: str, due_min: int, now_min: int, folder: Path, latest: str, for_: str, ack: str = "NOT acknowledged"
) -> str:
    return "\n".join(
        [
            f"[P0] {INC}: {step}",
            f"Severity P0 (Critical: Service down, data loss risk). Started 2026-11-26T14:00:00Z, {now_min} min ago; "
            f"response due 2026-11-26T14:15:00Z" + (" (OVERDUE)" if now_min > 15 else "") + f"; {ack}.",
            f"Escalation step: {step} (due at T+{due_min} min, {z(at(due_min))}).",
            f"For: {for_}",
            "Failing findings (3):",
            "- TRIAGE_API (triage): TRIAGE_API title",
            "- API_HEALTH_FAILING (api-down): API_HEALTH_FAILING title",
            "- ECS_TASK_OOM (api-down): ECS_TASK_OOM title",
            "Recommended runbook: db-connection",
            f"Evidence: {folder} (latest run: {latest})",
        ]
    )


def test_each_due_step_is_sent_once_per_channel_with_the_exact_message(env, tmp_path, capsys):
    sandbox = env
    store = ir.LocalStore(tmp_path)
    ir.open_or_join(
        store,
        INC,
        severity="P0",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=BOB,
        via="run triage",
    )
    fabricate_run(
        tmp_path,
        INC,
        "triage",
        2,
        [("TRIAGE_API", "fail"), ("TRIAGE_DATABASE", "ok")],
        recommended=("api-down", "db-connection"),
    )
    latest = fabricate_run(
        tmp_path,
        INC,
        "api-down",
        5,
        [("API_HEALTH_FAILING", "fail"), ("ECS_TASK_OOM", "fail"), ("DB_UNREACHABLE", "ok")],
    ).name
    folder = tmp_path / INC

    assert "nothing due and not yet sent at 2026-11-26T14:10:00Z" in escalate(10, capsys)
    assert received(sandbox) == ([], [], [])

    out = escalate(16, capsys)
    on_call = message(
        "Notify on-call engineer", 15, 16, folder, latest, "Primary On-Call: Sandbox On-Call <@U0SANDBOX1>"
    )
    sns, slack, pd = received(sandbox)
    assert sns == [on_call] and slack == [on_call]
    assert len(pd) == 1 and pd[0]["event_action"] == "trigger" and pd[0]["dedup_key"] == INC
    assert pd[0]["routing_key"] == CANARY_PAGERDUTY_KEY
    assert pd[0]["payload"]["summary"] == f"[P0] {INC}: Notify on-call engineer"
    assert pd[0]["payload"]["severity"] == "critical" and pd[0]["payload"]["source"] == "propflow-ops"
    assert pd[0]["payload"]["custom_details"]["failing_findings"] == [
        "TRIAGE_API (triage): TRIAGE_API title",
        "API_HEALTH_FAILING (api-down): API_HEALTH_FAILING title",
        "ECS_TASK_OOM (api-down): ECS_TASK_OOM title",
    ]
    assert out.count("SENT") == 3 and CANARY_SLACK_TOKEN not in out

    assert "nothing due" in escalate(20, capsys)  # nothing twice
    assert received(sandbox) == ([], [], [])

    # Slack dies before the 30-minute step: reported, recorded, the others still go out, and the exit is 0
    sandbox.notify.state.modes["slack"] = "error"
    out = escalate(31, capsys)
    lead = message(
        "Notify engineering lead", 30, 31, folder, latest, "Engineering Lead: Sandbox Lead <@U0SANDBOX2>"
    )
    sns, slack, pd = received(sandbox)
    assert (
        sns == [lead]
        and slack == []
        and [p["payload"]["summary"] for p in pd] == [f"[P0] {INC}: Notify engineering lead"]
    )
    assert (
        "FAILED Notify engineering lead -> slack: HTTP 500" in out and "retried at the next escalate" in out
    )
    failed = [e for e in ir.load(store, INC).escalations if e["status"] == "failed"]
    assert [(e["action"], e["channel"], e["at"]) for e in failed] == [
        ("Notify engineering lead", "slack", "2026-11-26T14:31:00Z")
    ]

    # the incident is acknowledged: PagerDuty hears it (acknowledge, same dedup key)
    assert cli.main(["incident", "ack", INC, "--at", z(at(33))]) == 0
    assert "SENT   PagerDuty acknowledge -> pagerduty" in capsys.readouterr().out
    _, _, pd = received(sandbox)
    assert pd == [{"routing_key": CANARY_PAGERDUTY_KEY, "event_action": "acknowledge", "dedup_key": INC}]

    # Slack is back: the next escalate retries only the Slack send of the 30-minute step
    sandbox.notify.state.modes["slack"] = "ok"
    out = escalate(35, capsys)
    sns, slack, pd = received(sandbox)
    acked = "acknowledged by alice@laptop-a (arn:aws:iam::111122223333:user/alice) at 2026-11-26T14:33:00Z"
    assert (
        sns == []
        and pd == []
        and slack
        == [
            message(
                "Notify engineering lead",
                30,
                35,
                folder,
                latest,
                "Engineering Lead: Sandbox Lead <@U0SANDBOX2>",
                ack=acked,
            )
        ]
    )

    # the CTO step at 60 min, then resolution: PagerDuty resolve, and nothing more is sent after it
    escalate(61, capsys)
    sns, slack, pd = received(sandbox)
    assert len(sns) == len(slack) == len(pd) == 1 and sns[0].startswith(f"[P0] {INC}: Notify CTO\n")
    assert cli.main(["incident", "resolve", INC, "--at", z(at(70))]) == 0
    capsys.readouterr()
    assert received(sandbox)[2] == [
        {"routing_key": CANARY_PAGERDUTY_KEY, "event_action": "resolve", "dedup_key": INC}
    ]
    assert "resolved at 2026-11-26T15:10:00Z; no escalation" in escalate(130, capsys)
    assert received(sandbox) == ([], [], [])

    sent = [(e["action"], e["channel"]) for e in ir.load(store, INC).escalations if e["status"] == "sent"]
    assert len(sent) == len(set(sent)) == 9  # three steps x three channels, each once
    record = (folder / ir.RECORD).read_text()
    assert CANARY_SLACK_TOKEN not in record and CANARY_PAGERDUTY_KEY not in record


def test_a_hanging_channel_costs_one_deadline_and_an_unknown_incident_is_exit_2(
    env, tmp_path, capsys, monkeypatch
):
    import time

    from propflow_ops import notify

    sandbox = env
    monkeypatch.setattr(notify, "SEND_DEADLINE_S", 1.0)
    monkeypatch.setattr(notify.send_slack, "__defaults__", (1.0,))
    ir.open_or_join(
        ir.LocalStore(tmp_path),
        INC,
        severity="P1",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=BOB,
        via="incident open",
    )
    sandbox.notify.state.modes["slack"] = "hang"
    t0 = time.monotonic()
    out = escalate(31, capsys)
    assert time.monotonic() - t0 < 6
    assert "FAILED Notify engineering lead -> slack:" in out  # the wording depends on where the deadline hit
    sns, slack, pd = received(sandbox)
    assert len(sns) == 1 and slack == [] and len(pd) == 1
    assert "Failing findings: none reported by the runs so far." in sns[0]
    assert "Recommended runbook: triage (no runbook recommended yet)" in sns[0]
    assert cli.main(["escalate", "NOPE", "--now", z(at(31))]) == 2
    assert "NOPE has no record" in capsys.readouterr().err


def test_without_channels_a_due_step_is_said_not_sent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(operator_mod, "current", lambda env=None, deadline_s=0: dict(ALICE))
    cfg = tmp_path / "team.toml"
    cfg.write_text("[contacts.cto]\nrole = 'CTO'\n")
    ir.open_or_join(
        ir.LocalStore(tmp_path),
        INC,
        severity="P0",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=BOB,
        via="incident open",
    )
    assert (
        cli.main(["escalate", INC, "--now", z(at(16)), "--config", str(cfg), "--output-dir", str(tmp_path)])
        == 0
    )
    assert (
        "NOT SENT Notify on-call engineer -> -: no notification channel configured" in capsys.readouterr().out
    )
    assert json.loads((tmp_path / INC / ir.RECORD).read_text().splitlines()[-1])["event"] == "opened"
