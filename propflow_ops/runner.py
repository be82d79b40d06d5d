"""Headless runs: papermill -> run folder with report.ipynb, report.html, evidence.json, SHA256SUMS.

The notebook executes in a private temporary folder (mode 0700, under the system's temporary directory,
never under the output folder): the raw executed notebook holds unmasked values (an injected ``ws_token``)
and is deleted on every exit path (Ctrl-C and SIGTERM included; a SIGKILL leaves it only there, and the
next run sweeps it). Only masked files are written under the output folder: into a hidden ``.tmp-...``
folder beside the final place, renamed into place at the end, so a run folder appears complete or not at
all. A disk that is full or read-only while publishing is :class:`PublishError` (exit 3, one line),
with the temporaries removed.
The report is written whatever happens to the notebook: a cell that raises, a
kernel that dies and a run past its time budget all give status ``error``
(exit 3) with the partial notebook and whatever evidence was collected.
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops import __version__, inputs, run_context
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
_INCIDENT_ID = inputs.INCIDENT_ID
COMMON_PARAMETERS = ("incident_id", "severity", "started_at", "window_minutes", "apply")
#: JupyterLab's change-control parameters; headless, the options say the same
CHANGE_PARAMETERS = {"confirm": "--yes (or type the step name at the prompt)", "reason": "--reason TEXT",
                     "no_snapshot": "--no-snapshot", "force": "--force"}


class PublishError(Exception):
    """The report could not be written under the output folder (disk full, read-only...): exit 3."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) while a run executes: the same clean-up path as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
        window_minutes=req.window if req.window is not None else declared.get("window_minutes", {}).get("default", 60),
        apply=apply,
    )
    missing = [n for n in COMMON_PARAMETERS if n not in declared]
    if missing:
        raise ValueError(f"{rb.notebook}: parameters cell lacks {', '.join(missing)}")
    return params


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Every target URL in the environment (see :func:`propflow_ops.inputs.check_environment`)."""
    inputs.check_environment(env)


# ---------------------------------------------------------------- run folder


def output_root(output_dir: str | None) -> Path:
    """The output folder, absolute against the caller's working directory (the kernel runs elsewhere)."""
    return inputs.resolve_output_dir(output_dir)


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
            stopping = sys.exc_info()[0]
            if stopping is not None and not issubclass(stopping, Exception):  # Ctrl-C, SIGTERM, SIGHUP
                # the process is on its way out: the kernel client's own threads, whose sockets are closed
                # under them, must not print their tracebacks over the one line that says why we stopped
                threading.excepthook = lambda _args: None
            km.close_clients()  # papermill leaves its client's channels open too
            if km.has_kernel:
                kill_kernel(km)  # papermill leaves a kernel it did not start running
            if ipc_dir:  # last: a client's heartbeat thread still using its socket would raise and print
                shutil.rmtree(ipc_dir, ignore_errors=True)


