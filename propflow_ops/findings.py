"""Findings, the evidence collector a notebook adds to, and its display.

A check returns a :class:`Finding`; a notebook adds it to the run's
:class:`Evidence` (``ev = Evidence.start(...)`` in the first cells). At the end
the notebook calls ``ev.save()`` which writes ``evidence.json`` next to the
executed notebook (the runner picks it up) and shows the findings table.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from propflow_ops import __version__
from propflow_ops.redact import redact, redact_text

SCHEMA = "propflow-ops.evidence/1"
# The runner sets this to the file the notebook writes its evidence to.
EVIDENCE_PATH_ENV = "PROPFLOW_EVIDENCE_PATH"


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"
    ERROR = "error"


# Worst first: the order findings are sorted in for the report.
STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.WARN: 2, Status.OK: 3, Status.SKIPPED: 4}
STATUS_COLOURS = {
    Status.FAIL: ("#b71c1c", "#ffffff"),
    Status.ERROR: ("#6a1b9a", "#ffffff"),
    Status.WARN: ("#f9a825", "#000000"),
    Status.OK: ("#2e7d32", "#ffffff"),
    Status.SKIPPED: ("#757575", "#ffffff"),
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Finding:
    """What one check saw. ``code`` names the condition the check looks for."""

    code: str
    status: Status
    title: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        if not self.code or not self.code.replace("_", "").isalnum() or self.code.upper() != self.code:
            raise ValueError(f"finding code must be UPPER_SNAKE: {self.code!r}")

    # Constructors that read well in checks.
    @classmethod
    def ok(cls, code: str, title: str, detail: str = "", **data: Any) -> Finding:
        return cls(code, Status.OK, title, detail, data)

    @classmethod
    def warn(cls, code: str, title: str, detail: str = "", **data: Any) -> Finding:
        return cls(code, Status.WARN, title, detail, data)

    @classmethod
    def fail(cls, code: str, title: str, detail: str = "", **data: Any) -> Finding:
        return cls(code, Status.FAIL, title, detail, data)

    @classmethod
    def skipped(cls, code: str, title: str, detail: str, **data: Any) -> Finding:
        return cls(code, Status.SKIPPED, title, detail, data)

    @classmethod
    def error(cls, code: str, title: str, exc: BaseException | str, **data: Any) -> Finding:
        detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return cls(code, Status.ERROR, title, detail, data)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status.value,
            "title": redact_text(self.title),
            "detail": redact_text(self.detail),
            "data": redact(jsonable(self.data)),
        }


def jsonable(value: Any) -> Any:
    """Turn numpy/pandas/datetime values into plain JSON values."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if value != value else value  # NaN -> null
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # the fields its repr shows: a field kept out of the repr (a token, a task environment) stays out
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):  # pandas Timestamp, date
        try:
            return iso(value.to_pydatetime()) if hasattr(value, "to_pydatetime") else value.isoformat()
        except (ValueError, TypeError):
            return str(value)
    if hasattr(value, "item"):  # numpy scalar
        try:
            return jsonable(value.item())
        except (ValueError, TypeError):
            pass
    if hasattr(value, "to_dict"):  # DataFrame / Series
        try:
            return jsonable(value.to_dict(orient="records"))
        except TypeError:
            return jsonable(value.to_dict())
    return str(value)


@dataclass
class Action:
    """The audit record of one remediation step."""

    step: str
    mode: str  # planned | executed | failed | refused
    command: str
    detail: str
    at: datetime = field(default_factory=utcnow)
    #: change control (applied or refused steps): by, reason, confirmed, lock, protect, verified, verification, undo
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "mode": self.mode,
            "command": redact_text(self.command),
            "detail": redact_text(self.detail),
            "at": iso(self.at),
            **redact(jsonable(self.extra)),
        }


# Per cell: JupyterLab's output CSS right-aligns td/th (it is made for numbers), which garbles prose.
_CELL = "padding:2px 8px;text-align:left;vertical-align:top"
_ROW_RULE = "border-bottom:1px solid rgba(128,128,128,0.35)"  # reads on light and dark backgrounds


