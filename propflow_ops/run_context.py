"""What a run takes from, and leaves in, the team configuration and the incident record.

The runner calls, in this order: :func:`prepare` (the team configuration: the chosen environment's variables
and parameters under the options and the environment), :func:`begin` (open or join the incident record: a
later run uses the record's severity and start unless given explicitly, which is recorded as an override;
the operator is looked up in the background), :func:`annotate` (evidence.json: ``run.operator``,
``run.mode``, ``run.config``, ``incident.record``, the escalation policy and the steps due but not sent) and
:func:`finish` (the ``run`` event in the record). :func:`html` is the report.html block of the same.
"""

from __future__ import annotations

import html as html_mod
import os
import sys
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from propflow_ops import config as config_mod
from propflow_ops import incident_record as ir
from propflow_ops import operator as operator_mod
from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import parse_time, policy_from_config
from propflow_ops.redact import redact

if TYPE_CHECKING:
    from propflow_ops.run.request import RunRequest
    from propflow_ops.runbooks import Runbook
    from propflow_ops.store import S3Url

MODE = "headless"


@dataclass
class RunContext:
    incident_id: str
    config: config_mod.TeamConfig
    store: ir.IncidentStore
    operator: Future[dict[str, Any]]
    written: list[dict[str, Any]] = field(default_factory=list)
    mode: str = MODE

    def provisional(self) -> dict[str, Any]:
        """The operator now, without waiting for STS: the ARN is ``pending`` until :func:`annotate` completes it."""
        if self.operator.done():
            return self.who()
        return {"aws_arn": ir.PENDING, **operator_mod.local()}

    def who(self) -> dict[str, Any]:
        try:
            return self.operator.result(timeout=operator_mod.STS_DEADLINE_S + 1)
        except (FutureTimeout, Exception):  # noqa: BLE001 - an unknown operator, never a lost run
            return {"aws_arn": operator_mod.UNKNOWN, **operator_mod.local()}


def prepare(req: RunRequest, rb: Runbook) -> RunRequest:
    """The request with the team configuration applied (precedence: options/-p, environment, file)."""
    from propflow_ops.run.parameters import notebook_parameters

    merged = {**os.environ, **req.env}
    cfg = config_mod.load(None, None, merged)
    if cfg.path is None:
        return req
    env = dict(req.env)
    overlay = config_mod.environment_overlay(cfg, merged)
    env.update(overlay)
    env[config_mod.CONFIG_ENV] = str(cfg.path)  # the kernel reads the same file (escalation policy)
    if cfg.environment is not None:
        env[config_mod.ENV_NAME_ENV] = cfg.environment.name
    given = {name for name, _ in req.params}
    defaults = config_mod.parameter_defaults(cfg, notebook_parameters(rb.path), given)
    output_dir = req.output_dir or (
        None if os.environ.get("PROPFLOW_OUTPUT_DIR") else overlay.get("PROPFLOW_OUTPUT_DIR")
    )
    return replace(req, env=env, params=defaults + list(req.params), output_dir=output_dir)


def begin(req: RunRequest, rb: Runbook, params: dict[str, Any], store: ir.IncidentStore) -> RunContext:
    """Open or join the incident record; ``params`` takes the record's severity and start (unless given)."""
    merged = {**os.environ, **req.env}
    cfg = config_mod.load(None, None, merged)
    incident_id = str(params["incident_id"])
    ctx = RunContext(incident_id, cfg, store, operator_mod.in_background(merged), mode=req.mode)
    state, written = ir.open_or_join(
        store,
        incident_id,
        severity=str(params["severity"]),
        started_at=parse_time(str(params["started_at"])),
        severity_given=req.severity is not None,
        started_given=req.started_at is not None,
        by=ctx.provisional,
        via=f"run {rb.slug}",
    )
    ctx.written = written
    params["severity"] = state.severity or params["severity"]
    if state.started_at is not None:
        params["started_at"] = iso(state.started_at)
    return ctx


