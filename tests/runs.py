"""Run ``propflow-ops`` as an engineer would (against the sandbox) and read what it left.

``propflow_ops(env, "run", ...)`` and ``propflow_ops(env, "review", ...)`` run the command's own code
(``propflow_ops.cli.main``: argument parsing, the request, the summary, exit codes, one-line errors) in
this process, and the notebook in a warm kernel of a pool shared by the whole test session (per xdist
worker), as ``propflow-ops demo`` does: a kernel start and the runbooks' imports are paid once per
kernel instead of once per test. The run gets exactly the environment a subprocess would
(``{**os.environ, **env}``, on top of the environment the kernel started with: nothing an earlier run
set carries over), and the result is read the same way: exit code, what was printed (stdout; stderr
with what the kernel process itself wrote), the run folder named on the last stdout line, its evidence.

Everything else (``list``, ``sandbox``, ``demo``, ``lab``), and every call when ``PROPFLOW_TEST_IN_PROCESS=0``,
starts a real ``propflow-ops`` process; :func:`cli_process` always does (exit codes of the process
itself, signals, what an engineer's shell sees).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from propflow_ops.findings import STATUS_ORDER

Snapshot = dict[str, Any]

IN_PROCESS_COMMANDS = ("run", "review")
# Warm kernels per test process: the safety fixtures run two runbooks at a time; a runbook test one.
KERNELS = int(os.environ.get("PROPFLOW_TEST_KERNELS", "2"))
# The environment the pool's kernels start with: this process's before any test changed it.
_START_ENV = dict(os.environ)


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    folder: Path | None
    evidence: dict[str, Any]

    @property
    def code(self) -> int:
        return self.proc.returncode

    def findings(self) -> dict[str, dict[str, Any]]:
        """code -> finding (the worst one when a code appears twice)."""
        order = STATUS_ORDER  # worst first; str keys find the StrEnum members
        out: dict[str, dict[str, Any]] = {}
        for f in self.evidence.get("findings", []):
            if f["code"] not in out or order.get(f["status"], 9) < order.get(out[f["code"]]["status"], 9):
                out[f["code"]] = f
        return out

    def status_of(self, code: str) -> str | None:
        f = self.findings().get(code)
        return f["status"] if f else None

    def fails(self) -> set[str]:
        return {c for c, f in self.findings().items() if f["status"] == "fail"}

    def actions(self) -> dict[str, dict[str, Any]]:
        return {a["step"]: a for a in self.evidence.get("actions", [])}


def in_process() -> bool:
    return os.environ.get("PROPFLOW_TEST_IN_PROCESS", "1") != "0"


def propflow_ops(
    env: Mapping[str, str], *args: str, timeout: float = 300, output_dir: Path | None = None
) -> Run:
    """The command with the sandbox's environment; returns the run folder and its evidence.

    ``run`` and ``review`` run in this process on a warm kernel (see the module's docstring); anything
    else starts a process."""
    if args and args[0] in IN_PROCESS_COMMANDS and in_process():
        proc = cli_in_process(env, *args, timeout=timeout, output_dir=output_dir)
    else:
        proc = cli_process(env, *args, timeout=timeout, output_dir=output_dir)
    return read_run(proc)


def read_run(proc: subprocess.CompletedProcess[str]) -> Run:
    """The run folder named on the last stdout line, and its evidence.json."""
    folder = None
    evidence: dict[str, Any] = {}
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if last and Path(last).is_dir():
        folder = Path(last)
        ev_path = folder / "evidence.json"
        if ev_path.exists():
            evidence = json.loads(ev_path.read_text())
    return Run(proc, folder, evidence)


def cli_process(
    env: Mapping[str, str], *args: str, timeout: float = 300, output_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m propflow_ops.cli ARGS`` in a new process with ``{**os.environ, **env}``."""
    full_env = {**os.environ, **env}
    if output_dir is not None:
        full_env["PROPFLOW_OUTPUT_DIR"] = str(output_dir)
    return subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


# ------------------------------------------------------------------ in this process, on warm kernels


@dataclass
class _Call:
    kernel: Any  # the pool's WarmKernel (None: the pool could not start one; the runner starts a cold one)
    env: dict[str, str]
    stdout: io.StringIO
    stderr: io.StringIO
    served: bool = False  # the command reached the runner (through the module attribute)


_local = threading.local()
_lock = threading.Lock()
_pool: Any = None
_real_run: Any = None


def _current() -> _Call | None:
    return getattr(_local, "call", None)


def _run_on_the_calls_kernel(req: Any, kernel: Any = None) -> Any:
    """``propflow_ops.runner.run`` while a pool is open: a call made by :func:`cli_in_process` (on its
    pool thread) runs on that thread's warm kernel, with the call's environment; any other call is
    passed through unchanged."""
    call = _current()
    if call is None or kernel is not None:
        return _real_run(req, kernel=kernel)
    call.served = True
    return _real_run(dataclasses.replace(req, env={**call.env, **req.env}), kernel=call.kernel)


class _ThreadStream(io.TextIOBase):
    """sys.stdout / sys.stderr while in-process calls run: a pool thread's writes go to its own call's
    buffer, everyone else's to the stream that was there before."""

    def __init__(self, name: str, fallback: TextIO) -> None:
        self.name, self.fallback = name, fallback

    def _target(self) -> TextIO:
        call = _current()
        return getattr(call, self.name) if call is not None else self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.fallback, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return self.fallback.fileno()


_streams_users = 0
_saved_streams: tuple[TextIO, TextIO] | None = None


@contextlib.contextmanager
def _thread_streams() -> Iterator[None]:
    global _streams_users, _saved_streams
    with _lock:
        if _streams_users == 0:
            _saved_streams = (sys.stdout, sys.stderr)
            sys.stdout = _ThreadStream("stdout", sys.stdout)
            sys.stderr = _ThreadStream("stderr", sys.stderr)
        _streams_users += 1
    try:
        yield
    finally:
        with _lock:
            _streams_users -= 1
            if _streams_users == 0 and _saved_streams is not None:
                sys.stdout, sys.stderr = _saved_streams
                _saved_streams = None


def _hook_runner() -> None:
    """Route ``propflow_ops.runner.run`` through :func:`_run_on_the_calls_kernel` (idempotent; call with
    ``_lock`` held)."""
    global _real_run
    if _real_run is None:
        from propflow_ops import runner

        _real_run = runner.run
        runner.run = _run_on_the_calls_kernel


def new_pool(workers: int) -> Any:
    """A pool of warm kernels of its own for :func:`cli_in_process` ``pool=`` (the caller ends it with
    :func:`end_pool`): kernels started with this process's environment from before the tests, each
    writing its own output to a file that :func:`cli_in_process` reads into the call's stderr."""
    from propflow_ops.kernels import KernelPool

    with _lock:
        _hook_runner()
    return KernelPool(workers, env=_START_ENV, output=tempfile.mkdtemp(prefix="propflow-test-kernels-"))


def kernel_pool() -> Any:
    """The session's pool of warm kernels (started on first use; :func:`close_pool` ends it)."""
    global _pool
    if _pool is None:
        pool = new_pool(KERNELS)
        with _lock:
            if _pool is None:
                _pool, pool = pool, None
        if pool is not None:
            pool.close()
    return _pool


def end_pool(pool: Any) -> None:
    """Stop a pool from :func:`new_pool` and remove its kernels' output files."""
    import shutil

    pool.close()
    if pool.output is not None:
        shutil.rmtree(pool.output, ignore_errors=True)


def close_pool() -> None:
    """Stop the session pool's kernels and give ``propflow_ops.runner.run`` back (idempotent)."""
    global _pool, _real_run
    with _lock:
        pool, _pool = _pool, None
        if _real_run is not None:
            from propflow_ops import runner

            runner.run = _real_run
            _real_run = None
    if pool is not None:
        end_pool(pool)


atexit.register(close_pool)


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _kernel_output(kernel: Any, start: int) -> str:
    path = getattr(kernel, "output", None)
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def cli_in_process(
    env: Mapping[str, str], *args: str, timeout: float = 300, output_dir: Path | None = None, pool: Any = None
) -> subprocess.CompletedProcess[str]:
    """``propflow-ops ARGS`` (``run`` or ``review``) through ``propflow_ops.cli.main`` in this process, on a
    warm kernel of ``pool`` (default :func:`kernel_pool`; see :func:`new_pool`); a CompletedProcess as
    :func:`cli_process` would give it. Past ``timeout``: subprocess.TimeoutExpired (the run itself goes on
    until the runner's budget stops it)."""
    from propflow_ops import cli

    full_env = {**os.environ, **env}
    if output_dir is not None:
        full_env["PROPFLOW_OUTPUT_DIR"] = str(output_dir)
    argv = list(args)
    # PROPFLOW_OUTPUT_DIR is read from this process's environment, which in-process calls leave alone:
    # the same folder as the documented option
    out = full_env.get("PROPFLOW_OUTPUT_DIR")
    if out and "--output-dir" not in argv and not any(a.startswith("--output-dir=") for a in argv):
        argv += ["--output-dir", out]
    pool = pool or kernel_pool()

    def job(kernel: Any) -> tuple[int, str, str]:
        call = _Call(kernel, full_env, io.StringIO(), io.StringIO())
        start = _size(getattr(kernel, "output", None))
        _local.call = call
        try:
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    call.stderr.write(exc.code + "\n")
        finally:
            _local.call = None
        if not call.served and code != 2:
            raise RuntimeError(
                "propflow-ops did not call propflow_ops.runner.run through the module attribute: "
                "tests/runs.py could not give the run a warm kernel and its environment"
            )
        return code, call.stdout.getvalue(), call.stderr.getvalue() + _kernel_output(kernel, start)

    with _thread_streams():
        future = pool.submit(job)
        try:
            code, stdout, stderr = future.result(timeout=timeout)
        except TimeoutError:
            raise subprocess.TimeoutExpired(["propflow-ops", *argv], timeout) from None
    return subprocess.CompletedProcess(["propflow-ops", *argv], code, stdout, stderr)


# ------------------------------------------------------------------ scenario helpers


def watched(
    sb: Any, env: Mapping[str, str], slug: str, *args: str, output_dir: Path
) -> tuple[Run, Snapshot, Snapshot]:
    """``propflow-ops run SLUG ARGS`` against the sandbox ``sb``, with the world's snapshot before and after it."""
    before = sb.snapshot()
    run = propflow_ops(env, "run", slug, *args, output_dir=output_dir)
    return run, before, sb.snapshot()


def healthy_run(
    world: Callable[..., Any],
    env: Mapping[str, str],
    slug: str,
    *args: str,
    output_dir: Path,
    ok: Iterable[str] = (),
) -> tuple[Run, Snapshot, Snapshot]:
    """SLUG against the healthy world, asserting what every healthy run shows: exit 0, no ``fail``, each code
    in ``ok`` ok, and a world the run left as it was. Returns the run and both snapshots for further checks."""
    run, before, after = watched(world(), env, slug, *args, output_dir=output_dir)
    assert run.code == 0, run.proc.stderr[-2000:] + str(run.fails())
    assert run.fails() == set()
    for code in ok:
        assert run.status_of(code) == "ok", (code, run.findings().get(code))
    assert before == after
    return run, before, after


def nbval(
    notebook: Path, env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The notebook run top to bottom under ``pytest --nbval-lax``, with the sandbox's environment."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", str(notebook)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=timeout,
    )


def ctrl_c_works() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: Ctrl-C's default action, whatever the
    test runner inherited (a shell starts background jobs with SIGINT ignored, and Python then keeps it
    ignored, so the child would never see the interrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