class FindingsTable:
    """Rich display of findings: coloured HTML in JupyterLab and in report.html, text elsewhere."""

    def __init__(self, findings: Iterable[Finding], title: str = "Findings") -> None:
        self.findings = sorted(findings, key=lambda f: STATUS_ORDER[f.status])
        self.title = title

    def _repr_html_(self) -> str:
        rows = []
        for f in self.findings:
            bg, fg = STATUS_COLOURS[f.status]
            rows.append(
                f'<tr style="{_ROW_RULE}">'
                f'<td style="background:{bg};color:{fg};font-weight:bold;text-align:center;'
                f'padding:2px 8px;vertical-align:top">{f.status.value.upper()}</td>'
                f'<td style="{_CELL};font-family:monospace;white-space:nowrap">{html.escape(f.code)}</td>'
                f'<td style="{_CELL};min-width:12em">{html.escape(redact_text(f.title))}</td>'
                f'<td style="{_CELL};white-space:pre-wrap">{html.escape(redact_text(f.detail))}</td>'
                "</tr>"
            )
        counts = summary_counts(self.findings)
        head = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return (
            f'<div class="propflow-findings"><h3 style="margin:4px 0">{html.escape(self.title)}'
            f' <small style="font-weight:normal">({html.escape(head or "none")})</small></h3>'
            '<table style="border-collapse:collapse;text-align:left">'
            f'<thead><tr><th style="{_CELL}">status</th><th style="{_CELL}">code</th>'
            f'<th style="{_CELL}">what</th><th style="{_CELL}">detail</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )

    def __repr__(self) -> str:
        if not self.findings:
            return f"{self.title}: none"
        width = max(len(f.code) for f in self.findings)
        lines = [f"{self.title}:"]
        for f in self.findings:
            lines.append(f"  {f.status.value.upper():7} {f.code:{width}}  {redact_text(f.title)}")
            if f.detail:
                lines.append(f"  {'':7} {'':{width}}  {redact_text(f.detail)}")
        return "\n".join(lines)


def summary_counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {s.value: 0 for s in STATUS_ORDER}
    for f in findings:
        counts[f.status.value] += 1
    return counts


@dataclass
class Evidence:
    """Everything one run collects: findings, actions, recommendations."""

    runbook: str
    title: str
    incident: dict[str, Any]
    parameters: dict[str, Any]
    target: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    recommended_runbooks: list[str] = field(default_factory=list)
    recommendation_reasons: dict[str, str] = field(default_factory=dict)
    apply: list[str] = field(default_factory=list)
    window_start: datetime | None = None
    window_end: datetime | None = None
    started_at: datetime = field(default_factory=utcnow)
    #: Called once by save() for findings only the end of the run knows (reach: was each target answering?).
    finishers: list[Callable[[Evidence], Iterable[Finding]]] = field(default_factory=list, repr=False)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def add(self, *findings: Finding | Iterable[Finding]) -> FindingsTable:
        """Add findings (or lists of them); returns a table of just these, for display."""
        added: list[Finding] = []
        for item in findings:
            if isinstance(item, Finding):
                added.append(item)
            else:
                added.extend(item)
        self.findings.extend(added)
        self.checkpoint()
        return FindingsTable(added, title="Checked here")

    def record(self, action: Action) -> Action:
        self.actions.append(action)
        self.checkpoint()
        return action

    def checkpoint(self) -> None:
        """Keep the evidence file current, so a run that dies later loses nothing it had found."""
        target = os.environ.get(EVIDENCE_PATH_ENV)
        if target:
            write_json_atomic(Path(target), self.to_json(status="error"))

    def recommend(self, slug: str, reason: str) -> None:
        if slug not in self.recommended_runbooks:
            self.recommended_runbooks.append(slug)
            self.recommendation_reasons[slug] = reason

    def status(self) -> str:
        return "problems" if any(f.status is Status.FAIL for f in self.findings) else "ok"

    def table(self) -> FindingsTable:
        return FindingsTable(self.findings, title=f"Findings: {self.title}")

    def to_json(self, status: str | None = None) -> dict[str, Any]:
        finished = utcnow()
        return {
            "schema": SCHEMA,
            "runbook": self.runbook,
            "title": self.title,
            "status": status or self.status(),
            "incident": jsonable(self.incident),
            "run": {
                "started_at": iso(self.started_at),
                "finished_at": iso(finished),
                "duration_s": round(time.monotonic() - self._t0, 3),
                "propflow_ops_version": __version__,
                "target": redact(jsonable(self.target)),
            },
            "parameters": redact(jsonable(self.parameters)),
            "findings": [f.to_json() for f in self.findings],
            "actions": [a.to_json() for a in self.actions],
            "recommended_runbooks": list(self.recommended_runbooks),
            "recommendation_reasons": dict(self.recommendation_reasons),
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> FindingsTable:
        """Write evidence.json (atomically) where the runner asked, and return the findings table."""
        finishers, self.finishers = self.finishers, []
        for finish in finishers:
            self.findings.extend(finish(self))
        target = path or os.environ.get(EVIDENCE_PATH_ENV)
        if target:
            write_json_atomic(Path(target), self.to_json())
        return self.table()


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