def pending_escalations(
    state: ir.IncidentState, cfg: config_mod.TeamConfig, now: Any = None
) -> list[dict[str, Any]]:
    """The policy's steps that are due and not sent on every channel (what ``escalate`` would send now)."""
    if not state.exists or state.started_at is None or state.resolved_at is not None:
        return []
    now = now or utcnow()
    policy = policy_from_config(cfg)
    configured = cfg.notify.configured()
    out = []
    for step in policy.for_severity(state.severity):
        due = state.started_at + step.after
        if due > now:
            continue
        channels = [c for c in (step.channels or configured) if c in configured]
        missing = [c for c in channels if not state.sent(step.key, c)]
        if missing or not channels:
            out.append(
                {
                    "action": step.action,
                    "due_at": iso(due),
                    "not_sent_to": missing or ["(no channel configured)"],
                }
            )
    return out


def annotate(ctx: RunContext, evidence: dict[str, Any]) -> dict[str, Any]:
    """Add who ran it, how, with which configuration, and the incident record's state to the evidence."""
    run = evidence.setdefault("run", {})
    run["operator"] = redact(ctx.who())
    run["mode"] = ctx.mode
    run["config"] = ctx.config.describe()
    inc = evidence.setdefault("incident", {})
    try:
        if any((e.get("by") or {}).get("aws_arn") == ir.PENDING for e in ctx.written):
            with ctx.store.session(ctx.incident_id) as s:  # complete what begin wrote before STS answered
                s.append(
                    ir.event("operator", ctx.who(), completes="the events this run wrote before STS answered")
                )
            ctx.written = [{**e, "by": ctx.who()} for e in ctx.written]
        state = ir.load(ctx.store, ctx.incident_id)
    except (OSError, config_mod.ConfigError):
        return evidence
    inc["record"] = redact(state.summary())
    inc["record_overrides_this_run"] = [
        {"field": e.get("field"), "value": e.get("value"), "previous": e.get("previous")}
        for e in ctx.written
        if e.get("event") == "override"
    ]
    inc["escalation_policy"] = policy_from_config(ctx.config).describe()
    inc["escalation_pending"] = pending_escalations(state, ctx.config)
    return evidence


def finish(ctx: RunContext, folder: Path | S3Url, evidence: dict[str, Any]) -> None:
    """The ``run`` event in the incident record (a failure to write it is said, never loses the run)."""
    try:
        with ctx.store.session(ctx.incident_id) as s:
            s.append(
                ir.event(
                    "run",
                    ctx.who(),
                    runbook=evidence.get("runbook"),
                    run=folder.name,
                    status=evidence.get("status"),
                    mode=ctx.mode,
                )
            )
    except (OSError, config_mod.ConfigError) as exc:
        print(
            f"propflow-ops: warning: the run is published but the incident record was not updated: {exc}",
            file=sys.stderr,
        )


def html(evidence: dict[str, Any]) -> str:
    """report.html's block: operator, configuration, incident record, escalation policy and what is due."""
    run = evidence.get("run") or {}
    inc = evidence.get("incident") or {}
    rec = inc.get("record") or {}
    cfg = run.get("config") or {}
    e = html_mod.escape
    rows = [
        f"Run by {e(operator_mod.label(run.get('operator')))} ({e(str(run.get('mode') or 'headless'))}).",
        f"Configuration: {e(str(cfg.get('file') or 'none'))}, environment {e(str(cfg.get('environment') or 'none'))}.",
    ]
    if rec:
        rows.append(
            f"Incident opened {e(str(rec.get('opened_at')))} by {e(str(rec.get('opened_by')))} "
            f"({e(str(rec.get('opened_via')))}); acknowledged: "
            f"{e(str(rec.get('acknowledged_at') or 'no'))}; resolved: {e(str(rec.get('resolved_at') or 'no'))}."
        )
        for o in inc.get("record_overrides_this_run") or []:
            rows.append(
                f"This run overrode the record's {e(str(o['field']))}: {e(str(o['previous']))} -> "
                f"{e(str(o['value']))}."
            )
    pending = inc.get("escalation_pending") or []
    if pending:
        items = "; ".join(f"{p['action']} (due {p['due_at']})" for p in pending)
        rows.append(
            f"<b>Escalation due and not sent:</b> {e(items)}: run <code>propflow-ops escalate "
            f"{e(str(inc.get('id')))}</code>."
        )
    if inc.get("escalation_policy"):
        rows.append(e(str(inc["escalation_policy"])))
    return '<div class="propflow-incident">' + "".join(f"<p>{r}</p>" for r in rows) + "</div>"
