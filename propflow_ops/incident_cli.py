"""``propflow-ops incident open|show|ack|resolve|note ID`` and ``propflow-ops escalate ID``."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from propflow_ops import config as config_mod
from propflow_ops import incident_record as ir
from propflow_ops import notify
from propflow_ops import operator as operator_mod
from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import BadInput, clock, parse_severity, parse_time, policy_from_config
from propflow_ops.operator import label


def _context(
    args: argparse.Namespace, extra_env: Mapping[str, str]
) -> tuple[config_mod.TeamConfig, dict[str, str], ir.IncidentStore]:
    from propflow_ops.inputs import INCIDENT_ID

    incident_id = args.incident_id
    if not INCIDENT_ID.match(incident_id) or ".." in incident_id:
        raise BadInput(
            f"incident id may hold letters, digits, '.', '_' and '-' only (max 100), not {incident_id!r}"
        )
    env = {**os.environ, **extra_env}
    cfg = config_mod.load(None, None, env)
    env = {**config_mod.environment_overlay(cfg, env, secrets=False), **env}
    output_dir = args.output_dir or env.get("PROPFLOW_OUTPUT_DIR")
    return cfg, env, ir.store_for(output_dir)


def incident_main(args: argparse.Namespace, extra_env: Mapping[str, str]) -> int:
    cfg, env, store = _context(args, extra_env)
    incident_id = args.incident_id
    if args.action == "show":
        return _show(store, incident_id, cfg, as_json=args.json)
    at = parse_time(args.at, name="--at") if getattr(args, "at", None) else None
    if at is not None and at > utcnow():
        raise BadInput(f"--at {iso(at)} is in the future")
    by = operator_mod.current(env)
    if args.action == "open":
        severity = parse_severity(args.severity, "P1")
        started = parse_time(args.started_at, name="--started-at")
        before = ir.load(store, incident_id)
        state, written = ir.open_or_join(
            store,
            incident_id,
            severity=severity,
            started_at=started,
            severity_given=True,
            started_given=args.started_at is not None,
            by=by,
            via="incident open",
            title=args.title,
        )
        if not before.exists:
            print(f"opened {incident_id}: {state.severity}, started {iso(state.started_at)}, by {label(by)}")
        else:
            changes = (
                ", ".join(f"{e['field']} {e['previous']} -> {e['value']}" for e in written) or "no change"
            )
            print(
                f"{incident_id} was already open (by {label(state.opened_by)} at {iso(state.opened_at)}): "
                f"{changes}"
            )
        print(store.where(incident_id))
        return 0
    fields: dict[str, Any] = {}
    kind = args.action
    if kind == "note":
        if not args.text.strip():
            raise BadInput("a note needs some text")
        fields["text"] = args.text
    elif args.note:
        fields["text"] = args.note
    state, added, message = ir.record(store, incident_id, kind, by, at, **fields)
    print(f"{incident_id}: {message}")
    if added is not None and kind in ("ack", "resolve"):
        if kind == "ack" and state.started_at and state.acknowledged_at:
            print(
                f"  response time: {(state.acknowledged_at - state.started_at).total_seconds() / 60:.1f} min"
            )
        if kind == "resolve" and state.started_at and state.resolved_at:
            print(
                f"  time to resolution: {(state.resolved_at - state.started_at).total_seconds() / 60:.1f} min"
            )
        for line in notify.outcome_lines(notify.lifecycle(store, incident_id, cfg, by, env)):
            print(line)
    return 0


def _show(store: ir.IncidentStore, incident_id: str, cfg: config_mod.TeamConfig, *, as_json: bool) -> int:
    from propflow_ops.run_context import pending_escalations

    state = ir.require(store, incident_id)
    summary = state.summary()
    summary["pending_escalations"] = pending_escalations(state, cfg)
    summary["record"] = store.where(incident_id)
    if as_json:
        print(json.dumps({"id": incident_id, **summary}, indent=2))
        return 0
    assert state.started_at is not None
    block = clock(incident_id, state.severity, state.started_at, policy=policy_from_config(cfg))
    print(
        f"{incident_id} {state.severity}"
        + (f" ({state.title})" if state.title else "")
        + f": opened {iso(state.opened_at)} by {label(state.opened_by)} via {state.opened_via}"
    )
    print(
        f"  started {iso(state.started_at)}, {block['elapsed_min']} min ago; response due "
        f"{block['response_due_at']}"
        + (" (OVERDUE)" if block["response_overdue"] and not state.acknowledged_at else "")
    )
    print(
        f"  acknowledged: {summary['acknowledged_at'] or 'no'}"
        + (f" by {summary['acknowledged_by']}" if summary["acknowledged_by"] else "")
    )
    print(
        f"  resolved: {summary['resolved_at'] or 'no'}"
        + (f" by {summary['resolved_by']}" if summary["resolved_by"] else "")
    )
    for e in state.events:
        print("  " + event_line(e))
    for p in summary["pending_escalations"]:
        print(f"  DUE, NOT SENT: {p['action']} (due {p['due_at']}) -> propflow-ops escalate {incident_id}")
    print(f"  {block['escalation_policy']}")
    print(store.where(incident_id))
    return 0


def event_line(e: Mapping[str, Any]) -> str:
    """One line per record event (``incident show`` and the review's timeline)."""
    kind = e.get("event")
    who = label(e.get("by"))
    if kind == "opened":
        what = f"opened {e.get('severity')} (start {e.get('started_at')}) via {e.get('via')}"
    elif kind == "override":
        what = f"override {e.get('field')}: {e.get('previous')} -> {e.get('value')} ({e.get('via')})"
    elif kind == "run":
        what = f"run {e.get('runbook')}: {e.get('status')} ({e.get('run')})"
    elif kind in ("ack", "resolve"):
        what = {"ack": "acknowledged", "resolve": "resolved"}[str(kind)] + (
            f": {e['text']}" if e.get("text") else ""
        )
    elif kind == "note":
        what = f"note: {e.get('text')}"
    elif kind == "escalation":
        what = f"escalation '{e.get('action')}' -> {e.get('channel')}: {e.get('status')}" + (
            f" ({e.get('error')})" if e.get("error") else ""
        )
    elif kind == "notify":
        what = f"{e.get('channel')} {e.get('action')}: {e.get('status')}" + (
            f" ({e.get('error')})" if e.get("error") else ""
        )
    elif kind == "action":  # change control: a step started, ended, refused; a lock broken
        verdict = (
            ", verified"
            if e.get("verified") is True
            else ", NOT verified"
            if e.get("verified") is False
            else ""
        )
        what = (
            f"step {e.get('step')} {e.get('phase')}: {e.get('mode')}{verdict}; reason: {e.get('reason') or '-'}"
            + (f"; {e.get('detail')}" if e.get("phase") in ("refused", "lock-break") else "")
            + (f"; undo: {e['undo']}" if e.get("undo") else "")
        )
    elif kind == "corrupt":
        return f"(line {e.get('line')} of the record could not be read)"
    else:
        what = f"{kind}: " + ", ".join(
            f"{k}={v}" for k, v in e.items() if k not in ("schema", "event", "at", "recorded_at", "by")
        )
    return f"{e.get('at')} {what} [{who}]"


def escalate_main(args: argparse.Namespace, extra_env: Mapping[str, str]) -> int:
    """Send what is due; a channel that fails is reported (and retried next time), not an error exit."""
    cfg, env, store = _context(args, extra_env)
    now = parse_time(args.now, name="--now") if args.now else utcnow()
    by = operator_mod.current(env)
    outcomes = notify.escalate(store, args.incident_id, cfg, by, now, env)
    state = ir.load(store, args.incident_id)
    if state.resolved_at is not None:
        print(f"{args.incident_id}: resolved at {iso(state.resolved_at)}; no escalation")
    if not outcomes:
        print(f"{args.incident_id}: nothing due and not yet sent at {iso(now)}")
    for line in notify.outcome_lines(outcomes):
        print(line)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{args.incident_id}: {len(failed)} send(s) failed; they are retried at the next escalate")
    return 0
