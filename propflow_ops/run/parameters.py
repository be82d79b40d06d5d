"""A run's parameters: the notebook's parameters cell, the -p values checked and typed against it, and the
common options (incident, severity, start, window, apply) as papermill injects them. BadInput (exit 2)
before anything runs."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops import incident as incident_mod
from propflow_ops import inputs
from propflow_ops.findings import iso
from propflow_ops.incident import BadInput
from propflow_ops.remediation import parse_apply
from propflow_ops.run.request import RunRequest
from propflow_ops.runbooks import Runbook

COMMON_PARAMETERS = ("incident_id", "severity", "started_at", "window_minutes", "apply")
#: JupyterLab's change-control parameters; headless, the options say the same
CHANGE_PARAMETERS = {
    "confirm": "--yes (or type the step name at the prompt)",
    "reason": "--reason TEXT",
    "no_snapshot": "--no-snapshot",
    "force": "--force",
}


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters cell: name -> {type, default, help}."""
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    out: dict[str, dict[str, Any]] = {}
    src = cells[0].source
    lines = src.splitlines()
    for node in ast.parse(src).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, ann, value = node.target.id, ast.unparse(node.annotation), node.value
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            name, ann, value = node.targets[0].id, "", node.value
        else:
            continue
        try:
            default = ast.literal_eval(value) if value is not None else None
        except ValueError:
            default = None
        line = lines[node.lineno - 1]
        help_text = line.split("#", 1)[1].strip() if "#" in line else ""
        out[name] = {"type": ann or type(default).__name__, "default": default, "help": help_text}
    return out


def coerce(name: str, raw: str, declared: str) -> Any:
    """A -p value as the type the parameters cell declares; BadInput when it is not one."""
    t = declared.replace(" ", "")
    try:
        if t == "int":
            return int(raw)
        if t == "float":
            return float(raw)
        if t == "bool":
            low = raw.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if t.startswith("list") or t.startswith("str|list") or t.startswith("list|str"):
            text = raw.strip()
            if text.startswith("["):
                value = ast.literal_eval(text)
                if not isinstance(value, list):
                    raise ValueError(raw)
                return value
            return [p.strip() for p in text.split(",") if p.strip()]
        if t.startswith("dict"):
            value = ast.literal_eval(raw)
            if not isinstance(value, dict):
                raise ValueError(raw)
            return value
    except (ValueError, SyntaxError):
        raise BadInput(f"parameter {name} must be {declared}, not {raw!r}") from None
    return raw


def build_parameters(rb: Runbook, req: RunRequest) -> dict[str, Any]:
    """Validate the request against the notebook's parameters cell; everything papermill injects."""
    declared = notebook_parameters(rb.path)
    params: dict[str, Any] = {}
    for name, raw in req.params:
        if name not in declared:
            raise BadInput(
                f"unknown parameter {name!r} for {rb.slug}; it takes: {', '.join(sorted(declared))}"
            )
        if name in CHANGE_PARAMETERS:
            raise BadInput(
                f"use {CHANGE_PARAMETERS[name]} for {name}, not -p (change control, see README Safety)"
            )
        if name in COMMON_PARAMETERS:
            raise BadInput(
                f"use the --{ {'incident_id': 'incident', 'window_minutes': 'window'}.get(name, name) }"
                f" option for {name}, not -p"
            )
        inputs.check_text(f"parameter {name}", raw, multiline=inputs.multiline_parameter(name))
        value = coerce(name, raw, declared[name]["type"])
        inputs.check_parameter(name, value)
        if name == "log_mapping" and value:  # a bad mapping is bad input: one line, exit 2, before any run
            from propflow_ops.sources.logmapping import mapping_from_dict

            mapping_from_dict(value)
        if isinstance(value, str) and value and (name == "output_dir" or name.endswith("_dir")):
            value = str(inputs.resolve_output_dir(value))  # the kernel's working directory is notebooks/
        params[name] = value
    incident = inputs.check_incident_id(req.incident or incident_mod.default_incident_id())
    if req.severity is not None:
        inputs.check_text("--severity", req.severity)
    severity = incident_mod.parse_severity(req.severity, rb.severity)
    started = inputs.check_started_at(req.started_at, name="--started-at", max_past=inputs.max_past(rb.slug))
    if req.window is not None:
        inputs.check_number("--window", req.window, inputs.NUMBER_RULES["window_minutes"])
    for item in req.apply:
        inputs.check_text("--apply", item)
    apply = parse_apply(req.apply, rb.steps)
    params.update(
        incident_id=incident,
        severity=severity,
        started_at=iso(started),
        window_minutes=req.window
        if req.window is not None
        else declared.get("window_minutes", {}).get("default", 60),
        apply=apply,
    )
    missing = [n for n in COMMON_PARAMETERS if n not in declared]
    if missing:
        raise ValueError(f"{rb.notebook}: parameters cell lacks {', '.join(missing)}")
    return params


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Every target URL in the environment (see :func:`propflow_ops.inputs.check_environment`)."""
    inputs.check_environment(env)
