"""Headless runs: papermill -> run folder with report.ipynb, report.html, evidence.json, SHA256SUMS.

The run is built in a hidden temporary folder beside its final place and
renamed into place at the end, so a run folder appears complete or not at all.
The report is written whatever happens to the notebook: a cell that raises, a
kernel that dies and a run past its time budget all give status ``error``
(exit 3) with the partial notebook and whatever evidence was collected.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops import __version__, run_context
from propflow_ops import incident as incident_mod
from propflow_ops.change import confirm as confirm_mod
from propflow_ops.change import runs as change_runs
from propflow_ops.findings import EVIDENCE_PATH_ENV, SCHEMA, Finding, FindingsTable, iso, jsonable, utcnow
from propflow_ops.incident import BadInput
from propflow_ops.kernels import WarmKernel, ipc_kernel_manager, kill_kernel
from propflow_ops.redact import redact, redact_text
from propflow_ops.remediation import parse_apply
from propflow_ops.runbooks import RUNBOOKS, Runbook

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
DEFAULT_BUDGET_S = 300
DEFAULT_CELL_TIMEOUT_S = 120
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
COMMON_PARAMETERS = ("incident_id", "severity", "started_at", "window_minutes", "apply")
#: JupyterLab's change-control parameters; headless, the options say the same
CHANGE_PARAMETERS = {"confirm": "--yes (or type the step name at the prompt)", "reason": "--reason TEXT",
                     "no_snapshot": "--no-snapshot", "force": "--force"}


@dataclass
class RunResult:
    path: Path
    status: str
    exit_code: int
    evidence: dict[str, Any]
    error: str | None = None


@dataclass
class RunRequest:
    slug: str
    incident: str | None = None
    severity: str | None = None
    started_at: str | None = None
    window: int | None = None
    apply: list[str] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)  # raw -p NAME VALUE pairs
    output_dir: str | None = None
    html: bool = True
    budget_s: float = DEFAULT_BUDGET_S
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S
    progress: bool | None = None
    announce: bool = False
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the kernel (the review's output dir)
    yes: bool = False  # change control (propflow_ops.change): --yes, --reason, --no-snapshot, --force
    reason: str | None = None
    no_snapshot: bool = False
    force: bool = False


# ---------------------------------------------------------------- parameters


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
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
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
            raise BadInput(f"unknown parameter {name!r} for {rb.slug}; it takes: {', '.join(sorted(declared))}")
        if name in CHANGE_PARAMETERS:
            raise BadInput(f"use {CHANGE_PARAMETERS[name]} for {name}, not -p (change control, see README Safety)")
        if name in COMMON_PARAMETERS:
            raise BadInput(f"use the --{ {'incident_id': 'incident', 'window_minutes': 'window'}.get(name, name)}"
                           f" option for {name}, not -p")
        value = coerce(name, raw, declared[name]["type"])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise BadInput(f"parameter {name} must not be negative, got {raw}")
        params[name] = value
    incident = req.incident or incident_mod.default_incident_id()
    if not _INCIDENT_ID.match(incident) or ".." in incident:
        raise BadInput(f"incident id may hold letters, digits, '.', '_' and '-' only (max 100), not {incident!r}")
    severity = incident_mod.parse_severity(req.severity, rb.severity)
    started = incident_mod.parse_time(req.started_at, name="--started-at")
    if req.window is not None and req.window <= 0:
        raise BadInput(f"--window must be a positive number of minutes, not {req.window}")
    apply = parse_apply(req.apply, rb.steps)
    params.update(
        incident_id=incident,
        severity=severity,
        started_at=iso(started),
        window_minutes=req.window if req.window is not None else declared.get("window_minutes", {}).get("default", 60),
        apply=apply,
    )
    missing = [n for n in COMMON_PARAMETERS if n not in declared]
    if missing:
        raise ValueError(f"{rb.notebook}: parameters cell lacks {', '.join(missing)}")
    return params


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Target URLs in the environment must at least parse (a typo should not become a 'fail')."""
    from urllib.parse import urlsplit

    env = os.environ if env is None else env
    for name in ("PROPFLOW_API_URL", "PROPFLOW_TWILIO_API_URL", "PROPFLOW_META_GRAPH_URL", "AWS_ENDPOINT_URL"):
        value = env.get(name)
        if not value:
            continue
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.netloc)
            _ = parts.port
        except ValueError:
            ok = False
        if not ok:
            raise BadInput(f"{name} is not an http(s) URL: {redact_text(value)!r}")
    for name in ("PROPFLOW_DATABASE_URL", "PROPFLOW_REDIS_URL"):
        value = env.get(name)
        if value and "://" not in value:
            raise BadInput(f"{name} is not a URL: {redact_text(value)!r}")
    cfg = env.get("PROPFLOW_ALEMBIC_CONFIG")
    if cfg and not (os.path.isfile(cfg) and os.access(cfg, os.R_OK)):
        raise BadInput(f"PROPFLOW_ALEMBIC_CONFIG names a file that cannot be read: {cfg}")


