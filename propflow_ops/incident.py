"""The incident clock: severity matrix, escalation matrix and RTO/RPO, from the runbook document.

Incident Response Matrix: P0 15 min, P1 1 h, P2 4 h, P3 24 h.
Escalation Matrix (from the incident start): 15 min notify on-call (P0),
30 min engineering lead, 1 h CTO, 2 h consider external communication.
The document does not say which severities the later steps apply to; we apply
the whole matrix to P0, the steps from 30 min on to P1, and for P2/P3 only a
"notify engineering lead" once the response target itself is overdue. This is
stated in every report so nobody has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from propflow_ops.findings import iso, utcnow


@dataclass(frozen=True)
class Severity:
    name: str
    label: str
    definition: str
    response: timedelta
    examples: str


SEVERITIES: dict[str, Severity] = {
    "P0": Severity(
        "P0",
        "Critical",
        "Service down, data loss risk",
        timedelta(minutes=15),
        "Database unavailable, complete API failure",
    ),
    "P1": Severity(
        "P1", "High", "Major feature broken", timedelta(hours=1), "Photo upload failing, auth broken"
    ),
    "P2": Severity(
        "P2", "Medium", "Feature impaired", timedelta(hours=4), "Slow responses, WebSocket issues"
    ),
    "P3": Severity("P3", "Low", "Minor issues", timedelta(hours=24), "UI bugs, logging issues"),
}


@dataclass(frozen=True)
class EscalationStep:
    after: timedelta
    action: str
    severities: tuple[str, ...]


ESCALATION: tuple[EscalationStep, ...] = (
    EscalationStep(timedelta(minutes=15), "Notify on-call engineer", ("P0",)),
    EscalationStep(timedelta(minutes=30), "Notify engineering lead", ("P0", "P1")),
    EscalationStep(timedelta(hours=1), "Notify CTO", ("P0", "P1")),
    EscalationStep(timedelta(hours=2), "Consider external communication", ("P0", "P1")),
)
OVERDUE_ESCALATION = "Notify engineering lead (response overdue)"
#: Who each step of the document's matrix tells ([contacts] keys of the team configuration).
_DEFAULT_CONTACTS = {
    "Notify on-call engineer": ("primary-on-call",),
    "Notify engineering lead": ("engineering-lead",),
    "Notify CTO": ("cto",),
    OVERDUE_ESCALATION: ("engineering-lead",),
}


@dataclass(frozen=True)
class PolicyStep:
    """One step of an escalation policy: after how long, what, whom, through which channels (empty: all)."""

    after: timedelta
    action: str
    contacts: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def after_min(self) -> int | float:
        minutes = self.after.total_seconds() / 60
        return int(minutes) if minutes == int(minutes) else round(minutes, 2)

    @property
    def key(self) -> str:
        """Identifies the step in the incident record (a step is sent once per channel)."""
        return f"{self.after_min}m:{self.action}"


@dataclass(frozen=True)
class EscalationPolicy:
    steps: dict[str, tuple[PolicyStep, ...]]
    source: str = "default"

    def for_severity(self, severity: str) -> tuple[PolicyStep, ...]:
        return self.steps.get(severity, ())

    def describe(self) -> str:
        """One line per the whole policy, for reports."""
        parts = []
        for sev in SEVERITIES:
            steps = self.for_severity(sev)
            text = ", ".join(f"{s.action} at {_duration(s.after)}" for s in steps) or "no escalation"
            parts.append(f"{sev}: {text}")
        return f"Escalation policy ({self.source}): " + "; ".join(parts) + "."


def _duration(td: timedelta) -> str:
    minutes = td.total_seconds() / 60
    if minutes >= 60 and minutes % 60 == 0:
        return f"{int(minutes // 60)} h"
    return f"{minutes:g} min"


def _default_policy() -> EscalationPolicy:
    steps: dict[str, tuple[PolicyStep, ...]] = {}
    for sev in SEVERITIES:
        chosen = [
            PolicyStep(s.after, s.action, _DEFAULT_CONTACTS.get(s.action, ()))
            for s in ESCALATION
            if sev in s.severities
        ]
        if not chosen:
            chosen = [
                PolicyStep(
                    SEVERITIES[sev].response, OVERDUE_ESCALATION, _DEFAULT_CONTACTS[OVERDUE_ESCALATION]
                )
            ]
        steps[sev] = tuple(chosen)
    return EscalationPolicy(steps, "default: the runbook document's matrix")


#: The document's Escalation Matrix states only P0's first step: the whole matrix applies to P0, the steps from
#: 30 min on to P1, and P2/P3 notify the engineering lead once their response target is overdue.
DEFAULT_POLICY = _default_policy()
_policy_cache: dict[tuple[str, str, float], EscalationPolicy] = {}


def policy_from_config(cfg: Any) -> EscalationPolicy:
    """The team configuration's [escalation] over the default (a severity it does not name keeps the default)."""
    if not getattr(cfg, "escalation", None):
        return DEFAULT_POLICY
    steps = dict(DEFAULT_POLICY.steps)
    for sev, configured in cfg.escalation.items():
        steps[sev] = tuple(
            PolicyStep(timedelta(minutes=s.after_min), s.action, s.contacts, s.channels) for s in configured
        )
    named = ", ".join(sorted(cfg.escalation))
    return EscalationPolicy(
        steps, f"team configuration {cfg.path.name if cfg.path else ''} for {named}; default for the rest"
    )


