"""Remediation steps: always planned, executed only when ``apply`` names them.

A runbook module builds a :class:`Step` (what it would change, the equivalent
``aws``/``alembic`` command, and the function that does it). The notebook
passes it to :func:`run_step`, which records an audit :class:`Action`
(planned / executed / failed) in the evidence and returns something that
displays the plan, and the result when it ran.
"""

from __future__ import annotations

import html
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from propflow_ops.findings import Action, Evidence, jsonable
from propflow_ops.incident import BadInput
from propflow_ops.redact import redact, redact_text

STEP_NAMES: tuple[str, ...] = (
    "force-new-deployment",
    "rollback",
    "reboot-db-failover",
    "create-read-replica",
    "scale-service",
    "delete-orphaned-uploads",
    "send-test-otp",
    "migration-downgrade",
    "migration-upgrade",
)


def parse_apply(value: str | Iterable[str] | None, allowed: Iterable[str] = STEP_NAMES) -> list[str]:
    """``apply`` as a list of step names; a comma-separated string is accepted too."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip()
        if name and name not in names:
            names.append(name)
    allowed = tuple(allowed)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise BadInput(
            f"unknown remediation step {', '.join(unknown)}; this runbook offers: {', '.join(allowed) or 'none'}"
        )
    return names


def _one_line_note(note: str) -> str:
    """A comment after a command: no character that could end the line (and so start a new command)."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in note).strip()


def shell_line(argv: Sequence[str], note: str = "") -> str:
    """One command as text that is safe to copy into a shell: every argument shell-quoted
    (``shlex.join``), whatever it holds (``;``, ``$(...)``, backticks, quotes, spaces, newlines);
    ``note`` becomes a trailing ``# comment`` on the same line. ``shlex.split(line, comments=True)``
    gives back exactly ``argv``. The one way a planned command is built: never by string formatting."""
    line = shlex.join(str(a) for a in argv)
    note = _one_line_note(note)
    return f"{line}  # {note}" if note else line


def plan_commands(*commands: tuple[Sequence[str], str]) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """``(argv, note)`` pairs -> (the text a Step shows, one :func:`shell_line` per line; the argvs)."""
    text = "\n".join(shell_line(argv, note) for argv, note in commands)
    return text, tuple(tuple(str(a) for a in argv) for argv, _ in commands)


@dataclass
class Step:
    """One remediation step. ``execute`` returns a short description of what it did."""

    name: str
    what: str
    command: str
    execute: Callable[[], str | dict[str, Any]]
    risk: str = ""
    preview: str = ""  # e.g. the offline SQL a migration would run, shown for review
    precondition: str = ""  # non-empty: the step cannot run now, and why
    argv: tuple[tuple[str, ...], ...] = ()  # the command(s) ``command`` shows, as argument vectors

    def __post_init__(self) -> None:
        if self.name not in STEP_NAMES:
            raise ValueError(f"unknown step name {self.name!r}")


@dataclass
class StepOutcome:
    step: Step
    action: Action
    result: Any = None
    applied: bool = False
    runbook: str = ""

    @property
    def mode(self) -> str:
        return self.action.mode

    def _how_to_apply(self) -> str:
        runbook = self.runbook or "<runbook>"
        return (
            f'To apply it here: set apply = ["{self.step.name}"] in the parameters cell, then Run > Run All Cells '
            f"(the checks run again first, then this step runs for real). "
            f"Headless, with an evidence report: {shell_line(['propflow-ops', 'run', runbook, '--apply', self.step.name])}"
        )

    def _repr_html_(self) -> str:
        colour = {"planned": "#1565c0", "executed": "#2e7d32", "failed": "#b71c1c"}[self.mode]
        parts = [
            f'<div class="propflow-step" style="border-left:4px solid {colour};padding:4px 10px;margin:6px 0">',
            f"<b>Step <code>{html.escape(self.step.name)}</code>: "
            # A badge, not coloured text: blue text on JupyterLab's dark background is unreadable.
            f'<span style="background:{colour};color:#fff;padding:0 6px;border-radius:3px">'
            f"{self.mode.upper()}</span></b>",
            f"<div>{html.escape(redact_text(self.step.what))}</div>",
        ]
        if self.step.risk:
            parts.append(f"<div><i>Risk:</i> {html.escape(redact_text(self.step.risk))}</div>")
        parts.append(f"<pre style=\"margin:4px 0\">{html.escape(redact_text(self.step.command))}</pre>")
        if self.step.preview:
            parts.append(
                "<details><summary>Preview (review before applying)</summary>"
                f"<pre>{html.escape(redact_text(self.step.preview))}</pre></details>"
            )
        parts.append(f"<div>{html.escape(redact_text(self.action.detail))}</div>")
        if self.mode == "planned":
            parts.append(f"<div><small>{html.escape(self._how_to_apply())}</small></div>")
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        lines = [
            f"Step {self.step.name}: {self.mode.upper()}",
            f"  {redact_text(self.step.what)}",
        ]
        if self.step.risk:
            lines.append(f"  Risk: {redact_text(self.step.risk)}")
        lines.append(f"  $ {redact_text(self.step.command)}")
        if self.step.preview:
            lines.append("  Preview:")
            lines.extend("    " + line for line in redact_text(self.step.preview).splitlines())
        lines.append(f"  {redact_text(self.action.detail)}")
        if self.mode == "planned":
            lines.append(f"  {self._how_to_apply()}")
        return "\n".join(lines)


