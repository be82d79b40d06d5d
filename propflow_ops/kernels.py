"""Warm kernels for several runs in one process (the demo, several runbooks for one incident).

A cold ``propflow-ops run`` pays for a kernel start and the runbooks' imports (pandas, matplotlib,
boto3, SQLAlchemy: about 3.5 s here) before its first cell. A :class:`WarmKernel` pays that once, ahead
of time (while the sandbox starts, say), and then runs notebooks one after another: before each one it
clears the user namespace, closes figures, resets the cell counter and sets the run's environment, so a
report looks exactly as it would from a fresh kernel. A kernel whose run did not finish cleanly (a cell
raised, the watchdog fired, the kernel died) is thrown away and the next run gets a fresh one.

:class:`KernelPool` is a fixed set of worker threads, each owning one warm kernel (an ``AsyncKernelManager``
stays on the thread and event loop that started it).
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from propflow_ops.runbooks import RUNBOOKS

# What every runbook imports first; loaded into each kernel while it waits for work.
PRELOAD = """
import pandas, numpy, matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot
import propflow_ops.notebook, propflow_ops.plots, propflow_ops.remediation, propflow_ops.reach
import propflow_ops.sources.aws, propflow_ops.sources.db, propflow_ops.sources.logs, propflow_ops.sources.http
import propflow_ops.checks.ecs, propflow_ops.checks.logs, propflow_ops.sources.triage
propflow_ops.sources.triage._preload()
"""

# Once, when the kernel starts: remember the environment it started with (kept in a module, which
# ``%reset`` leaves alone), so that each run starts from it and not from what the runs before it set.
_REMEMBER_ENV = """
import os as _os, propflow_ops.kernels as _k
_k.STARTED_WITH_ENV = dict(_os.environ)
del _os, _k
"""

# Before each run: the state a fresh kernel would have, and this run's environment (on top of the
# environment the kernel started with: nothing an earlier run set or removed carries over).
_RESET = """
__import__("propflow_ops.kernels").kernels.reset_namespace(get_ipython())
import matplotlib.pyplot as _plt
_plt.close("all")
del _plt
import os as _os, propflow_ops.kernels as _k
_os.environ.clear()
_os.environ.update(_k.STARTED_WITH_ENV)
_os.environ.update({env!r})
del _os, _k
get_ipython().execution_count = 1
"""


def reset_namespace(shell: Any) -> None:
    """In the kernel: ``%reset -f`` (the user namespace, the output cache, the history), without the two full
    garbage collections it makes on the way. Over the heap of a kernel that has imported pandas, matplotlib,
    botocore and SQLAlchemy they cost about 0.3 s each, before every warm run (py-spy, issue 19); Python's own
    collector still frees what the last run left in cycles."""
    import gc

    collect = gc.collect
    gc.collect = lambda *_a, **_k: 0
    try:
        shell.run_line_magic("reset", "-f")
    finally:
        gc.collect = collect


# In the kernel process (set by _REMEMBER_ENV): the environment the kernel started with.
STARTED_WITH_ENV: dict[str, str] = {}


class KernelError(RuntimeError):
    pass


@functools.cache
def _manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class TrackingKernelManager(AsyncKernelManager):
        """Remembers the clients made from it, so :meth:`close_clients` can stop their channels."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.clients: list[Any] = []

        def client(self, **kwargs: Any) -> Any:
            kc = super().client(**kwargs)
            self.clients.append(kc)
            return kc

        def close_clients(self) -> None:
            clients, self.clients = self.clients, []
            for kc in clients:
                if kc.channels_running:
                    kc.stop_channels()

    return TrackingKernelManager


def ipc_kernel_manager() -> tuple[Any, str]:
    """A kernel manager (no kernel started yet) talking over unix sockets in a new short temporary folder
    (socket paths must stay short); the caller removes the folder when done.

    Its ``close_clients()`` stops the channels of every client made from it: papermill, given a kernel
    manager, leaves its client's channels open (about 14 file descriptors per run), which would pile up
    in a warm kernel that runs notebook after notebook.
    """
    ipc_dir = tempfile.mkdtemp(prefix="pfk-")
    return _manager_class()(kernel_name="python3", transport="ipc", ip=os.path.join(ipc_dir, "k")), ipc_dir


def kernel_pid(km: Any) -> int | None:
    """The process id of a kernel manager's kernel, or None."""
    prov = getattr(km, "provisioner", None)
    return getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)


def kill_kernel(km: Any) -> int | None:
    """SIGKILL the kernel and whatever it started (its process group: jupyter_client starts each kernel in
    a session of its own), or only the kernel when that group is ours. Returns the pid, or None."""
    pid = kernel_pid(km)
    if not pid:
        return None
    try:
        group = os.getpgid(pid)
        if group == os.getpgrp():
            raise PermissionError("the kernel shares our process group")
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pid


def _notebooks_dir() -> Path:
    return next(iter(RUNBOOKS.values())).path.parent


