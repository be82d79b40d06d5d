"""Escalation that reaches people: SNS, Slack incoming webhooks and PagerDuty Events API v2.

``propflow-ops escalate ID [--now T]`` (:func:`escalate`) sends every step of the escalation policy that is
due at ``T`` and not yet sent, through each of the step's channels, and records each send (time, channel,
sent or failed) in the incident record. A step is sent once per channel: a channel that failed is tried
again at the next ``escalate``, the others are not repeated. The whole escalate holds the incident
record's lock, so two escalates at once (two engineers, a worker's timer) still send each step once.

Every message carries the severity, the clock (started, elapsed, response due, acknowledged), the failing
findings one line each (from the evidence.json of the incident's runs: the latest run of each runbook),
the recommended runbook and where the evidence is. PagerDuty gets ``trigger`` with the incident id as
``dedup_key``; ``incident ack`` sends ``acknowledge`` and ``incident resolve`` sends ``resolve``
(:func:`lifecycle`), each retried at the next ``escalate`` when it failed.

HTTP: :func:`post_json` sends through ``sources.http.send``, the package's one HTTP client: one POST, a
total deadline over connect, send and the whole answer, no redirect is ever followed (3xx is a failure: the
webhook URL is a credential and must not be re-sent elsewhere), TLS verified. SNS goes through boto3 with connect/read timeouts, one retry and the same total
deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from propflow_ops import config as config_mod
from propflow_ops import incident_record as ir
from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import SEVERITIES, EscalationPolicy, PolicyStep, policy_from_config
from propflow_ops.operator import label
from propflow_ops.redact import redact_text

SEND_DEADLINE_S = 5.0
PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
MAX_FINDING_LINES = 20


@dataclass
class SendResult:
    channel: str
    ok: bool
    detail: str  # HTTP status / SNS message id, or the error in one line


# ---------------------------------------------------------------- transport


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    deadline_s: float = SEND_DEADLINE_S,
    headers: Mapping[str, str] | None = None,
) -> tuple[int | None, str]:
    """POST JSON through ``sources.http.send`` (total deadline, no redirect followed, TLS verified).
    Returns (status, short body) or (None, error). Never raises; the URL (a credential for Slack) never
    appears in the result."""
    from propflow_ops.sources import http as http_source

    try:
        status, raw, _ = http_source.send(
            "POST",
            url,
            data=json.dumps(payload).encode("utf-8"),
            timeout_s=deadline_s,
            breaker=False,
            headers={"Content-Type": "application/json", "User-Agent": "propflow-ops", **(headers or {})},
        )
    except ValueError:
        return None, "not an http(s) URL"
    except Exception as exc:  # noqa: BLE001 - reported as the channel's error
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return None, redact_text(text.replace(url, "<webhook>"))
    return status, redact_text(raw[:2048].decode("utf-8", errors="replace")[:200])


def _http_result(channel: str, status: int | None, text: str) -> SendResult:
    if status is None:
        return SendResult(channel, False, text)
    if 200 <= status < 300:
        return SendResult(channel, True, f"HTTP {status}")
    if 300 <= status < 400:
        return SendResult(channel, False, f"HTTP {status}: redirect not followed")
    return SendResult(channel, False, f"HTTP {status}: {text[:120]}".rstrip(": "))


def send_slack(webhook_url: str, text: str, deadline_s: float = SEND_DEADLINE_S) -> SendResult:
    status, body = post_json(webhook_url, {"text": text}, deadline_s=deadline_s)
    return _http_result("slack", status, body)


def pagerduty_event(
    routing_key: str,
    action: str,
    incident_id: str,
    summary: str = "",
    severity: str = "P1",
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An Events API v2 body: trigger (with payload) / acknowledge / resolve, dedup_key = incident id."""
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": incident_id}
    if action == "trigger":
        body["payload"] = {
            "summary": summary[:1024],
            "source": "propflow-ops",
            "severity": PD_SEVERITY.get(severity, "error"),
            "custom_details": dict(details or {}),
        }
    return body


def send_pagerduty(
    events_url: str, body: Mapping[str, Any], deadline_s: float = SEND_DEADLINE_S
) -> SendResult:
    status, text = post_json(events_url, body, deadline_s=deadline_s)
    return _http_result("pagerduty", status, text)