def run_step(ev: Evidence, step: Step, apply: Iterable[str] | None = None) -> StepOutcome:
    """Plan the step, and execute it only if its name is in ``apply`` (default: the run's own)."""
    chosen = list(ev.apply if apply is None else apply)
    if step.name not in chosen:
        action = Action(step.name, "planned", step.command,
                        "Not applied (read-only run). " + (step.precondition or "Would: " + step.what))
        ev.record(action)
        return StepOutcome(step, action, runbook=ev.runbook)
    if step.precondition:
        action = Action(step.name, "failed", step.command, f"Not run: {step.precondition}")
        ev.record(action)
        return StepOutcome(step, action, applied=True, runbook=ev.runbook)
    by = _log_action(ev, "started", Action(step.name, "started", step.command, "Started: " + step.what))
    try:
        result = step.execute()
    except Exception as exc:  # noqa: BLE001 - a failed step is recorded, and the runbook goes on
        action = Action(step.name, "failed", step.command, f"{type(exc).__name__}: {exc}")
        ev.record(action)
        _log_action(ev, "ended", action, by)
        return StepOutcome(step, action, applied=True, runbook=ev.runbook)
    detail = result if isinstance(result, str) else ", ".join(f"{k}={v}" for k, v in redact(jsonable(result)).items())
    action = Action(step.name, "executed", step.command, detail)
    ev.record(action)
    _log_action(ev, "ended", action, by)
    return StepOutcome(step, action, result=result, applied=True, runbook=ev.runbook)


def _log_action(ev: Evidence, phase: str, action: Action, by: dict[str, Any] | None = None) -> dict[str, Any]:
    """The incident record's ``action`` event before a step starts and after it ends (headless or JupyterLab),
    so a closed tab or a dead kernel loses no record of a change. Interim: change control (issue 17) replaces
    this with its own before/after function. Written only where the output folder is known
    ($PROPFLOW_OUTPUT_DIR: the runner and the lab set it); a failure to write is said, never stops the step."""
    import os
    import sys

    from propflow_ops import incident_record as ir
    from propflow_ops import operator as operator_mod

    incident = str(ev.incident.get("id") or "")
    if not incident or not os.environ.get("PROPFLOW_OUTPUT_DIR"):
        return by or {}
    by = by or operator_mod.current()
    fields = {**action.to_json(), "phase": phase, "runbook": ev.runbook, "by_label": operator_mod.label(by),
              "reason": redact_text(str(ev.parameters.get("reason") or "")),
              "verification": "not verified: verification comes with change control (issue 17)",
              "run_mode": "headless" if os.environ.get("PROPFLOW_EVIDENCE_PATH") else "interactive"}
    fields.pop("at", None)
    try:
        with ir.store_for(None).session(incident) as s:
            s.append(ir.event("action", by, at=action.at, **fields))
    except Exception as exc:  # noqa: BLE001 - the evidence still holds the action
        print(f"propflow-ops: warning: the incident record was not updated ({phase} {action.step}): "
              f"{type(exc).__name__}: {redact_text(str(exc))}", file=sys.stderr)
    return by