# ---------------------------------------------------------------- run folder


def output_root(output_dir: str | None) -> Path:
    return Path(output_dir or os.environ.get("PROPFLOW_OUTPUT_DIR") or "outputs")


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def publish(tmp: Path, parent: Path, name: str) -> Path:
    """Rename the finished temporary folder into place; a clash gets a suffix, never an overwrite."""
    for n in range(1, 1000):
        final = parent / (name if n == 1 else f"{name}-{n}")
        try:
            os.rename(tmp, final)  # fails on an existing non-empty directory: no overwrite
            return final
        except OSError:
            if not final.exists():
                raise
    raise RuntimeError(f"could not find a free run folder name for {name}")


def write_sums(folder: Path, names: Iterable[str]) -> None:
    lines = []
    for name in names:
        p = folder / name
        if p.exists():
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def verify_sums(folder: Path) -> dict[str, str]:
    """name -> ok | tampered | missing, for every file SHA256SUMS lists (and unlisted extra files)."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return {"SHA256SUMS": "missing"}
    result: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        p = folder / name
        if not p.exists():
            result[name] = "missing"
        else:
            result[name] = "ok" if hashlib.sha256(p.read_bytes()).hexdigest() == digest else "tampered"
    return result


# ---------------------------------------------------------------- execution


class _Watchdog:
    """Kills the kernel when the run passes its budget, so a hang still ends in a report."""

    def __init__(self, km: Any, budget_s: float) -> None:
        self.km = km
        self.fired = False
        self._timer = threading.Timer(budget_s, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        kill_kernel(self.km)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def execute(rb: Runbook, params: Mapping[str, Any], workdir: Path, req: RunRequest,
            kernel: WarmKernel | None = None) -> str | None:
    """Run the notebook into workdir/report.ipynb. Returns an error text, or None when it finished.

    With ``kernel`` (a warm one from a :class:`~propflow_ops.kernels.KernelPool`) the notebook runs in it
    after a reset; a run that does not finish cleanly spoils the kernel so the pool replaces it.
    """
    from jupyter_core.utils import run_sync

    out_nb = workdir / "report.ipynb"
    logging.getLogger("papermill").setLevel(logging.ERROR)
    kernel_env = {**req.env, EVIDENCE_PATH_ENV: str(workdir / "evidence.json")}
    ipc_dir = None
    saved: dict[str, str | None] = {}
    if kernel is not None:
        km = kernel.km
    else:
        km, ipc_dir = ipc_kernel_manager()
        saved = {k: os.environ.get(k) for k in kernel_env}
        os.environ.update(kernel_env)  # the kernel inherits it when it starts
    # papermill's progress bar on a terminal, but not from the pool's threads (their bars would interleave)
    progress = (kernel is None and sys.stderr.isatty()) if req.progress is None else req.progress
    watchdog = _Watchdog(km, req.budget_s)
    clean = False
    try:
        with watchdog:
            if kernel is not None:
                kernel.prepare(kernel_env)
            else:  # the kernel boots on the other core while this process imports papermill (about 1 s)
                run_sync(km.start_kernel)(cwd=str(rb.path.parent))
            import papermill as pm

            pm.execute_notebook(
                str(rb.path),
                str(out_nb),
                parameters=dict(params),
                kernel_name="python3",
                progress_bar=progress,
                request_save_on_cell_execute=True,
                execution_timeout=req.cell_timeout_s,
                start_timeout=60,
                cwd=str(rb.path.parent),
                km=km,
            )
        clean = not watchdog.fired
        return None
    except Exception as exc:  # noqa: BLE001 - whatever stopped the run, the report is still written
        from papermill.exceptions import PapermillExecutionError

        if isinstance(exc, PapermillExecutionError):
            return f"cell {exc.exec_count} raised {exc.ename}: {redact_text(str(exc.evalue))[:300]}"
        if watchdog.fired:
            return f"run passed its time budget of {req.budget_s:g} s; the kernel was stopped"
        name = type(exc).__name__
        return f"{name}: {redact_text(str(exc)).splitlines()[0][:300] if str(exc) else name}"
    finally:
        if kernel is not None:
            kernel.spoilt = kernel.spoilt or not clean
        else:
            _restore_env(saved)
            if ipc_dir:
                shutil.rmtree(ipc_dir, ignore_errors=True)
            km.close_clients()  # papermill leaves its client's channels open too
            if km.has_kernel:
                kill_kernel(km)  # papermill leaves a kernel it did not start running


def _restore_env(saved: Mapping[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def sanitize_notebook(path: Path, rb: Runbook, params: Mapping[str, Any], error: str | None) -> nbformat.NotebookNode:
    """Mask secrets everywhere in the executed notebook (sources and outputs); make sure it exists."""
    if path.exists():
        nb = nbformat.read(str(path), as_version=4)
    else:
        nb = nbformat.read(str(rb.path), as_version=4)
    for cell in nb.cells:
        cell.source = redact_text(cell.source)
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = "# Parameters\n" + "\n".join(f"{k} = {redact(v, k)!r}" for k, v in params.items())
        for out in cell.get("outputs", []):
            _sanitize_output(out)
    pm_meta = nb.metadata.get("papermill") or {}
    if "parameters" in pm_meta:
        pm_meta["parameters"] = redact(jsonable(dict(pm_meta["parameters"])))
    nb.metadata.setdefault("propflow_ops", {})
    nb.metadata["propflow_ops"].update({"runbook": rb.slug, "version": __version__, "error": error})
    return nb


def _sanitize_output(out: Any) -> None:
    if "text" in out:
        out["text"] = redact_text("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
    if "traceback" in out:
        out["traceback"] = [redact_text(t) for t in out["traceback"]]
    if "evalue" in out:
        out["evalue"] = redact_text(out["evalue"])
    data = out.get("data") or {}
    for mime in list(data):
        if mime.startswith("text/") or mime.endswith("json") or mime == "application/javascript":
            value = data[mime]
            if isinstance(value, str):
                data[mime] = redact_text(value)
            elif isinstance(value, list):
                data[mime] = redact_text("".join(value))
            else:
                data[mime] = redact(value)


def final_evidence(rb: Runbook, params: Mapping[str, Any], workdir: Path, error: str | None,
                   started: datetime, t0: float) -> dict[str, Any]:
    """evidence.json as the notebook left it, or rebuilt from what is known when it could not."""
    path = workdir / "evidence.json"
    ev: dict[str, Any] | None = None
    if path.exists():
        try:
            ev = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            ev = None
    if ev is None:
        sev = str(params["severity"])
        started_at = incident_mod.parse_time(str(params["started_at"]))
        clock = incident_mod.clock(str(params["incident_id"]), sev, started_at)
        ev = {
            "schema": SCHEMA,
            "runbook": rb.slug,
            "title": rb.title,
            "status": "error",
            "incident": {k: clock[k] for k in ("id", "severity", "started_at", "response_due_at",
                                                "escalation_due")},
            "run": {"target": {}},
            "parameters": redact(jsonable(dict(params))),
            "findings": [],
            "actions": [],
            "recommended_runbooks": [],
        }
    if error:
        ev["status"] = "error"
        ev["error"] = redact_text(error)
    elif ev.get("status") not in ("ok", "problems"):
        ev["status"] = "error"
        ev["error"] = "the notebook did not reach its summary"
    finished = utcnow()
    run = ev.setdefault("run", {})
    run.update({
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_s": round(time.monotonic() - t0, 3),
        "propflow_ops_version": __version__,
    })
    run.setdefault("target", {})
    return redact(ev)


def export_html(nb: nbformat.NotebookNode, evidence: Mapping[str, Any], dest: Path) -> None:
    """report.html: inputs hidden, the findings table first."""
    findings = [
        Finding(f["code"], f["status"], f.get("title", ""), f.get("detail", ""), f.get("data") or {})
        for f in evidence.get("findings", [])
    ]
    inc = evidence.get("incident", {})
    head = (
        f"<h2>{_h(evidence.get('title', ''))}: {_h(str(evidence.get('status', '')).upper())}</h2>"
        + change_runs.html_block(evidence) +
        f"<p>Incident {_h(inc.get('id'))}, {_h(inc.get('severity'))}, started {_h(inc.get('started_at'))};"
        f" response due {_h(inc.get('response_due_at'))}; escalation due: {_h(inc.get('escalation_due') or 'none')}."
        f" Run {_h(evidence.get('run', {}).get('started_at'))} ({_h(evidence.get('run', {}).get('duration_s'))} s).</p>"
    )
    head += run_context.html(dict(evidence))
    head += FindingsTable(findings, title="Findings")._repr_html_()
    if evidence.get("error"):
        head += f"<p style=\"color:#b71c1c\"><b>The runbook could not finish:</b> {_h(evidence['error'])}</p>"
    if evidence.get("recommended_runbooks"):
        reasons = evidence.get("recommendation_reasons") or {}
        items = "".join(f"<li><b>{_h(s)}</b>: {_h(reasons.get(s, ''))}</li>" for s in evidence["recommended_runbooks"])
        head += f"<p>Recommended runbooks:</p><ol>{items}</ol>"
    if evidence.get("actions"):
        rows = "".join(
            f"<tr><td>{_h(a.get('step'))}</td><td>{_h(a.get('mode'))}</td><td><code>{_h(a.get('command'))}</code></td>"
            f"<td>{_h(a.get('detail'))}</td></tr>"
            for a in evidence["actions"]
        )
        head += f"<h3>Remediation</h3><table><tr><th>step</th><th>mode</th><th>command</th><th>detail</th></tr>{rows}</table>"
    from propflow_ops.report_html import render

    body = render(nb, redact_text(head), f"{evidence.get('title', '')}: {inc.get('id', '')}")
    dest.write_text(body, encoding="utf-8")


def _h(value: Any) -> str:
    import html

    return html.escape("" if value is None else str(value))


def run(req: RunRequest, kernel: WarmKernel | None = None) -> RunResult:
    """Validate, execute, and publish one run. BadInput before anything is written.

    ``kernel``: a warm kernel to run in (see :mod:`propflow_ops.kernels`); None starts a fresh one."""
    if req.slug not in RUNBOOKS:
        raise BadInput(f"unknown runbook {req.slug!r}; known: {', '.join(RUNBOOKS)}")
    rb = RUNBOOKS[req.slug]
    if not rb.path.exists():
        raise BadInput(f"runbook {rb.slug!r} has no notebook at {rb.path}")
    if req.budget_s <= 0:
        raise BadInput("the time budget must be positive")
    req = run_context.prepare(req, rb)  # the team configuration (propflow-ops.toml), under options and env
    params = build_parameters(rb, req)
    check_environment({**os.environ, **req.env})
    root = output_root(req.output_dir)
    parent = root / str(params["incident_id"])
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create the output folder {parent}: {exc.strerror}") from None
    ctx = run_context.begin(req, rb, params, root)  # open or join the incident record
    started = utcnow()
    t0 = time.monotonic()
    name = f"{_stamp(started)}-{rb.slug}"
    workdir = parent / f".tmp-{name}-{os.getpid()}-{threading.get_ident()}"
    change_env = change_runs.preflight(  # confirm / reason before anything runs (BadInput: exit 2)
        list(params["apply"]), str(params["incident_id"]), {**os.environ, **req.env}, yes=req.yes,
        reason=req.reason, no_snapshot=req.no_snapshot, force=req.force, record_root=str(root),
        workdir_hint=workdir / ".confirm", stdin_tty=None if req.announce else False)
    req = replace(req, env={**req.env, **change_env})
    if req.announce:
        print(f"propflow-ops: running {rb.slug} for incident {params['incident_id']}...", file=sys.stderr, flush=True)
    workdir.mkdir()
    try:
        with confirm_mod.terminal_prompts(change_runs.prompt_dir(change_env)):
            error = execute(rb, params, workdir, req, kernel)
        nb = sanitize_notebook(workdir / "report.ipynb", rb, params, error)
        evidence = run_context.annotate(ctx, final_evidence(rb, params, workdir, error, started, t0))
        nbformat.write(nb, str(workdir / "report.ipynb"))
        names = ["report.ipynb", "evidence.json"]
        if req.html:
            try:
                export_html(nb, evidence, workdir / "report.html")
                names.insert(1, "report.html")
            except Exception as exc:  # noqa: BLE001 - the HTML is a convenience; the evidence must survive
                evidence.setdefault("warnings", []).append(f"HTML export failed: {type(exc).__name__}: {exc}")
        (workdir / "evidence.json").write_text(json.dumps(evidence, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(workdir / ".confirm", ignore_errors=True)
        extra = sorted(p.name for p in workdir.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name not in names)
        write_sums(workdir, names + extra)  # files a notebook wrote beside its report (postmortem.md)
        final = publish(workdir, parent, name)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    run_context.finish(ctx, final, evidence)
    status = evidence["status"]
    code = change_runs.exit_code(evidence, {"ok": EXIT_OK, "problems": EXIT_PROBLEMS}.get(status, EXIT_ERROR))
    return RunResult(final, status, code, evidence, error)