def send_sns(
    topic_arn: str,
    subject: str,
    message: str,
    *,
    region: str = "",
    env: Mapping[str, str] | None = None,
    deadline_s: float = SEND_DEADLINE_S,
) -> SendResult:
    """Publish to the topic (its email/SMS subscriptions deliver it), within a total deadline."""
    import os

    env = os.environ if env is None else env
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            from propflow_ops.sources.aws import client_from_env

            sns = client_from_env(
                "sns", env, region=region or topic_arn.split(":")[3], connect_s=2, read_s=3, attempts=3
            )
            resp = sns.publish(TopicArn=topic_arn, Subject=_subject(subject), Message=message)
            out["id"] = resp.get("MessageId", "")
        except Exception as exc:  # noqa: BLE001 - reported as the channel's error
            from propflow_ops.sources.aws import aws_error_text

            out["error"] = aws_error_text(exc)

    t = threading.Thread(target=go, name="propflow-sns", daemon=True)
    t.start()
    t.join(deadline_s)
    if t.is_alive():
        return SendResult("sns", False, f"SNS did not answer within {deadline_s:g} s")
    if "error" in out:
        return SendResult("sns", False, redact_text(str(out["error"]))[:200])
    return SendResult("sns", True, f"message {out.get('id')}")


def _subject(text: str) -> str:
    """SNS subjects: ASCII, no newlines, at most 100 characters."""
    clean = text.encode("ascii", "replace").decode().replace("\n", " ")
    return clean[:100]


# ---------------------------------------------------------------- the message


def incident_findings(folder: Path) -> tuple[list[str], list[str], Path | None]:
    """(failing finding lines, recommended runbooks, newest run folder) from the incident's runs: for each
    runbook its latest run's fail findings, one line each."""
    from propflow_ops.review.load import REVIEW_SLUG, load_runs

    runs = [r for r in load_runs(folder) if r.slug != REVIEW_SLUG and r.evidence is not None]
    latest: dict[str, Any] = {}
    for r in runs:
        latest[r.slug] = r
    lines: list[str] = []
    for slug, r in latest.items():
        for f in r.findings:
            if f.get("status") == "fail":
                lines.append(redact_text(f"{f.get('code')} ({slug}): {f.get('title', '')}"))
    ran = set(latest)
    recommended: list[str] = []
    for r in runs:
        for s in (r.evidence or {}).get("recommended_runbooks") or []:
            if s not in recommended:
                recommended.append(s)
    if not recommended:
        from propflow_ops import codes

        for r in latest.values():
            for f in r.findings:
                rule = codes.follow_up(str(f.get("code")))
                if f.get("status") == "fail" and rule and rule[0] not in recommended:
                    recommended.append(rule[0])
    not_run = [s for s in recommended if s not in ran]
    newest = runs[-1].folder if runs else None
    return lines, (not_run or recommended), newest


def message(
    st: ir.IncidentState,
    step: PolicyStep,
    now: datetime,
    folder: Path,
    contacts: Mapping[str, config_mod.Contact],
    where: str = "",
) -> tuple[str, str, dict[str, Any]]:
    """(subject, text, details) of one escalation step: the same text for every channel."""
    assert st.started_at is not None
    sev = SEVERITIES[st.severity]
    elapsed = (now - st.started_at).total_seconds() / 60
    due = st.started_at + sev.response
    fails, recommended, newest = incident_findings(folder)
    subject = f"[{st.severity}] {st.id}: {step.action}"
    ack = (
        f"acknowledged by {label(st.acknowledged_by)} at {iso(st.acknowledged_at)}"
        if st.acknowledged_at
        else "NOT acknowledged"
    )
    lines = [
        subject + (f" ({st.title})" if st.title else ""),
        f"Severity {st.severity} ({sev.label}: {sev.definition}). Started {iso(st.started_at)}, "
        f"{elapsed:.0f} min ago; response due {iso(due)}" + (" (OVERDUE)" if now > due else "") + f"; {ack}.",
        f"Escalation step: {step.action} (due at T+{step.after_min} min, {iso(st.started_at + step.after)}).",
    ]
    who = [contacts[c].mention() for c in step.contacts if c in contacts]
    if who:
        lines.append("For: " + "; ".join(who))
    if fails:
        lines.append(f"Failing findings ({len(fails)}):")
        lines += [f"- {f}" for f in fails[:MAX_FINDING_LINES]]
        if len(fails) > MAX_FINDING_LINES:
            lines.append(f"- ... {len(fails) - MAX_FINDING_LINES} more in the evidence")
    else:
        lines.append("Failing findings: none reported by the runs so far.")
    lines.append(
        "Recommended runbook: "
        + (", ".join(recommended) if recommended else "triage (no runbook recommended yet)")
    )
    lines.append(
        f"Evidence: {where or folder}" + (f" (latest run: {newest.name})" if newest else " (no run yet)")
    )
    text = redact_text("\n".join(lines))
    details = {
        "incident": st.id,
        "severity": st.severity,
        "started_at": iso(st.started_at),
        "step": step.action,
        "failing_findings": fails[:MAX_FINDING_LINES],
        "recommended_runbooks": recommended,
        "evidence": where or str(folder),
    }
    return subject, text, details


