"""Interactive runs: the engineer's JupyterLab session is part of the incident.

``propflow-ops lab SLUG --incident ID`` works on *working copies* of the runbooks, never on ``notebooks/``:

- **Where.** ``<output-dir>/<incident>/.lab/<user>/<notebook>``: beside the incident's runs and record, so
  the working copy outlives a closed tab or a crashed laptop and the team finds it; one folder per engineer, so
  two people on one incident never save over each other; the leading dot keeps it out of everything that
  reads run folders (the review, ``latest_incident``, the sweep of temporaries).
  JupyterLab's root is that folder: its file browser offers a working copy of every runbook, and nothing
  outside it can be opened or saved.
- **Parameters.** Each session rewrites the parameters cell of every copy from the incident record
  (severity, start: the clock) and the team configuration (environment, resource names, thresholds), exactly
  what a headless run would inject; ``apply`` (and ``confirm``) start empty in every session, so reopening a
  copy never re-applies a step. The cells and their outputs are otherwise kept.
- **Nothing unmasked on disk.** The Jupyter server runs :func:`pre_save_hook` on every save (File > Save,
  autosave, a checkpoint): cell sources and outputs are masked with :mod:`propflow_ops.redact` (the runner's
  own masking) before a byte is written. Autosave is therefore on: it can only write the masked copy.
- **Saving publishes.** In the kernel, :func:`propflow_ops.notebook.begin` returns an :class:`InteractiveEvidence`
  and installs a :class:`Capture` of what the kernel sends the browser (per cell, by JupyterLab's cell id).
  ``ev.save()`` (the runbook's last cell) publishes a run exactly as the headless runner does
  (:func:`publish_interactive`: :mod:`propflow_ops.run`'s ``sanitize_notebook``, ``final_evidence``, ``run_context.annotate``,
  ``publishable_files``, ``write_staging`` and ``publish``) with ``run.mode`` ``interactive``: a new run folder
  every time, never an overwrite, and a ``run`` event in the incident record.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import os
import re
import shutil
import sys
import threading
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops.findings import Evidence, FindingsTable, iso, utcnow, write_json_atomic
from propflow_ops.redact import redact_text
from propflow_ops.runbooks import RUNBOOKS, Runbook

LAB_DIR = ".lab"
MODE = "interactive"
INCIDENT_ENV = (
    "PROPFLOW_LAB_INCIDENT"  # set in the lab's kernels: this is an interactive run of that incident
)
WORKDIR_ENV = "PROPFLOW_LAB_WORKDIR"  # the working copies' folder (JupyterLab's root)
RESET_EACH_SESSION = ("apply", "confirm")  # never carried from one session to the next


def working_dir(root: Path, incident: str, user: str | None = None) -> Path:
    """``<root>/<incident>/.lab/<user>``: one folder per engineer, so two people working the same incident
    (a shared output folder) never save over each other's copy."""
    from propflow_ops.operator import local_user

    name = re.sub(r"[^A-Za-z0-9._-]", "_", user or local_user()).lstrip(".") or "unknown"
    return root / incident / LAB_DIR / name


# ---------------------------------------------------------------- the parameters cell


def parameters_cell(nb: nbformat.NotebookNode) -> Any:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def fill_parameters(source: str, values: Mapping[str, Any]) -> str:
    """The parameters cell with each declared name's value replaced (annotation and comment kept)."""
    lines = source.splitlines()
    edits: list[tuple[int, int, int, str]] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            name, value = node.targets[0].id, node.value
        else:
            continue
        if name not in values or value.lineno != value.end_lineno or value.end_col_offset is None:
            continue
        edits.append((value.lineno - 1, value.col_offset, value.end_col_offset, repr(values[name])))
    for row, start, end, text in sorted(edits, reverse=True):
        line = lines[row].encode("utf-8")  # ast offsets are in UTF-8 bytes
        lines[row] = (line[:start] + text.encode("utf-8") + line[end:]).decode("utf-8")
    return "\n".join(lines)


# ---------------------------------------------------------------- the lab side: working copies


