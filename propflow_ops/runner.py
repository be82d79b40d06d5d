"""Headless runs: papermill -> run folder with report.ipynb, report.html, evidence.json, SHA256SUMS.

:func:`run` runs one runbook end to end (what the command line, the demo, the fleet's worker and the review
call); the parts live in :mod:`propflow_ops.run`: the request (:mod:`~propflow_ops.run.request`), the -p
values against the notebook's parameters cell (:mod:`~propflow_ops.run.parameters`), the kernel and
papermill (:mod:`~propflow_ops.run.execute`), masking the executed notebook (:mod:`~propflow_ops.run.mask`),
evidence.json (:mod:`~propflow_ops.run.evidence`), report.html's header (:mod:`~propflow_ops.run.header`),
the run folder (:mod:`~propflow_ops.run.folder`) and the private temporaries
(:mod:`~propflow_ops.run.temporaries`).

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

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from propflow_ops import inputs, run_context
from propflow_ops.change import confirm as confirm_mod
from propflow_ops.change import runs as change_runs
from propflow_ops.findings import utcnow
from propflow_ops.incident import BadInput
from propflow_ops.kernels import WarmKernel
from propflow_ops.redact import redact_text
from propflow_ops.run.evidence import final_evidence
from propflow_ops.run.execute import TerminateAsInterrupt, execute
from propflow_ops.run.folder import PublishError, publishable_files, stamp
from propflow_ops.run.mask import sanitize_notebook
from propflow_ops.run.parameters import build_parameters, check_environment
from propflow_ops.run.request import RunRequest, RunResult
from propflow_ops.run.temporaries import private_workdir
from propflow_ops.runbooks import RUNBOOKS
from propflow_ops.store import target as store_target

__all__ = ["RunRequest", "RunResult", "run"]  # the entry (README: Use from Python)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


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
    target = store_target(req.output_dir)  # a local folder or s3://bucket/prefix (see propflow_ops.store)
    change_env = change_runs.preflight(  # reason and confirmation before anything runs (BadInput: exit 2)
        list(params["apply"]),
        str(params["incident_id"]),
        {**os.environ, **req.env},
        yes=req.yes,
        reason=req.reason,
        no_snapshot=req.no_snapshot,
        force=req.force,
        record_root=target.url,
        stdin_tty=None if req.announce else False,
    )
    if change_env:  # a step's cell may wait for the engineer's answer, then for its snapshot and verification
        req = dataclasses.replace(
            req, cell_timeout_s=max(req.cell_timeout_s, change_runs.APPLY_CELL_TIMEOUT_S)
        )
    if req.announce:
        print(
            f"propflow-ops: running {rb.slug} for incident {params['incident_id']}...",
            file=sys.stderr,
            flush=True,
        )
    target.sweep()
    started = utcnow()
    t0 = time.monotonic()
    name = f"{stamp(started)}-{rb.slug}"
    with TerminateAsInterrupt() as term:
        published = False
        private: Path | None = None
        try:
            target.open(str(params["incident_id"]), name)  # early: a store that cannot take it is found now
            try:
                ctx = run_context.begin(req, rb, params, target.records())  # open or join the incident record
            except OSError as exc:
                raise PublishError(
                    f"cannot write the incident record under {target.url}/{params['incident_id']}: "
                    f"{exc.strerror or exc}"
                ) from None
            try:
                private = private_workdir()
            except OSError as exc:
                raise PublishError(
                    f"cannot create a private temporary folder under {tempfile.gettempdir()}: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
            change_env = change_runs.bind_prompt(change_env, private / "confirm")  # the terminal's channel
            req_env = {"PROPFLOW_OUTPUT_DIR": target.url, **req.env, **change_env}
            with confirm_mod.terminal_prompts(change_runs.prompt_dir(change_env)):
                error = execute(rb, params, private, dataclasses.replace(req, env=req_env), kernel)
            nb = sanitize_notebook(private / "report.ipynb", rb, params, error)
            evidence = run_context.annotate(ctx, final_evidence(rb, params, private, error, started, t0))
            files, names = publishable_files(nb, evidence, private, req.html)
            final = target.publish(files, names)
            published = True
        finally:
            term.fired = True  # a SIGTERM from here on does not interrupt the clean-up
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
            if not published:
                target.abort()
    run_context.finish(ctx, final, evidence)
    status = evidence["status"]
    code = change_runs.exit_code(evidence, {"ok": EXIT_OK, "problems": EXIT_PROBLEMS}.get(status, EXIT_ERROR))
    return RunResult(final, status, code, evidence, error)