# ---------------------------------------------------------------- escalate


@dataclass
class Outcome:
    step: str
    channel: str
    status: str  # sent | failed | skipped
    detail: str


def _channels(cfg: config_mod.TeamConfig, step: PolicyStep) -> list[str]:
    configured = cfg.notify.configured()
    return [c for c in (step.channels or configured) if c in configured]


def _send(
    channel: str,
    cfg: config_mod.TeamConfig,
    st: ir.IncidentState,
    subject: str,
    text: str,
    details: Mapping[str, Any],
    env: Mapping[str, str],
) -> SendResult:
    n = cfg.notify
    if channel == "sns":
        return send_sns(n.sns_topic_arn, subject, text, region=n.sns_region, env=env)
    if channel == "slack":
        url = config_mod.secret(n.slack_webhook_url_env, env)
        if not url:
            return SendResult("slack", False, f"{n.slack_webhook_url_env} is not set")
        return send_slack(url, text)
    key = config_mod.secret(n.pagerduty_routing_key_env, env)
    if not key:
        return SendResult("pagerduty", False, f"{n.pagerduty_routing_key_env} is not set")
    return send_pagerduty(
        n.pagerduty_events_url, pagerduty_event(key, "trigger", st.id, subject, st.severity, details)
    )


def escalate(
    store: ir.IncidentStore,
    incident_id: str,
    cfg: config_mod.TeamConfig,
    by: Mapping[str, Any],
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
    policy: EscalationPolicy | None = None,
) -> list[Outcome]:
    """Send every due step not yet sent on each of its channels; retry pending PagerDuty ack/resolve."""
    scratch: list[Path] = []  # the S3 store's runs, copied for the message; removed whatever happens
    try:
        return _escalate(store, incident_id, cfg, by, now, env, policy, scratch)
    finally:
        import shutil

        for p in scratch:
            shutil.rmtree(p, ignore_errors=True)


def _escalate(
    store: ir.IncidentStore,
    incident_id: str,
    cfg: config_mod.TeamConfig,
    by: Mapping[str, Any],
    now: datetime | None,
    env: Mapping[str, str] | None,
    policy: EscalationPolicy | None,
    scratch: list[Path],
) -> list[Outcome]:
    import os

    env = os.environ if env is None else env
    now = now or utcnow()
    policy = policy or policy_from_config(cfg)
    folder: Path | None = None
    where = ""
    outcomes: list[Outcome] = []
    with store.session(incident_id) as s:
        st = ir.fold(incident_id, s.events)
        if not st.exists:
            raise config_mod.ConfigError(
                f"incident {incident_id} has no record at {store.where(incident_id)}: open it first"
            )
        outcomes += _pending_lifecycle(s, st, cfg, by, now, env)
        if st.resolved_at is not None and st.resolved_at <= now:
            return outcomes
        assert st.started_at is not None
        for step in policy.for_severity(st.severity):
            due = st.started_at + step.after
            if due > now:
                continue
            channels = _channels(cfg, step)
            if not channels:
                outcomes.append(
                    Outcome(
                        step.action,
                        "-",
                        "skipped",
                        "no notification channel configured ([notify] in propflow-ops.toml)",
                    )
                )
                continue
            todo = [c for c in channels if not st.sent(step.key, c)]
            if not todo:
                continue
            if folder is None:  # the runs, as a local folder (a private copy for the S3 store)
                folder, where = ir.runs_folder(store, incident_id)
                if isinstance(store, ir.S3Store):
                    scratch.append(folder.parent)
            subject, text, details = message(st, step, now, folder, cfg.contacts, where)
            for channel in todo:
                res = _send(channel, cfg, st, subject, text, details, env)
                s.append(
                    ir.event(
                        "escalation",
                        by,
                        now,
                        step=step.key,
                        action=step.action,
                        channel=channel,
                        status="sent" if res.ok else "failed",
                        detail=res.detail if res.ok else None,
                        error=None if res.ok else res.detail,
                        due_at=iso(due),
                        severity=st.severity,
                    )
                )
                outcomes.append(Outcome(step.action, channel, "sent" if res.ok else "failed", res.detail))
    return outcomes


