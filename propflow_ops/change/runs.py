"""What the headless runner and the ``lock`` command call: kept here so runner.py and cli.py stay small."""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from propflow_ops import operator as operator_mod
from propflow_ops.change import audit, confirm, target
from propflow_ops.change import lock as lock_mod
from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import BadInput

PENDING = "pending"
#: the cell timeout of a run that applies: the typed confirmation, then protection, step and verification
APPLY_CELL_TIMEOUT_S = confirm.CONFIRM_WAIT_S + 100 + 30  # 100: change.apply.STEP_BUDGET_S


def preflight(
    apply: list[str],
    incident_id: str,
    env: Mapping[str, str],
    *,
    yes: bool,
    reason: str | None,
    no_snapshot: bool,
    force: bool,
    record_root: str,
    stdin_tty: bool | None = None,
) -> dict[str, str]:
    """Before the kernel starts: the kernel's change options, or BadInput (exit 2, one line).

    Without a terminal and without ``--yes``, applying against a target that is not the sandbox is refused
    here, before anything runs, and each refused step is recorded in the incident record."""
    if not apply:
        if yes or reason or no_snapshot or force:
            raise BadInput("--yes, --reason, --no-snapshot and --force go with --apply STEP")
        return {}
    if not (reason or "").strip():
        raise BadInput("--apply needs --reason TEXT (a ticket or a sentence: it is recorded with the change)")
    is_sandbox, why_not = target.sandbox_check(env)
    tty = sys.stdin.isatty() if stdin_tty is None else stdin_tty
    prompt_dir = ""
    if not is_sandbox and not yes:
        if not tty:
            by = operator_mod.current(env)
            for step in apply:
                audit.record_action(
                    incident_id,
                    "refused",
                    {
                        "step": step,
                        "mode": "refused",
                        "reason": reason,
                        "by": operator_mod.label(by),
                        "detail": f"Refused: not confirmed (no terminal, no --yes); target not the sandbox: {why_not}",
                    },
                    by,
                    record_root,
                )
            raise BadInput(
                f"refused: --apply {','.join(apply)} against a target that is not the sandbox "
                f"({why_not}) needs a confirmation: run it on a terminal, or pass --yes"
            )
        prompt_dir = PENDING  # bound to the run's private folder by bind_prompt
    opts = confirm.ChangeOptions(
        headless=True,
        yes=yes,
        reason=(reason or "").strip(),
        no_snapshot=no_snapshot,
        force=force,
        prompt_dir=prompt_dir,
        record_root=record_root,
    )
    return {confirm.OPTIONS_ENV: opts.to_env()}


def bind_prompt(change_env: Mapping[str, str], directory: Path) -> dict[str, str]:
    """The options with the terminal channel in ``directory`` (the run's private folder), if there is one."""
    if prompt_dir(change_env) != PENDING:
        return dict(change_env)
    raw = json.loads(change_env[confirm.OPTIONS_ENV])
    raw["prompt_dir"] = str(directory)
    return {**change_env, confirm.OPTIONS_ENV: json.dumps(raw)}


def prompt_dir(change_env: Mapping[str, str]) -> str:
    try:
        return str(json.loads(change_env.get(confirm.OPTIONS_ENV) or "{}").get("prompt_dir") or "")
    except ValueError:
        return ""