@dataclass
class LabSession:
    incident: str
    root: Path  # the output folder
    workdir: Path  # the working copies (JupyterLab's root)
    kernel_env: dict[str, str]  # what the kernels need on top of the lab's environment
    copies: dict[str, Path] = field(default_factory=dict)
    opened: bool = False  # this session opened the incident record


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` as the kernels will see it, while the copies are prepared: a few milliseconds of reading
    the configuration and the notebooks, no network call (the sandbox's threads do not read it meanwhile)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prepare(
    slug: str | None,
    incident: str | None,
    env: Mapping[str, str],
    *,
    output_dir: str | None = None,
    severity: str | None = None,
    started_at: str | None = None,
) -> LabSession:
    """Open or join the incident record and write (or refresh) the working copy of every runbook.

    ``env`` is the environment JupyterLab's kernels get (the sandbox's, or the engineer's with ``--config``/
    ``--env``): the team configuration and the output folder are read from it, as a kernel would. BadInput
    (one line, exit 2) on a bad incident id, severity, start or configuration, before anything is written."""
    from propflow_ops import incident as incident_mod
    from propflow_ops import incident_record as ir
    from propflow_ops import inputs, run_context
    from propflow_ops import operator as operator_mod
    from propflow_ops.incident import parse_time
    from propflow_ops.run.folder import output_root
    from propflow_ops.run.parameters import build_parameters
    from propflow_ops.run.request import RunRequest

    with _environ(env):
        incident = inputs.check_incident_id(incident or incident_mod.default_incident_id())
        root = output_root(output_dir)
        first = RUNBOOKS[slug] if slug in RUNBOOKS else RUNBOOKS["triage"]
        order = [first] + [rb for rb in RUNBOOKS.values() if rb is not first]
        prepared: list[tuple[Runbook, dict[str, Any], dict[str, str]]] = []
        for rb in order:  # everything validated before anything is written
            req = run_context.prepare(
                RunRequest(
                    slug=rb.slug,
                    incident=incident,
                    severity=severity,
                    started_at=started_at,
                    output_dir=str(root),
                ),
                rb,
            )
            prepared.append((rb, build_parameters(rb, req), dict(req.env)))
    _, params0, config_env = prepared[0]
    store = ir.LocalStore(root)  # no network inside the swap above; STS is asked with the kernels' env
    state, written = ir.open_or_join(
        store,
        incident,
        severity=str(params0["severity"]),
        started_at=parse_time(str(params0["started_at"])),
        severity_given=severity is not None,
        started_given=started_at is not None,
        by=lambda: operator_mod.current(env),
        via=f"lab {first.slug}",
    )
    workdir = working_dir(root, incident)
    workdir.mkdir(parents=True, exist_ok=True)
    session = LabSession(incident, root, workdir, {}, opened=any(e.get("event") == "opened" for e in written))
    for rb, params, _ in prepared:
        if rb.slug == "post-incident":  # the lab's review reviews this incident, not the latest one
            params["review_incident"] = incident
        params["severity"] = state.severity or params["severity"]
        if state.started_at is not None:
            params["started_at"] = iso(state.started_at)
        session.copies[rb.slug] = write_working_copy(rb, workdir, params)
    session.kernel_env = {
        **config_env,
        "PROPFLOW_OUTPUT_DIR": str(root),
        INCIDENT_ENV: incident,
        WORKDIR_ENV: str(workdir),
    }
    return session


def write_working_copy(rb: Runbook, workdir: Path, params: Mapping[str, Any]) -> Path:
    """The runbook's working copy with its parameters cell filled; an existing copy keeps its cells."""
    dest = workdir / rb.notebook
    nb = None
    if dest.exists():
        with contextlib.suppress(Exception):  # an unreadable copy is replaced by a fresh one
            nb = nbformat.read(str(dest), as_version=4)
            parameters_cell(nb)
    if nb is None:
        nb = nbformat.read(str(rb.path), as_version=4)
    values = {**params, **{k: [] if k == "apply" else "" for k in RESET_EACH_SESSION}}
    cell = parameters_cell(nb)
    cell.source = fill_parameters(cell.source, values)
    nb.metadata.setdefault("propflow_ops", {}).update(
        {
            "runbook": rb.slug,
            "incident": params.get("incident_id"),
            "working_copy": True,
            "template": rb.notebook,
            "prepared_at": iso(utcnow()),
        }
    )
    mask_notebook(nb)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, dest)
    return dest


# ---------------------------------------------------------------- the server side: masked saves


def mask_code(source: str) -> str:
    """A code cell's source masked so that it still runs: every string literal and comment is masked
    (a URL with its password, a token pasted between quotes), and every line that is not Python
    (``%env``, ``!aws ...``) or that Python cannot read is masked whole. Masking the whole source
    would turn ``ws_token: str = ...`` into ``ws_token: ***``: a working copy that no longer runs."""
    masked_lines = [
        redact_text(line) if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    ]
    text = "\n".join(masked_lines)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return redact_text(text)
    if any(tok.type == tokenize.ERRORTOKEN and tok.string.strip() for tok in tokens):
        return redact_text(text)  # an unterminated string: Python cannot read it, mask it whole
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    out, pos = [], 0
    for tok in tokens:
        if tok.type not in (tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1)):
            continue
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        out.append(text[pos:start])
        out.append(redact_text(text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_notebook(nb: Any) -> Any:
    """Mask every cell in place: outputs as the runner masks report.ipynb, code so that it still runs
    (:func:`mask_code`), markdown and raw cells whole."""
    from propflow_ops.run.mask import sanitize_output

    for cell in nb.get("cells", []) if isinstance(nb, Mapping) else nb.cells:
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        cell["source"] = mask_code(src) if cell.get("cell_type") == "code" else redact_text(src)
        for out in cell.get("outputs", []) or []:
            sanitize_output(out)
    return nb


def pre_save_hook(model: dict[str, Any], path: str = "", contents_manager: Any = None, **_: Any) -> None:
    """Jupyter's ``ContentsManager.pre_save_hook``: nothing reaches the disk unmasked (notebooks and text files)."""
    kind = model.get("type")
    if kind == "notebook" and isinstance(model.get("content"), Mapping):
        mask_notebook(model["content"])
    elif kind == "file" and model.get("format") == "text" and isinstance(model.get("content"), str):
        model["content"] = redact_text(model["content"])


# ---------------------------------------------------------------- the kernel side: what the browser was sent


@dataclass
class _Execution:
    msg_id: str
    cell_id: str | None
    code: str
    count: int | None
    outputs: list[Any] = field(default_factory=list)


class Capture:
    """What this kernel sent to the browser, per executed cell: the outputs of an interactive run."""

    def __init__(self) -> None:
        self.runs: dict[str, _Execution] = {}
        self._lock = threading.Lock()

    def start(self, msg_id: str, cell_id: str | None, code: str, count: int | None) -> None:
        with self._lock:
            self.runs.setdefault(msg_id, _Execution(msg_id, cell_id, code, count))

    def observe(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        parent_id: str | None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        if not parent_id:
            return
        if msg_type == "execute_input":
            meta = (request or {}).get("metadata") or {}
            self.start(
                parent_id, meta.get("cellId"), str(content.get("code", "")), content.get("execution_count")
            )
            return
        with self._lock:
            run = self.runs.get(parent_id)
            if run is None:
                return
            if msg_type == "clear_output":
                run.outputs.clear()
            elif msg_type in ("stream", "display_data", "execute_result", "error"):
                out = nbformat.v4.output_from_msg(
                    {"header": {"msg_type": msg_type}, "content": copy.deepcopy(dict(content))}
                )
                last = run.outputs[-1] if run.outputs else None
                if (
                    msg_type == "stream"
                    and last is not None
                    and last.get("output_type") == "stream"
                    and last.get("name") == out.get("name")
                ):
                    last["text"] += out["text"]
                else:
                    run.outputs.append(out)

    def latest_by_cell(self) -> tuple[dict[str, _Execution], list[_Execution]]:
        """The last execution of each cell (by JupyterLab's cell id), and executions of cells without an id."""
        with self._lock:
            by_cell: dict[str, _Execution] = {}
            loose: list[_Execution] = []
            for run in self.runs.values():
                if run.cell_id:
                    by_cell[run.cell_id] = run
                else:
                    loose.append(run)
            return by_cell, loose


_CAPTURE: Capture | None = None


def _parent_id(parent: Any) -> str | None:
    if not isinstance(parent, Mapping):
        return None
    header = parent.get("header") if isinstance(parent.get("header"), Mapping) else parent
    return header.get("msg_id") if isinstance(header, Mapping) else None


def install_capture() -> Capture | None:
    """Record every output this kernel sends (once per kernel); None outside a Jupyter kernel."""
    global _CAPTURE
    if _CAPTURE is not None:
        return _CAPTURE
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    session = getattr(kernel, "session", None)
    if kernel is None or session is None:
        return None
    cap = Capture()
    original = session.send

    def send(
        stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None, *args: Any, **kw: Any
    ) -> Any:
        try:
            if isinstance(msg_or_type, Mapping):
                cap.observe(
                    str(msg_or_type.get("header", {}).get("msg_type")),
                    msg_or_type.get("content") or {},
                    _parent_id(msg_or_type.get("parent_header")),
                )
            else:
                request = None
                if msg_or_type == "execute_input":
                    request = (
                        parent if isinstance(parent, Mapping) and "metadata" in parent else _current(kernel)
                    )
                cap.observe(str(msg_or_type), content or {}, _parent_id(parent), request)
        except Exception:  # noqa: BLE001 - recording must never break what the engineer sees  # pragma: no cover
            pass
        return original(stream, msg_or_type, content, parent, *args, **kw)

    session.send = send
    current = _current(kernel)  # the cell running begin(): its execute_input was sent before we listened
    if current:
        cap.start(
            str(_parent_id(current)),
            (current.get("metadata") or {}).get("cellId"),
            str((current.get("content") or {}).get("code", "")),
            getattr(shell, "execution_count", None),
        )
    _CAPTURE = cap
    return cap


def _current(kernel: Any) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        parent = kernel.get_parent("shell")
        if isinstance(parent, Mapping) and parent.get("header"):
            return dict(parent)
    return {}


def current_msg_id() -> str | None:
    with contextlib.suppress(Exception):
        from IPython import get_ipython

        return _parent_id(_current(get_ipython().kernel))
    return None


def build_report(
    copy_path: Path, cap: Capture | None, params: Mapping[str, Any], final_outputs: list[Any] | None = None
) -> tuple[nbformat.NotebookNode, str | None]:
    """The interactive run as a notebook: the working copy's cells with what this kernel executed and sent
    (cells not run in this kernel lose their old outputs); the parameters cell shows the values the run used.
    Also the error text of the first cell whose last execution raised, as the headless runner reports it."""
    nb = nbformat.read(str(copy_path), as_version=4)
    by_cell, loose = cap.latest_by_cell() if cap is not None else ({}, [])
    current = current_msg_id()
    error: str | None = None
    seen: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        run = by_cell.get(str(cell.get("id")))
        if "parameters" in cell.get("metadata", {}).get("tags", []) and run is None:
            cell.source = fill_parameters(cell.source, params)
            cell.outputs, cell.execution_count = [], None
            continue
        if run is None:
            cell.outputs, cell.execution_count = [], None
            continue
        seen.add(run.msg_id)
        cell.source, cell.execution_count = run.code, run.count
        cell.outputs = copy.deepcopy(run.outputs)
        if run.msg_id == current and final_outputs:
            cell.outputs.extend(final_outputs)
        err = next((o for o in run.outputs if o.get("output_type") == "error"), None)
        if err is not None and error is None:
            error = f"cell {run.count} raised {err.get('ename')}: {redact_text(str(err.get('evalue')))[:300]}"
    for run in loose + [r for r in by_cell.values() if r.msg_id not in seen and r.cell_id]:
        cell = nbformat.v4.new_code_cell(run.code)  # run in this kernel, not (yet) in the saved copy
        cell.execution_count, cell.outputs = run.count, copy.deepcopy(run.outputs)
        if run.msg_id == current and final_outputs:
            cell.outputs.extend(final_outputs)
        nb.cells.append(cell)
    return nb, error


# ---------------------------------------------------------------- publishing


def publish_interactive(ev: Evidence, final_outputs: list[Any] | None = None) -> Path:
    """Publish this interactive run as the headless runner publishes one: a new run folder of the incident
    with report.ipynb (masked), report.html, evidence.json (``run.mode`` interactive, the operator) and
    SHA256SUMS, built in a hidden staging folder and renamed into place; then the ``run`` event."""
    from propflow_ops import config as config_mod
    from propflow_ops import incident_record as ir
    from propflow_ops import operator as operator_mod
    from propflow_ops import run_context
    from propflow_ops.run.evidence import final_evidence
    from propflow_ops.run.folder import (
        make_parent,
        output_root,
        publish,
        publishable_files,
        remove_empty,
        stamp,
        write_staging,
    )
    from propflow_ops.run.mask import sanitize_notebook
    from propflow_ops.run.temporaries import host_tag, private_workdir

    rb = RUNBOOKS[ev.runbook]
    root = output_root(None)
    incident = str(ev.incident.get("id"))
    workdir = Path(os.environ.get(WORKDIR_ENV) or working_dir(root, incident))
    copy_path = workdir / rb.notebook
    if not copy_path.exists():
        copy_path = rb.path
    nb, error = build_report(copy_path, _CAPTURE, ev.parameters, final_outputs)
    params = dict(ev.parameters)
    ctx = run_context.RunContext(
        incident,
        config_mod.load(None, None, os.environ),
        ir.LocalStore(root),
        operator_mod.in_background(os.environ),
        mode=MODE,
    )
    private = private_workdir()
    try:
        nbformat.write(nb, str(private / "report.ipynb"))
        write_json_atomic(private / "evidence.json", ev.to_json())
        masked = sanitize_notebook(private / "report.ipynb", rb, params, error)
        evidence = run_context.annotate(
            ctx, final_evidence(rb, params, private, error, ev.started_at, ev._t0)
        )
        files, names = publishable_files(masked, evidence, private, True)
        parent = root / incident
        created = make_parent(parent)
        name = f"{stamp(utcnow())}-{rb.slug}"
        staging = parent / f".tmp-{name}-{host_tag()}-{os.getpid()}-{threading.get_ident()}"
        try:
            staging.mkdir()
            write_staging(staging, files, names)
            final = publish(staging, parent, name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            remove_empty(created)
            raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
    run_context.finish(ctx, final, evidence)
    return final


class Published:
    """What ``ev.save()`` shows after publishing: where the run went."""

    def __init__(self, path: Path | None, error: str | None = None) -> None:
        self.path, self.error = path, error

    def _repr_html_(self) -> str:
        import html

        if self.error:
            return (
                f'<div class="propflow-published" style="color:#b71c1c"><b>Not published:</b> '
                f"{html.escape(self.error)}</div>"
            )
        return (
            f'<div class="propflow-published"><b>Published</b> (interactive run): '
            f"<code>{html.escape(str(self.path))}</code></div>"
        )

    def __repr__(self) -> str:
        return f"Not published: {self.error}" if self.error else f"Published (interactive run): {self.path}"


@dataclass
class InteractiveEvidence(Evidence):
    """The evidence of a runbook run in the lab: ``save()`` publishes a new run of the incident each time."""

    published: list[Path] = field(default_factory=list, repr=False)

    def save(self, path: str | os.PathLike[str] | None = None) -> FindingsTable:
        table = super().save(path)
        if path is not None or os.environ.get("PROPFLOW_EVIDENCE_PATH"):
            return table  # the headless runner publishes
        from propflow_ops.notebook import display

        count = None
        with contextlib.suppress(Exception):
            from IPython import get_ipython

            count = get_ipython().execution_count
        shown = {
            "output_type": "execute_result",
            "execution_count": count,
            "metadata": {},
            "data": {"text/html": table._repr_html_(), "text/plain": repr(table)},
        }
        try:
            folder = publish_interactive(self, [nbformat.from_dict(shown)])
        except Exception as exc:  # noqa: BLE001 - one line in the notebook, never a lost table
            print(
                f"propflow-ops: the run was not published: {type(exc).__name__}: {redact_text(str(exc))}",
                file=sys.stderr,
            )
            display(Published(None, f"{type(exc).__name__}: {redact_text(str(exc))}"))
            return table
        self.published.append(folder)
        display(Published(folder))
        return table


def interactive_banner_line() -> str | None:
    """The banner's line in the lab: which incident, and that saving publishes."""
    incident = os.environ.get(INCIDENT_ENV)
    if not incident:
        return None
    where = os.environ.get("PROPFLOW_OUTPUT_DIR") or "the output folder"
    return (
        f"Interactive run for incident {incident} (working copy in {os.environ.get(WORKDIR_ENV, '?')}); "
        f"ev.save() (the last cell) publishes a new run under {where}/{incident}/"
    )
