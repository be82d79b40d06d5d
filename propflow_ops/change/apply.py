"""Applying one step, in order: reason, confirmation, guards, lock, started record, before, protect,
execute, verify, undo, release, ended record. Every way out is an :class:`~propflow_ops.findings.Action`
in the evidence (``executed`` with ``verified``, ``failed`` or ``refused``) and an ``action`` event in the
incident record.
"""

from __future__ import annotations

import os
import time
from typing import Any

from propflow_ops import operator as operator_mod
from propflow_ops.change import audit, confirm, target
from propflow_ops.change import lock as lock_mod
from propflow_ops.change.protect import Refused
from propflow_ops.change.verify import Verification, timeout_s, wait_until
from propflow_ops.findings import Action, Evidence, Status, jsonable
from propflow_ops.redact import redact
from propflow_ops.remediation import Step, StepOutcome

STEP_BUDGET_S = 100.0  # protection + step + verification (a run that applies gives a cell 220 s)
MIN_VERIFY_S = 5.0


def _summary(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        return ", ".join(
            f"{k}={v}" for k, v in redact(jsonable(result)).items() if not isinstance(v, (list, dict))
        )
    return str(result)


def _plan_text(ev: Evidence, step: Step) -> str:
    planned = Action(step.name, "planned", step.command, "Plan: " + step.what)
    return repr(StepOutcome(step, planned, runbook=ev.runbook))


def apply_step(ev: Evidence, step: Step) -> StepOutcome:
    opts = confirm.options(ev.parameters)
    incident = str(ev.incident.get("id") or "")
    by = operator_mod.current()
    who = operator_mod.label(by)
    is_sandbox, why_not = target.sandbox_check(os.environ)
    extra: dict[str, Any] = {
        "by": who,
        "reason": opts.reason,
        "target": "sandbox" if is_sandbox else f"not the sandbox ({why_not})",
    }
    root = opts.record_root or None
    run_mode = "headless" if opts.headless else "interactive"

    def finish(mode: str, detail: str, phase: str, result: Any = None) -> StepOutcome:
        action = Action(step.name, mode, step.command, detail, extra=dict(extra))
        ev.record(action)
        audit.record_action(
            incident, phase, action.to_json(), by, root, at=action.at, runbook=ev.runbook, run_mode=run_mode
        )
        return StepOutcome(step, action, result=result, applied=True, runbook=ev.runbook)

    if step.precondition:
        return finish("failed", f"Not run: {step.precondition}", "refused")
    if not opts.reason:
        return finish(
            "refused",
            "Refused: no reason given. Every applied step needs one, recorded with it: "
            '--reason TEXT (a ticket or a sentence); in JupyterLab, reason = "...".',
            "refused",
        )
    if not is_sandbox:
        how = ""
        if opts.yes:
            how = "--yes"
        elif confirm.accepted(str(ev.parameters.get("confirm") or ""), step.name, incident):
            how = "confirm parameter"
        elif opts.prompt_dir:
            answer = confirm.ask_runner(opts.prompt_dir, step.name, incident, _plan_text(ev, step))
            if answer is None:
                return finish("refused", "Refused: no confirmation typed in time.", "refused")
            if not confirm.accepted(answer, step.name, incident):
                return finish(
                    "refused",
                    f"Refused: the answer {answer.strip()[:40]!r} is not the step name or the incident id.",
                    "refused",
                )
            how = "typed on the terminal"
        else:
            hint = (
                "run on a terminal to confirm it, or pass --yes"
                if opts.headless
                else f'set confirm = "{step.name}" in the parameters cell and run again'
            )
            return finish(
                "refused",
                f"Refused: the target is not the sandbox ({why_not}) and the step was not confirmed: {hint}.",
                "refused",
            )
        extra["confirmed"] = how
    failing = sorted(
        {f.code for f in ev.findings if f.code in step.refused_while and f.status is Status.FAIL}
    )
    if failing:
        if not opts.force:
            return finish(
                "refused",
                f"Refused: {', '.join(failing)} fails: this step would undo the last good "
                "change. Force it with --force (JupyterLab: force = True); the reason is recorded.",
                "refused",
            )
        extra["forced"] = f"despite {', '.join(failing)}"
    locks = lock_mod.locks_for()
    resource = step.resource or f"step:{step.name}"
    try:
        holder = locks.acquire(resource, who, step.name, incident)
    except lock_mod.LockBusy as busy:
        extra["lock"] = busy.holder.public()
        return finish(
            "refused",
            f"Refused: {busy.holder.text()}. Wait for it, or `propflow-ops lock break "
            f"{resource} --reason ...` if that change is dead.",
            "refused",
        )
    except Exception as exc:  # noqa: BLE001 - no lock, no change
        return finish(
            "refused",
            f"Refused: the change lock ({locks.where}) cannot be taken: {type(exc).__name__}: {exc}",
            "refused",
        )
    extra["lock"] = {"resource": resource, "where": locks.where, "since": holder.since}
    started = Action(step.name, "started", step.command, "Started: " + step.what, extra=dict(extra))
    audit.record_action(
        incident, "started", started.to_json(), by, root, at=started.at, runbook=ev.runbook, run_mode=run_mode
    )
    try:
        return _run(ev, step, opts, incident, extra, finish)
    finally:
        extra["lock"]["released"] = locks.release(holder)


def _run(
    ev: Evidence, step: Step, opts: confirm.ChangeOptions, incident: str, extra: dict[str, Any], finish: Any
) -> StepOutcome:
    t0 = time.monotonic()
    try:
        before = step.before() if step.before else {}
    except Exception as exc:  # noqa: BLE001 - without the state before, no undo: do not change
        return finish(
            "failed", f"Not run: the state before could not be read: {type(exc).__name__}: {exc}", "ended"
        )
    extra["before"] = before
    protect: dict[str, Any] = {}
    if step.protect is not None:
        try:
            protect = step.protect(opts, incident)
        except Refused as exc:
            return finish("refused", f"Refused: {exc}", "ended")
        extra["protect"] = protect
    try:
        result = step.execute()
    except Exception as exc:  # noqa: BLE001 - a failed step is recorded, and the runbook goes on
        if step.undo is not None:
            extra["undo"] = step.undo(None, before, protect)
        return finish("failed", f"{type(exc).__name__}: {exc}", "ended")
    if isinstance(result, dict):
        extra["result"] = {k: v for k, v in result.items()}
    # the snapshot wait and the verification share one cell's time (the runner stops a cell after 120 s)
    budget = max(MIN_VERIFY_S, STEP_BUDGET_S - (time.monotonic() - t0))
    verification = (
        wait_until(step.verify(result, before), min(timeout_s(), budget))
        if step.verify is not None
        else Verification(False, "this step has no verification", 0.0)
    )
    extra["verified"] = verification.verified
    extra["verification"] = verification.to_json()
    if step.undo is not None:
        extra["undo"] = step.undo(result, before, protect)
    return finish("executed", _summary(result), "ended", result)