def applied(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [a for a in evidence.get("actions") or [] if a.get("mode") in ("executed", "failed", "refused")]


def exit_code(evidence: Mapping[str, Any], code: int) -> int:
    """A step that did not verify, failed or was refused makes an otherwise clean run exit 1."""
    if code == 0 and any(
        a.get("mode") in ("failed", "refused") or (a.get("mode") == "executed" and a.get("verified") is False)
        for a in applied(evidence)
    ):
        return 1
    return code


def lines(evidence: Mapping[str, Any]) -> list[str]:
    """The terminal's account of every applied (or refused) step: who, why, verification, undo."""
    out = []
    for a in applied(evidence):
        head = a["mode"].upper()
        if a["mode"] == "executed":
            head += ", VERIFIED" if a.get("verified") else ", NOT VERIFIED"
        out.append(f"  APPLIED {a['step']}: {head} by {a.get('by', '?')}; reason: {a.get('reason') or '-'}")
        if a["mode"] != "executed":
            out.append(f"    {a.get('detail', '')}")
        if a.get("protect", {}).get("detail"):
            out.append(f"    kept first: {a['protect']['detail']}")
        if a.get("verification"):
            out.append(f"    seen: {a['verification'].get('seen')}")
        undo = a.get("undo") or {}
        if undo:
            out.append(
                f"    undo: {undo.get('detail', '')}"
                + (f": {undo['command']}" if undo.get("command") else "")
            )
    return out


def html_block(evidence: Mapping[str, Any]) -> str:
    """report.html's first block when the run applied anything."""
    acts = applied(evidence)
    if not acts:
        return ""
    e = html.escape
    rows = []
    for a in acts:
        verdict = a["mode"]
        if a["mode"] == "executed":
            verdict = "executed, verified" if a.get("verified") else "executed, NOT VERIFIED"
        undo = a.get("undo") or {}
        rows.append(
            f"<tr><td><b>{e(str(a['step']))}</b></td><td>{e(verdict)}</td><td>{e(str(a.get('by', '')))}</td>"
            f"<td>{e(str(a.get('reason', '')))}</td>"
            f"<td>{e(str((a.get('verification') or {}).get('seen') or a.get('detail', '')))}</td>"
            f"<td>{e(str(undo.get('detail', '')))}<br><code>{e(str(undo.get('command', '')))}</code></td></tr>"
        )
    return (
        '<div class="propflow-changes" style="border:2px solid #e65100;padding:6px 10px;margin:8px 0">'
        "<h3>Changes applied by this run</h3><table><tr><th>step</th><th>outcome</th><th>by</th><th>why</th>"
        "<th>verification</th><th>undo</th></tr>" + "".join(rows) + "</table></div>"
    )


# ---------------------------------------------------------------- propflow-ops lock list | break


def lock_main(
    action: str,
    resource: str | None,
    reason: str | None,
    as_json: bool,
    output_dir: str | None,
    env: Mapping[str, str] | None = None,
) -> int:
    env = dict(os.environ if env is None else env)
    locks = lock_mod.locks_for(env)
    if action == "list":
        held = locks.list()
        if as_json:
            print(json.dumps([h.public() for h in held], indent=2))
            return 0
        now = iso(utcnow())
        print(f"change locks ({locks.where}): {len(held) or 'none'}")
        for h in held:
            stale = " (EXPIRED)" if h.expires and h.expires < (now or "") else ""
            print(
                f"  {h.resource}: {h.owner}, {h.step}, incident {h.incident}, since {h.since}, "
                f"expires {h.expires}{stale}"
            )
        return 0
    if not resource:
        raise BadInput("lock break needs the RESOURCE (see `propflow-ops lock list`)")
    if not (reason or "").strip():
        raise BadInput("lock break needs --reason TEXT (it is recorded in the incident record)")
    old = locks.break_(resource)
    if old is None:
        print(f"{resource}: not locked")
        return 0
    by = operator_mod.current(env)
    audit.record_action(
        old.incident,
        "lock-break",
        {
            "step": old.step,
            "mode": "lock-break",
            "reason": reason,
            "by": operator_mod.label(by),
            "detail": f"lock on {resource} broken; it was held by {old.owner} since {old.since}",
        },
        by,
        output_dir or env.get("PROPFLOW_OUTPUT_DIR") or "outputs",
    )
    print(
        f"{resource}: lock broken (was {old.owner}, {old.step}, incident {old.incident}, since {old.since}); "
        f"recorded in incident {old.incident}"
    )
    return 0
