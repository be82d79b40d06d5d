"""One incident across runs and people, end to end: real runs against the sandbox share the incident record,
the escalation reaches the stand-ins, and the review reads it all back."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from propflow_ops import cli
from propflow_ops import incident_record as ir
from propflow_ops.findings import iso, utcnow
from propflow_ops.runner import RunRequest, run

pytestmark = pytest.mark.slow
MOTO_ARN = "arn:aws:sts::123456789012:user/moto"


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # getpass.getuser's order
        monkeypatch.setenv(var, name)


def test_a_second_run_uses_the_record_and_the_escalation_reaches_people(world, tmp_path, monkeypatch, capsys):
    sandbox = world("api-oom")
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path))
    as_user(monkeypatch, "asha")
    sandbox.notify.sns_messages(sandbox.aws)
    inc = "INC-7"
    start = utcnow().replace(microsecond=0) - timedelta(minutes=16)
    first = run(
        RunRequest(
            slug="api-down",
            incident=inc,
            started_at=iso(start),
            output_dir=str(tmp_path),
            env=dict(sandbox.env),
            progress=False,
        )
    )
    # sixteen minutes into a P0, a colleague runs the runbook again without repeating the clock
    as_user(monkeypatch, "vikram")
    second = run(
        RunRequest(
            slug="api-down", incident=inc, output_dir=str(tmp_path), env=dict(sandbox.env), progress=False
        )
    )
    ev = second.evidence
    assert ev["incident"]["started_at"] == iso(start) and ev["incident"]["severity"] == "P0"
    assert ev["incident"]["escalation_due"] == "Notify on-call engineer"
    assert [p["action"] for p in ev["incident"]["escalation_pending"]] == ["Notify on-call engineer"]
    assert (
        ev["incident"]["record"]["opened_by"].startswith("asha@")
        and ev["incident"]["record"]["opened_via"] == "run api-down"
    )
    assert ev["incident"]["record_overrides_this_run"] == []
    assert ev["run"]["mode"] == "headless"
    assert ev["run"]["operator"]["aws_arn"] == MOTO_ARN and ev["run"]["operator"]["user"] == "vikram"
    assert ev["run"]["config"] == {"file": str(sandbox.notify.config_path), "environment": "sandbox"}
    assert "Escalation policy (default" in ev["incident"]["escalation_policy"]
    html = (second.path / "report.html").read_text()
    assert (
        "Run by vikram@" in html
        and "Escalation due and not sent" in html
        and "propflow-ops escalate INC-7" in html
    )
    report = (second.path / "report.ipynb").read_text()
    assert "Escalation policy (default" in report  # the banner states the policy and the configuration
    assert f"Configuration: {sandbox.notify.config_path}, environment sandbox." in report
    on_disk = json.loads((second.path / "evidence.json").read_text())
    assert on_disk["run"]["operator"] == ev["run"]["operator"]
    assert first.evidence["incident"]["started_at"] == iso(start)

    # the escalation goes out (the same message to SNS and Slack, a PagerDuty trigger), once
    assert cli.main(["escalate", inc]) == 0
    assert cli.main(["escalate", inc]) == 0
    capsys.readouterr()
    sns = sandbox.notify.sns_messages(sandbox.aws)
    assert len(sns) == 1 and sns == [m["text"] for m in sandbox.notify.state.slack]
    assert (
        "- ECS_TASK_OOM (api-down): " in sns[0]
        and f"Evidence: {tmp_path / inc} (latest run: {second.path.name})" in sns[0]
    )
    assert [p["event_action"] for p in sandbox.notify.state.pagerduty] == ["trigger"]

    # an explicit severity on a later run is recorded as an override
    as_user(monkeypatch, "meera")
    assert cli.main(["incident", "ack", inc]) == 0
    third = run(
        RunRequest(
            slug="api-down",
            incident=inc,
            severity="P1",
            output_dir=str(tmp_path),
            env=dict(sandbox.env),
            progress=False,
            html=False,
        )
    )
    assert third.evidence["incident"]["severity"] == "P1"
    assert third.evidence["incident"]["record_overrides_this_run"] == [
        {"field": "severity", "value": "P1", "previous": "P0"}
    ]
    assert [p["event_action"] for p in sandbox.notify.state.pagerduty] == ["trigger", "acknowledge"]
    state = ir.load(ir.LocalStore(tmp_path), inc)
    assert [e["runbook"] for e in state.runs] == ["api-down"] * 3 and state.severity == "P1"

    # the review reads it all back: who acted, what was sent, follow-ups from the failing findings
    capsys.readouterr()
    assert cli.main(["review", inc, "--no-html"]) == 1
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    md = (tmp_path / inc / folder.rsplit("/", 1)[-1] / "postmortem.md").read_text()
    people = md.split("## People\n\n")[1].split("\n## ")[0]
    assert all(f"{who}@" in people for who in ("asha", "vikram", "meera")) and MOTO_ARN in people
    assert "ECS_TASK_OOM (api-down)" in md.split("## Follow-up tickets\n\n")[1].split("\n## ")[0]
    timeline = md.split("## Timeline (UTC)\n\n")[1].split("\n## ")[0]
    assert "escalation sent" in timeline and "acknowledged" in timeline and "override" in timeline
