"""The ``action`` events of the incident record: one before a step starts, one after it ends.

:func:`record_action` is the one function every path that applies a step calls (headless runs now,
JupyterLab's interactive runs next): a crash mid-step still leaves the ``started`` event, and the review's
timeline shows every applied and refused step with who, why and the outcome.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from propflow_ops import incident_record as ir
from propflow_ops.redact import redact

#: what the record keeps of an action (the evidence has the rest: before, protect, result...)
_KEEP = ("step", "mode", "reason", "detail", "command", "confirmed", "target", "forced", "verified")


def record_action(
    incident_id: str,
    phase: str,
    action: Mapping[str, Any],
    by: Mapping[str, Any],
    root: str | None = None,
    *,
    at: datetime | None = None,
    runbook: str = "",
    run_mode: str = "",
) -> bool:
    """Append ``{"event": "action", "phase": started|ended|refused|lock-break, ...}`` at ``at`` (the evidence
    action's own time: the review shows a step once). Written only where the output folder is known (``root``,
    or ``$PROPFLOW_OUTPUT_DIR``: the runner and the lab set it). False (and a warning on stderr) when it cannot
    be written: the step's evidence still has everything."""
    if not incident_id or not (root or os.environ.get("PROPFLOW_OUTPUT_DIR")):
        return False  # a step outside any incident or output folder (a unit test, a bare kernel)
    a = redact(dict(action))
    fields = {k: a[k] for k in _KEEP if a.get(k) not in (None, "", {}, [])}
    if isinstance(a.get("verification"), dict):
        fields["verification"] = a["verification"]
        fields["seen"] = a["verification"].get("seen")
    if runbook:
        fields["runbook"] = runbook
    if run_mode:
        fields["run_mode"] = run_mode
    if isinstance(a.get("undo"), dict):
        fields["undo"] = " ".join(str(a["undo"].get(k) or "") for k in ("detail", "command")).strip()
    if isinstance(a.get("protect"), dict) and a["protect"].get("snapshot"):
        fields["snapshot"] = a["protect"]["snapshot"]
    if isinstance(a.get("lock"), dict):
        fields["resource"] = a["lock"].get("resource")
    fields["by_label"] = a.get("by")
    fields["phase"] = phase
    try:
        store = ir.store_for(root or None)
        with store.session(incident_id) as s:
            s.append(ir.event("action", by, at=at, **fields))
        return True
    except Exception as exc:  # noqa: BLE001 - the record is a copy; the evidence is the primary
        print(
            f"propflow-ops: warning: the incident record was not updated ({phase} {action.get('step')}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return False
