"""What every runbook notebook calls first and last: ``begin`` (parameters, clock, target banner) and ``show``.

Usage in a notebook, right after the parameters cell::

    from propflow_ops.notebook import begin, show
    ev = begin("api-down", globals())

``begin`` reads the parameter values from the notebook's globals (papermill
injects them after the parameters cell), validates them, starts the incident
clock and shows the target banner, so the first thing an engineer sees is
where this notebook points.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from propflow_ops import incident as incident_mod
from propflow_ops import interactive, reach
from propflow_ops.findings import EVIDENCE_PATH_ENV, Evidence, utcnow
from propflow_ops.redact import redact, redact_text
from propflow_ops.remediation import parse_apply
from propflow_ops.runbooks import RUNBOOKS
from propflow_ops.urls import url_host

DEFAULT_API_URL = "https://api.propflow.com"
SANDBOX_ACCOUNT = "123456789012"  # moto's account: what the embedded sandbox reports
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_PLAIN = (str, int, float, bool, list, tuple, dict, type(None))


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The plain values of a notebook's globals: its parameters (begin runs right after that cell)."""
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PLAIN)
    }


def api_url() -> str:
    return os.environ.get("PROPFLOW_API_URL") or DEFAULT_API_URL


def target() -> dict[str, Any]:
    """Where this run points. Secrets never included: hosts only."""
    aws: dict[str, Any] = {
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL") or "AWS default endpoints",
        "aws_account": None,
    }
    try:
        from propflow_ops.sources.aws import target_info

        aws.update(target_info())
    except Exception as exc:  # noqa: BLE001 - the banner must show even when AWS is unreachable
        aws["error"] = f"{type(exc).__name__}: {exc}"
    info = dict(aws)
    info["database_host"] = (
        url_host(os.environ.get("PROPFLOW_DATABASE_URL"), port=True) or "from the task definition"
    )
    info["redis_host"] = (
        url_host(os.environ.get("PROPFLOW_REDIS_URL"), port=True) or "from the task definition"
    )
    info["api_url"] = api_url()
    info["sandbox"] = is_sandbox(info)
    return redact(info)


def is_sandbox(info: Mapping[str, Any]) -> bool:
    """The banner's SANDBOX: the same test change control uses (every target that sandbox's loopback), and the
    account moto reports."""
    from propflow_ops.change.target import is_sandbox as targets_are_sandbox

    return targets_are_sandbox(os.environ) and info.get("aws_account") in (SANDBOX_ACCOUNT, None)


class Banner:
    """The first output of every runbook: where it points, and the incident clock."""

    def __init__(
        self, title: str, info: Mapping[str, Any], clock: Mapping[str, Any], interactive: str | None = None
    ) -> None:
        self.title = title
        self.info = dict(info)
        self.clock = dict(clock)
        self.interactive = interactive  # the lab's line: which incident, and that saving publishes

    @property
    def label(self) -> str:
        return "SANDBOX" if self.info.get("sandbox") else "PRODUCTION (or not the sandbox)"

    def _lines(self) -> list[str]:
        i = self.info
        return [
            f"AWS account {i.get('aws_account') or 'unknown'}, region {i.get('region') or 'default'},"
            f" endpoint {i.get('endpoint')}" + (f" ({i['error']})" if i.get("error") else ""),
            f"Database {i.get('database_host')}; Redis {i.get('redis_host')}; API {i.get('api_url')}",
            incident_mod.clock_text(self.clock),
        ] + ([self.interactive] if self.interactive else [])

    def _repr_html_(self) -> str:
        bg = "#2e7d32" if self.info.get("sandbox") else "#b71c1c"
        body = "".join(f"<div>{html.escape(redact_text(line))}</div>" for line in self._lines())
        return (
            f'<div class="propflow-banner" style="background:{bg};color:#fff;padding:8px 12px;border-radius:4px">'
            f"<b>{html.escape(self.label)}: {html.escape(self.title)}</b>{body}</div>"
        )

    def __repr__(self) -> str:
        return "\n".join(
            [f"[{self.label}] {self.title}"] + ["  " + redact_text(line) for line in self._lines()]
        )


def begin(slug: str, namespace: Mapping[str, Any], *, show_banner: bool = True) -> Evidence:
    """Validate the parameters, start the clock and the evidence, show the banner."""
    rb = RUNBOOKS[slug]
    params = notebook_parameters(namespace)
    severity = incident_mod.parse_severity(params.get("severity") or None, rb.severity)
    started = incident_mod.parse_time(params.get("started_at") or None)
    incident_id = str(params.get("incident_id") or incident_mod.default_incident_id())
    window = int(params.get("window_minutes") or 60)
    if window <= 0:
        raise incident_mod.BadInput("window_minutes must be a positive number of minutes")
    clock = incident_mod.clock(incident_id, severity, started)
    reach.reset()  # count this run's calls only (a kernel may run more than one notebook)
    info = target()
    now = utcnow()
    evidence_class = Evidence
    lab_line = None
    if os.environ.get(interactive.INCIDENT_ENV) and not os.environ.get(EVIDENCE_PATH_ENV):
        evidence_class = interactive.InteractiveEvidence  # JupyterLab: ev.save() publishes a run
        interactive.install_capture()
        lab_line = interactive.interactive_banner_line()
    ev = evidence_class(
        runbook=slug,
        title=rb.title,
        incident={k: clock[k] for k in ("id", "severity", "started_at", "response_due_at", "escalation_due")}
        | {"escalation_steps": clock["escalation_steps"]},
        parameters=dict(params),
        target=info,
        apply=parse_apply(params.get("apply"), rb.steps),
        window_start=now - timedelta(minutes=window),
        window_end=now,
    )
    ev.parameters["apply"] = ev.apply
    ev.finishers.append(lambda e: reach.findings({f.code for f in e.findings}))
    ev.checkpoint()
    if show_banner:
        display(Banner(rb.title, info, clock, lab_line))
    return ev


def display(obj: Any) -> None:
    """IPython's display when in a kernel, print otherwise."""
    try:
        from IPython.display import display as ipy_display

        ipy_display(obj)
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(repr(obj))


def show(obj: Any, *, max_rows: int = 25) -> Any:
    """Display a DataFrame, dict or text with secrets and phone numbers masked; cells are shown whole."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(obj, pd.DataFrame):
        out = obj.head(max_rows).copy()
        for col in out.columns:
            if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
                out[col] = out[col].map(lambda v: redact(v) if v is not None else v)
        out.columns = [redact_text(str(c)) for c in out.columns]
        # Evidence whole: pandas cuts cells at 50 characters ("has reached a steady st..."); an ECS event,
        # a stopped reason or an error message is shown in full (the table wraps it).
        with pd.option_context("display.max_colwidth", None):
            display(out)
        if len(obj) > max_rows:
            display(f"... {len(obj) - max_rows} more rows")
        return None
    if isinstance(obj, (dict, list, tuple)):
        display(redact(obj))
        return None
    if isinstance(obj, str):
        display(_Text(redact_text(obj)))
        return None
    display(obj)
    return None


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