class WarmKernel:
    """One kernel with the runbooks' imports loaded, reused run after run on the thread that started it."""

    def __init__(
        self,
        cwd: str | os.PathLike[str] | None = None,
        preload: str = PRELOAD,
        *,
        env: Mapping[str, str] | None = None,
        output: str | os.PathLike[str] | None = None,
    ) -> None:
        """``env``: the environment the kernel starts with (default: this process's, when it starts);
        every run starts from it. ``output``: a file that receives what the kernel process itself writes
        to its stdout and stderr (default: this process's), appended to across kernels."""
        self.km, self._ipc_dir = ipc_kernel_manager()
        self.cwd = str(cwd or _notebooks_dir())
        self.preload = preload
        self.env = dict(env) if env is not None else None
        self.output = Path(output) if output is not None else None
        self.started = False
        self.spoilt = False  # set by the runner when a run did not finish cleanly: not reused

    def start(self, timeout_s: float = 60) -> None:
        from jupyter_core.utils import run_sync

        kwargs: dict[str, Any] = {"cwd": self.cwd}
        if self.env is not None:
            kwargs["env"] = dict(self.env)
        if self.output is None:
            run_sync(self.km.start_kernel)(**kwargs)
        else:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            with open(self.output, "ab") as out:  # the kernel keeps its own copy of the descriptor
                run_sync(self.km.start_kernel)(stdout=out, stderr=out, **kwargs)
        self.started = True
        self.execute(_REMEMBER_ENV + self.preload, timeout_s=timeout_s)

    def execute(self, code: str, timeout_s: float = 30) -> None:
        """Run ``code`` silently (no history, no execution count); KernelError when it raises."""
        from jupyter_core.utils import run_sync

        run_sync(self._execute)(code, timeout_s)

    async def _execute(self, code: str, timeout_s: float) -> None:
        kc = self.km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=timeout_s)
            msg_id = kc.execute(code, silent=True, store_history=False)
            while True:
                reply = await kc.get_shell_msg(timeout=timeout_s)
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
            content = reply.get("content", {})
            if content.get("status") != "ok":
                raise KernelError(f"{content.get('ename', 'error')}: {content.get('evalue', '')}"[:300])
        finally:
            kc.stop_channels()

    def prepare(self, env: Mapping[str, str]) -> None:
        """Make the kernel look fresh for the next notebook, with ``env`` set in its environment."""
        self.km.close_clients()  # the previous run's client, which papermill left open
        self.execute(_RESET.format(env=dict(env)))

    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return bool(self.started and self.km.has_kernel and run_sync(self.km.is_alive)())

    def pid(self) -> int | None:
        return kernel_pid(self.km)

    def stop(self) -> None:
        self.km.close_clients()
        pid = kill_kernel(self.km) if self.km.has_kernel else None
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        shutil.rmtree(self._ipc_dir, ignore_errors=True)


Job = Callable[[WarmKernel | None], Any]


class KernelPool:
    """``workers`` threads, each keeping one warm kernel; :meth:`submit` a job that gets the kernel.

    Kernels start as soon as the pool does. A job receives None when its worker could not start a
    kernel (the runner then starts a cold one and reports what went wrong in the usual way).
    """

    def __init__(
        self,
        workers: int = 2,
        preload: str = PRELOAD,
        *,
        env: Mapping[str, str] | None = None,
        output: str | os.PathLike[str] | None = None,
    ) -> None:
        """``env``: as for :class:`WarmKernel`, for every kernel of the pool. ``output``: a folder where each
        worker's kernels write their own stdout and stderr, to ``<worker thread name>.log``."""
        self.workers = max(1, int(workers))
        self.preload = preload
        self.env = dict(env) if env is not None else None
        self.output = Path(output) if output is not None else None
        self._closing = False
        self._kernels: set[WarmKernel] = set()  # the live ones, for close(kill=True)
        self._lock = threading.Lock()
        self._jobs: queue.Queue[tuple[Job, Future[Any]] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._work, name=f"propflow-kernel-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    def _fresh(self) -> WarmKernel | None:
        if self._closing:
            return None
        output = self.output / f"{threading.current_thread().name}.log" if self.output is not None else None
        kernel = WarmKernel(preload=self.preload, env=self.env, output=output)
        with self._lock:
            self._kernels.add(kernel)
        try:
            kernel.start()
        except Exception:  # noqa: BLE001 - a job without a warm kernel runs cold
            self._stop(kernel)
            return None
        if self._closing:  # killed while it started
            self._stop(kernel)
            return None
        return kernel

    def _stop(self, kernel: WarmKernel) -> None:
        kernel.stop()
        with self._lock:
            self._kernels.discard(kernel)

    def _work(self) -> None:
        kernel = self._fresh()
        try:
            while True:
                item = self._jobs.get()
                if item is None:
                    return
                job, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                if kernel is None or not kernel.alive():
                    if kernel is not None:
                        self._stop(kernel)
                    kernel = self._fresh()
                try:
                    fut.set_result(job(kernel))
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                    fut.set_exception(exc)
                if kernel is not None and kernel.spoilt:
                    self._stop(kernel)
                    kernel = None
        finally:
            if kernel is not None:
                self._stop(kernel)

    def submit(self, job: Job) -> Future[Any]:
        fut: Future[Any] = Future()
        self._jobs.put((job, fut))
        return fut

    def close(self, timeout_s: float = 30.0, *, kill: bool = False) -> None:
        """Let the workers finish and stop their kernels (waiting at most ``timeout_s`` in all). With
        ``kill`` (Ctrl-C, SIGTERM): jobs not yet started are cancelled and every kernel is killed first, so
        a run in progress ends at once instead of being waited for."""
        if kill:
            self._closing = True
            while True:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[1].cancel()
            with self._lock:
                kernels = list(self._kernels)
            for kernel in kernels:
                kill_kernel(kernel.km)
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
