"""Remediation steps: always planned, executed only when ``apply`` names them.

A runbook module builds a :class:`Step` (what it would change, the equivalent
``aws``/``alembic`` command, and the function that does it). The notebook
passes it to :func:`run_step`, which records an audit :class:`Action`
(planned / executed / failed / refused) in the evidence and returns something that
displays the plan, and the result when it ran. Applying goes through :mod:`propflow_ops.change` (confirm,
lock, protect, verify, undo): the hooks below (``resource``, ``before``, ``protect``, ``verify``, ``undo``,
``refused_while``) are how a step tells it what to lock, keep, check and how to go back.
"""

from __future__ import annotations

import html
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from propflow_ops.findings import Action, Evidence
from propflow_ops.incident import BadInput
from propflow_ops.redact import redact_text

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
    resource: str = ""  # what the team-wide lock covers: ecs:<cluster>/<service>, rds:<id>, s3:<bucket>, ...
    before: Callable[[], dict[str, Any]] | None = None  # state read just before it runs (for the undo)
    protect: Callable[[Any, str], dict[str, Any]] | None = (
        None  # (change options, incident id) -> what was kept
    )
    verify: Callable[[Any, dict[str, Any]], Callable[[], tuple[bool, str]]] | None = (
        None  # (result, before) -> probe
    )
    undo: Callable[[Any, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = (
        None  # (result, before, protect)
    )
    refused_while: tuple[str, ...] = ()  # finding codes that, failing, refuse the step unless forced
    protection: str = ""  # the plan's line about what is kept first (snapshot, key list)
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
            f"(the checks run again first, then this step runs for real); set reason = 'why' and, when the target is not "
            f'the sandbox, confirm = "{self.step.name}". '
            "Headless, with an evidence report: "
            f"{shell_line(['propflow-ops', 'run', runbook, '--apply', self.step.name, '--reason', 'TEXT'])}"
        )

    def _repr_html_(self) -> str:
        colour = {"planned": "#1565c0", "executed": "#2e7d32", "failed": "#b71c1c", "refused": "#6a1b9a"}[
            self.mode
        ]
        if self.mode == "executed" and self.action.extra.get("verified") is False:
            colour = "#e65100"
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
        if self.step.protection:
            parts.append(f"<div><i>First:</i> {html.escape(redact_text(self.step.protection))}</div>")
        parts.append(f'<pre style="margin:4px 0">{html.escape(redact_text(self.step.command))}</pre>')
        if self.step.preview:
            parts.append(
                "<details><summary>Preview (review before applying)</summary>"
                f"<pre>{html.escape(redact_text(self.step.preview))}</pre></details>"
            )
        parts.append(f"<div>{html.escape(redact_text(self.action.detail))}</div>")
        parts.extend(f"<div>{html.escape(redact_text(line))}</div>" for line in change_lines(self.action))
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
        if self.step.protection:
            lines.append(f"  First: {redact_text(self.step.protection)}")
        lines.append(f"  $ {redact_text(self.step.command)}")
        if self.step.preview:
            lines.append("  Preview:")
            lines.extend("    " + line for line in redact_text(self.step.preview).splitlines())
        lines.append(f"  {redact_text(self.action.detail)}")
        lines.extend(f"  {redact_text(line)}" for line in change_lines(self.action))
        if self.mode == "planned":
            lines.append(f"  {self._how_to_apply()}")
        return "\n".join(lines)


def change_lines(action: Action) -> list[str]:
    """What an applied or refused step says about who, why, the verification and the undo."""
    x = action.extra
    if not x:
        return []
    out = []
    if x.get("by"):
        out.append(
            f"Applied by {x['by']}"
            + (f", reason: {x['reason']}" if x.get("reason") else "")
            + (f"; confirmed: {x['confirmed']}" if x.get("confirmed") else "")
        )
    if x.get("protect", {}).get("detail"):
        out.append(f"Kept first: {x['protect']['detail']}")
    if "verified" in x:
        out.append(
            ("VERIFIED: " if x["verified"] else "NOT VERIFIED: ") + str(x.get("verification", {}).get("seen"))
        )
    undo = x.get("undo") or {}
    if undo:
        out.append(
            f"Undo: {undo.get('detail', '')}"
            + (f"  $ {undo['command']}" if undo.get("command") else "")
            + (f"  (apply: {undo['apply']})" if undo.get("apply") else "")
        )
    return out


def run_step(ev: Evidence, step: Step, apply: Iterable[str] | None = None) -> StepOutcome:
    """Plan the step, and apply it (through :mod:`propflow_ops.change`) only if ``apply`` names it."""
    chosen = list(ev.apply if apply is None else apply)
    if step.name not in chosen:
        why = "Not applied in this run." if chosen else "Not applied (read-only run)."
        action = Action(
            step.name, "planned", step.command, f"{why} " + (step.precondition or "Would: " + step.what)
        )
        ev.record(action)
        return StepOutcome(step, action, runbook=ev.runbook)
    from propflow_ops.change.apply import apply_step

    return apply_step(ev, step)