def active_policy(env: Any = None) -> EscalationPolicy:
    """The policy of the team configuration this process points at ($PROPFLOW_CONFIG / ./propflow-ops.toml);
    the default when there is none. A broken file gives the default here (the runner refuses it earlier)."""
    import os

    from propflow_ops import config as config_mod

    env = os.environ if env is None else env
    try:
        path = config_mod.config_path(None, env)
        if path is None:
            return DEFAULT_POLICY
        key = (str(path), str(env.get(config_mod.ENV_NAME_ENV) or ""), path.stat().st_mtime)
        if key not in _policy_cache:
            _policy_cache[key] = policy_from_config(config_mod.load(None, None, env))
        return _policy_cache[key]
    except (BadInput, OSError):
        return DEFAULT_POLICY


@dataclass(frozen=True)
class Objective:
    service: str
    rto: timedelta | None
    rpo: timedelta | None  # timedelta(0) = real time; None = not applicable
    rpo_text: str


OBJECTIVES: dict[str, Objective] = {
    "api": Objective("API", timedelta(minutes=15), timedelta(0), "0 (real-time)"),
    "database": Objective("Database", timedelta(hours=1), timedelta(minutes=5), "5 min"),
    "file-storage": Objective("File Storage", timedelta(hours=1), timedelta(hours=24), "24 hours"),
    "frontend": Objective("Frontend", timedelta(minutes=5), None, "N/A"),
}
DATABASE_RPO = OBJECTIVES["database"].rpo or timedelta(minutes=5)


class BadInput(ValueError):
    """A parameter or option that cannot be used; its message is one line for the engineer."""