def _restore_env(saved: Mapping[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def sanitize_notebook(path: Path, rb: Runbook, params: Mapping[str, Any], error: str | None) -> nbformat.NotebookNode:
    """Mask secrets everywhere in the executed notebook (sources and outputs); make sure it exists."""
    nb = None
    if path.exists():
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # noqa: BLE001 - a truncated notebook (full temporary disk): keep the runbook's
            error = (error + "; " if error else "") + f"the executed notebook could not be read: {type(exc).__name__}"
    if nb is None:
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
        out["traceback"] = [_redact_coloured(t) for t in out["traceback"]]
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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _redact_coloured(text: str) -> str:
    """A traceback line with terminal colours: masked with its colours, unless a colour code splits a
    secret (then the colours go, the secret never shows)."""
    masked = redact_text(text)
    plain_masked = redact_text(_ANSI.sub("", text))
    return masked if _ANSI.sub("", masked) == plain_masked else plain_masked


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
    dest.write_text(html_report(nb, evidence), encoding="utf-8")


def html_report(nb: nbformat.NotebookNode, evidence: Mapping[str, Any]) -> str:
    """The text of report.html (masked)."""
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
            f"<tr><td>{_h(a.get('step'))}</td><td>{_h(a.get('mode'))}</td>"
            # <pre>: a command's line breaks (two commands, a quoted newline) survive a copy from the page
            f"<td><pre style=\"margin:0;white-space:pre-wrap\">{_h(a.get('command'))}</pre></td>"
            f"<td>{_h(a.get('detail'))}</td></tr>"
            for a in evidence["actions"]
        )
        head += f"<h3>Remediation</h3><table><tr><th>step</th><th>mode</th><th>command</th><th>detail</th></tr>{rows}</table>"
    from propflow_ops.report_html import render

    return redact_text(render(nb, redact_text(head), f"{evidence.get('title', '')}: {inc.get('id', '')}"))


def _h(value: Any) -> str:
    import html

    return html.escape("" if value is None else str(value))


# ---------------------------------------------------------------- temporaries

PRIVATE_PREFIX = "propflow-ops-"
STALE_AFTER_S = 25 * 3600  # longer than the longest budget: a temporary this old belongs to no live run
# .tmp-<stamp>-<slug>-<host>-<pid>-<thread> (older versions: without <host>)
_STAGING = re.compile(r"^\.tmp-.*?(?:-(?P<host>[0-9a-f]{8}))?-(?P<pid>\d+)-(?P<tid>\d+)$")
_PRIVATE = re.compile(r"^run-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-")


def _host_tag() -> str:
    """Eight hex digits naming this machine (and container): a pid means something only on its own host."""
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def private_root() -> Path:
    """``$TMPDIR/propflow-ops-<uid>``: ours alone (mode 0700, not a symlink, owned by us)."""
    root = Path(tempfile.gettempdir()) / f"{PRIVATE_PREFIX}{os.getuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(root)
    import stat as stat_mod

    if not stat_mod.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PublishError(f"{root} is not a private directory of this user; remove it")
    if stat_mod.S_IMODE(st.st_mode) != 0o700:
        os.chmod(root, 0o700)
    return root


def private_workdir() -> Path:
    """A fresh private folder (0700) for one run's raw notebook and evidence: named after our pid."""
    return Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-{_host_tag()}-", dir=private_root()))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, pid: int | None) -> bool:
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    return pid is not None and pid != os.getpid() and not _pid_alive(pid)


def sweep_temporaries(root: Path | None = None) -> list[Path]:
    """Remove what dead runs left: private folders whose owning pid is dead, and ``.tmp-*`` folders under
    the output folder (``root`` and its incident folders) whose pid is dead or that are older than a day.
    A live run's temporaries are kept. Returns what was removed."""
    removed: list[Path] = []
    candidates: list[tuple[Path, int | None]] = []  # pid None: judged by age alone (another host's, unnamed)
    host = _host_tag()
    with _suppress_os():
        base = Path(tempfile.gettempdir()) / f"{PRIVATE_PREFIX}{os.getuid()}"
        if base.is_dir() and not base.is_symlink():
            for p in base.iterdir():
                m = _PRIVATE.match(p.name)
                ours = m is not None and m.group("host") == host
                candidates.append((p, int(m.group("pid")) if m and ours else None))
    if root is not None:
        with _suppress_os():
            dirs = [root] + [d for d in root.iterdir() if d.is_dir() and not d.is_symlink()] if root.is_dir() else []
            for d in dirs:
                with _suppress_os():
                    for p in d.glob(".tmp-*"):
                        m = _STAGING.match(p.name)
                        ours = m is not None and m.group("host") in (None, host)
                        candidates.append((p, int(m.group("pid")) if m and ours else None))
    for path, pid in candidates:
        if _stale(path, pid):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with _suppress_os():
                    path.unlink()
            if not path.exists():
                removed.append(path)
    return removed


class _suppress_os:  # noqa: N801 - a tiny context manager, used like contextlib.suppress(OSError)
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


class _TerminateAsInterrupt:
    """On the main thread, SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt): the run
    takes the same clean-up path as Ctrl-C. A second signal during the clean-up is ignored."""

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.fired = False

    def _handler(self, signum: int, _frame: object) -> None:
        if self.fired:
            return
        self.fired = True
        raise Terminated(signum)

    def __enter__(self) -> _TerminateAsInterrupt:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:  # nohup: the caller asked us to ignore it
                continue
            self.previous[sig] = current
            signal.signal(sig, self._handler)
        return self

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __exit__(self, *exc: object) -> None:
        self.restore()


_PATH_ERRNOS = (errno.ENOTDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP)


def _disk_error(where: Path, exc: OSError) -> PublishError:
    reason = exc.strerror or type(exc).__name__
    return PublishError(f"cannot write the report under {where}: {reason}")


def _make_parent(parent: Path) -> list[Path]:
    """Create the incident folder (and missing parents); returns the folders created, deepest last."""
    created: list[Path] = []
    missing = [p for p in [parent, *parent.parents] if not p.exists()]
    try:
        for p in reversed(missing):
            try:
                p.mkdir()
                created.append(p)
            except FileExistsError:  # another run made it meanwhile (or a file is in the way)
                if not p.is_dir():
                    raise BadInput(f"the output folder {p} is not a directory") from None
    except OSError as exc:
        _remove_empty(created)
        if exc.errno in _PATH_ERRNOS:
            raise BadInput(f"cannot create the output folder {parent}: {exc.strerror}") from None
        raise _disk_error(parent, exc) from None
    return created


def _remove_empty(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def _publishable_files(nb: nbformat.NotebookNode, evidence: dict[str, Any], private: Path, html: bool,
                       ) -> tuple[dict[str, bytes], list[str]]:
    """Every file of the run folder, masked, in memory (so a full disk cannot leave half a report)."""
    files: dict[str, bytes] = {"report.ipynb": nbformat.writes(nb).encode("utf-8")}
    names = ["report.ipynb", "evidence.json"]
    if html:
        try:
            files["report.html"] = html_report(nb, evidence).encode("utf-8")
            names.insert(1, "report.html")
        except Exception as exc:  # noqa: BLE001 - the HTML is a convenience; the evidence must survive
            evidence.setdefault("warnings", []).append(
                redact_text(f"HTML export failed: {type(exc).__name__}: {exc}"))
    files["evidence.json"] = (json.dumps(evidence, indent=2) + "\n").encode("utf-8")
    for p in sorted(private.iterdir()):  # files a notebook wrote beside its report (postmortem.md)
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.name not in files:
            data = p.read_bytes()
            try:
                data = redact_text(data.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                pass
            files[p.name] = data
            names.append(p.name)
    return files, names


def _write_staging(staging: Path, files: Mapping[str, bytes], names: list[str]) -> None:
    for name, data in files.items():
        with open(staging / name, "xb") as fh:
            fh.write(data)
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in names if n in files)
    with open(staging / "SHA256SUMS", "xb") as fh:
        fh.write(sums.encode("utf-8"))


def run(req: RunRequest, kernel: WarmKernel | None = None) -> RunResult:
    """Validate, execute, and publish one run. BadInput before anything is written; PublishError when the
    output folder cannot take the report (nothing half-written is left).

    ``kernel``: a warm kernel to run in (see :mod:`propflow_ops.kernels`); None starts a fresh one."""
    if req.slug not in RUNBOOKS:
        raise BadInput(f"unknown runbook {redact_text(req.slug)!r}; known: {', '.join(RUNBOOKS)}")
    rb = RUNBOOKS[req.slug]
    if not rb.path.exists():
        raise BadInput(f"runbook {rb.slug!r} has no notebook at {rb.path}")
    req = run_context.prepare(req, rb)  # the team configuration (propflow-ops.toml), under options and env
    inputs.check_budget(req.budget_s)
    inputs.check_number("--cell-timeout", req.cell_timeout_s, inputs.SECONDS)
    params = build_parameters(rb, req)
    check_environment({**os.environ, **req.env})
    root = output_root(req.output_dir)
    change_env = change_runs.preflight(  # reason and confirmation before anything runs (BadInput: exit 2)
        list(params["apply"]), str(params["incident_id"]), {**os.environ, **req.env}, yes=req.yes,
        reason=req.reason, no_snapshot=req.no_snapshot, force=req.force, record_root=str(root),
        stdin_tty=None if req.announce else False)
    if change_env:  # a step's cell may wait for the engineer's answer, then for its snapshot and verification
        req = dataclasses.replace(req, cell_timeout_s=max(req.cell_timeout_s, change_runs.APPLY_CELL_TIMEOUT_S))
    if req.announce:
        print(f"propflow-ops: running {rb.slug} for incident {params['incident_id']}...", file=sys.stderr, flush=True)
    sweep_temporaries(root)
    parent = root / str(params["incident_id"])
    started = utcnow()
    t0 = time.monotonic()
    name = f"{_stamp(started)}-{rb.slug}"
    with _TerminateAsInterrupt() as term:
        created = _make_parent(parent)
        staging = parent / f".tmp-{name}-{_host_tag()}-{os.getpid()}-{threading.get_ident()}"
        published = False
        private: Path | None = None
        try:
            try:
                staging.mkdir()  # early: a read-only or full output folder is found before the run, not after
            except OSError as exc:
                raise _disk_error(parent, exc) from None
            try:
                ctx = run_context.begin(req, rb, params, root)  # open or join the incident record
            except OSError as exc:
                raise _disk_error(parent, exc) from None
            try:
                private = private_workdir()
            except OSError as exc:
                raise PublishError(f"cannot create a private temporary folder under {tempfile.gettempdir()}: "
                                   f"{exc.strerror or type(exc).__name__}") from None
            change_env = change_runs.bind_prompt(change_env, private / "confirm")  # the terminal's channel
            req_env = {"PROPFLOW_OUTPUT_DIR": str(root), **req.env, **change_env}
            with confirm_mod.terminal_prompts(change_runs.prompt_dir(change_env)):
                error = execute(rb, params, private, dataclasses.replace(req, env=req_env), kernel)
            nb = sanitize_notebook(private / "report.ipynb", rb, params, error)
            evidence = run_context.annotate(ctx, final_evidence(rb, params, private, error, started, t0))
            files, names = _publishable_files(nb, evidence, private, req.html)
            try:
                _write_staging(staging, files, names)
                final = publish(staging, parent, name)
            except OSError as exc:
                raise _disk_error(parent, exc) from None
            published = True
        finally:
            term.fired = True  # a SIGTERM from here on does not interrupt the clean-up
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            if not published:
                shutil.rmtree(staging, ignore_errors=True)
                _remove_empty(created)
    run_context.finish(ctx, final, evidence)
    status = evidence["status"]
    code = change_runs.exit_code(evidence, {"ok": EXIT_OK, "problems": EXIT_PROBLEMS}.get(status, EXIT_ERROR))
    return RunResult(final, status, code, evidence, error)