def _pending_lifecycle(
    s: ir.Session,
    st: ir.IncidentState,
    cfg: config_mod.TeamConfig,
    by: Mapping[str, Any],
    now: datetime,
    env: Mapping[str, str],
) -> list[Outcome]:
    """PagerDuty acknowledge/resolve owed for an ack/resolve in the record (after a trigger was sent)."""
    out: list[Outcome] = []
    if "pagerduty" not in cfg.notify.configured():
        return out
    if not any(e.get("channel") == "pagerduty" and e.get("status") == "sent" for e in st.escalations):
        return out  # PagerDuty never heard of this incident: nothing to acknowledge or resolve
    for kind, when in (("acknowledge", st.acknowledged_at), ("resolve", st.resolved_at)):
        if when is None or st.notified(kind, "pagerduty"):
            continue
        key = config_mod.secret(cfg.notify.pagerduty_routing_key_env, env)
        res = (
            send_pagerduty(cfg.notify.pagerduty_events_url, pagerduty_event(key, kind, st.id))
            if key
            else SendResult("pagerduty", False, f"{cfg.notify.pagerduty_routing_key_env} is not set")
        )
        s.append(
            ir.event(
                "notify",
                by,
                now,
                action=kind,
                channel="pagerduty",
                status="sent" if res.ok else "failed",
                error=None if res.ok else res.detail,
            )
        )
        out.append(Outcome(f"PagerDuty {kind}", "pagerduty", "sent" if res.ok else "failed", res.detail))
    return out


def lifecycle(
    store: ir.IncidentStore,
    incident_id: str,
    cfg: config_mod.TeamConfig,
    by: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """After ``incident ack`` / ``resolve``: tell PagerDuty (acknowledge / resolve the incident's alert)."""
    import os

    env = os.environ if env is None else env
    with store.session(incident_id) as s:
        st = ir.fold(incident_id, s.events)
        return _pending_lifecycle(s, st, cfg, by, utcnow(), env)


def outcome_lines(outcomes: Sequence[Outcome]) -> list[str]:
    out = []
    for o in outcomes:
        tag = {"sent": "SENT  ", "failed": "FAILED", "skipped": "NOT SENT"}.get(o.status, o.status)
        tail = " (will be retried at the next escalate)" if o.status == "failed" else ""
        out.append(f"  {tag} {o.step} -> {o.channel}: {o.detail}{tail}")
    return out


def sandbox_escalation(sandbox: Any, incident_id: str, output_dir: str) -> list[str]:
    """The demo's escalation: ``escalate`` on a simulated clock one minute after the incident's first escalation
    step falls due (nobody has acknowledged), against the sandbox's own configuration; then what the SNS topic
    (through its SQS subscription), the Slack and the PagerDuty stand-ins received."""
    from datetime import timedelta

    from propflow_ops import operator as operator_mod

    env = dict(sandbox.env)
    cfg = config_mod.load(None, None, env)
    store = ir.LocalStore(output_dir)
    st = ir.require(store, incident_id)
    steps = policy_from_config(cfg).for_severity(st.severity)
    if st.started_at is None or not steps:
        return ["  no escalation step for this severity"]
    now = st.started_at + steps[0].after + timedelta(minutes=1)
    outcomes = escalate(store, incident_id, cfg, operator_mod.current(env), now, env)
    lines = [
        f"  simulated clock {iso(now)} (T+{steps[0].after_min + 1} min, {st.severity}, not acknowledged)"
    ]
    lines += outcome_lines(outcomes) or ["  nothing was due"]
    sns = sandbox.notify.sns_messages(sandbox.aws)
    with sandbox.notify.state.lock:
        slack = [m["text"] for m in sandbox.notify.state.slack]
        pd = [f"{p['event_action']} (dedup_key {p['dedup_key']})" for p in sandbox.notify.state.pagerduty]
    lines.append(
        f"  SNS topic delivered {len(sns)} message(s); Slack stand-in received {len(slack)}; "
        f"PagerDuty stand-in received: {', '.join(pd) or 'nothing'}"
    )
    if slack:
        lines += ["  Slack message:"] + [f"    | {line}" for line in slack[-1].splitlines()]
    return lines
