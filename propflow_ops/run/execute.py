"""Executing a runbook's notebook with papermill on a kernel (a fresh one or a warm one from the pool), under
the run's time budget (a watchdog kills the kernel), and SIGTERM/SIGHUP taken as Ctrl-C while it runs."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from propflow_ops.findings import EVIDENCE_PATH_ENV
from propflow_ops.kernels import WarmKernel, ipc_kernel_manager, kill_kernel
from propflow_ops.redact import redact_text
from propflow_ops.run.request import RunRequest
from propflow_ops.runbooks import Runbook


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) while a run executes: the same clean-up path as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


ENGINE = "propflow"


@functools.cache
def _engine() -> str:
    """papermill's nbclient engine, saving report.ipynb when the run starts (the parameterized notebook, before
    any output) and when it ends (as papermill does for a finished, failed or stopped run), instead of after
    every cell's start and end as well. Those saves re-validated, copied and wrote the whole growing notebook
    (plots included) about twice per cell: most of the time a warm run spent outside its kernel (py-spy, issue
    19). Nothing reads the file while the run goes on; it lives in the run's private folder either way."""
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class EndSaves(NotebookExecutionManager):
        saving = False

        def save(self, **kwargs: Any) -> None:
            if self.saving:
                super().save(**kwargs)

        def notebook_start(self, **kwargs: Any) -> None:  # once, before any output: a small file
            self.saving = True
            super().notebook_start(**kwargs)
            self.saving = False

        def notebook_complete(self, **kwargs: Any) -> None:
            self.saving = True
            super().notebook_complete(**kwargs)

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(  # papermill's Engine.execute_notebook with EndSaves; no 30 s autosave
            cls,
            nb: Any,
            kernel_name: str,
            output_path: Any = None,
            progress_bar: Any = True,
            log_output: bool = False,
            autosave_cell_every: int = 0,
            **kwargs: Any,
        ) -> Any:
            nb_man = EndSaves(
                nb,
                output_path=output_path,
                progress_bar=progress_bar,
                log_output=log_output,
                autosave_cell_every=0,
            )
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE, Engine)
    return ENGINE


def execute(
    rb: Runbook, params: Mapping[str, Any], workdir: Path, req: RunRequest, kernel: WarmKernel | None = None
) -> str | None:
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
                engine_name=_engine(),
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


class TerminateAsInterrupt:
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

    def __enter__(self) -> TerminateAsInterrupt:
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