def parse_severity(value: str | None, default: str) -> str:
    sev = (value or default).strip().upper()
    if sev not in SEVERITIES:
        raise BadInput(f"severity must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return sev


def parse_time(value: str | datetime | None, *, name: str = "started_at") -> datetime:
    """ISO 8601 -> aware UTC datetime; empty means now."""
    if value is None or value == "":
        return utcnow()
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise BadInput(
                f"{name} must be an ISO 8601 time like 2026-11-26T03:12:00Z, not {value!r}"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def recorded_time(value: Any) -> datetime | None:
    """A time read back from a record or an evidence file: None when absent or unreadable (never raises)."""
    if not value:
        return None
    try:
        return parse_time(str(value))
    except BadInput:
        return None


def escalation_steps(
    severity: str, started_at: datetime, policy: EscalationPolicy | None = None
) -> list[dict[str, Any]]:
    """Every escalation step that applies to this severity, with when it falls due."""
    policy = policy or active_policy()
    return [
        {
            "after_min": s.after_min,
            "action": s.action,
            "due_at": started_at + s.after,
            "key": s.key,
            "contacts": list(s.contacts),
            "channels": list(s.channels),
        }
        for s in policy.for_severity(severity)
    ]


def clock(
    incident_id: str,
    severity: str,
    started_at: datetime,
    now: datetime | None = None,
    policy: EscalationPolicy | None = None,
) -> dict[str, Any]:
    """The incident block of evidence.json plus what the banner shows."""
    now = now or utcnow()
    sev = SEVERITIES[severity]
    due = started_at + sev.response
    policy = policy or active_policy()
    steps = escalation_steps(severity, started_at, policy)
    reached = [s for s in steps if s["due_at"] <= now]
    upcoming = [s for s in steps if s["due_at"] > now]
    return {
        "id": incident_id,
        "severity": severity,
        "started_at": iso(started_at),
        "response_due_at": iso(due),
        "escalation_due": reached[-1]["action"] if reached else None,
        "elapsed_min": round((now - started_at).total_seconds() / 60, 1),
        "response_overdue": now > due,
        "next_escalation": (
            {"action": upcoming[0]["action"], "at": iso(upcoming[0]["due_at"])} if upcoming else None
        ),
        "escalation_steps": [
            {
                "after_min": s["after_min"],
                "action": s["action"],
                "due_at": iso(s["due_at"]),
                "reached": s["due_at"] <= now,
            }
            for s in steps
        ],
        "escalation_policy": policy.describe(),
        "configuration": configuration_note(),
    }


def clock_text(block: dict[str, Any]) -> str:
    """One line for the banner."""
    sev = SEVERITIES[block["severity"]]
    parts = [
        f"{block['id']} {block['severity']} ({sev.label}) started {block['started_at']},"
        f" {block['elapsed_min']} min ago;",
        f"response due {block['response_due_at']}"
        + (" (OVERDUE)" if block["response_overdue"] else "")
        + ";",
        f"escalation due now: {block['escalation_due'] or 'none yet'}",
    ]
    if block.get("next_escalation"):
        parts.append(f"(next: {block['next_escalation']['action']} at {block['next_escalation']['at']})")
    if block.get("escalation_policy"):
        parts.append(f"\n{block['escalation_policy']}")
    if block.get("configuration"):
        parts.append(f"\n{block['configuration']}")
    return " ".join(parts)


def configuration_note(env: Any = None) -> str:
    """Which team configuration file and environment this process uses (names only, never a value)."""
    import os

    from propflow_ops import config as config_mod

    env = os.environ if env is None else env
    try:
        path = config_mod.config_path(None, env)
    except BadInput:
        path = None
    if path is None:
        return "Configuration: no propflow-ops.toml (defaults)."
    name = env.get(config_mod.ENV_NAME_ENV)
    return f"Configuration: {path}" + (f", environment {name}." if name else ", no environment chosen.")


def default_incident_id(now: datetime | None = None) -> str:
    return "ADHOC-" + (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")


def rto_verdict(service: str, started_at: datetime, recovered_at: datetime | None) -> dict[str, Any]:
    obj = OBJECTIVES[service]
    if obj.rto is None:
        return {"service": obj.service, "rto_min": None, "verdict": "n/a"}
    rto_min = obj.rto.total_seconds() / 60
    if recovered_at is None:
        return {"service": obj.service, "rto_min": rto_min, "recovery_min": None, "verdict": "not recovered"}
    took = (recovered_at - started_at).total_seconds() / 60
    return {
        "service": obj.service,
        "rto_min": rto_min,
        "recovery_min": round(took, 1),
        "verdict": "met" if took <= rto_min else "missed",
    }


POST_INCIDENT_CHECKLIST: tuple[str, ...] = (
    "Root cause identified",
    "Impact documented",
    "Timeline created",
    "Fix implemented",
    "Runbook updated",
    "Team debriefed",
    "Follow-up tickets created",
)


class Checklist:
    """The runbook document's post-incident checklist, as a markdown/HTML list to tick off."""

    def __init__(
        self, items: tuple[str, ...] = POST_INCIDENT_CHECKLIST, done: frozenset[str] = frozenset()
    ) -> None:
        self.items = items
        self.done = done

    def markdown(self) -> str:
        return "\n".join(f"- [{'x' if i in self.done else ' '}] {i}" for i in self.items)

    def _repr_markdown_(self) -> str:
        return "**Post-incident checklist**\n\n" + self.markdown()

    def __repr__(self) -> str:
        return "Post-incident checklist:\n" + self.markdown()
