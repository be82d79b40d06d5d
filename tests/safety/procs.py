"""Start ``propflow-ops`` commands as real processes and see what they leave: shared by the sandbox
isolation and stopping tests."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DIR = re.compile(r"/propflow-sandbox-[A-Za-z0-9_]+")


def start(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """``propflow-ops ARGS`` with SIGINT at its default action (a background CI job inherits it ignored)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from propflow_ops.cli import entry; sys.exit(entry())", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


class Lines:
    """Reads a pipe in a thread (so the child never blocks on a full pipe); ``wait_for`` a line."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return None
                self._cond.wait(min(left, 0.5))

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def exports(lines: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0]
    return env


def tree(pid: int) -> list[psutil.Process]:
    """Every process started for ``pid``: its descendants, and the daemonized PostgreSQL (parent 1) of
    any sandbox directory one of them names."""
    try:
        found = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    dirs = set()
    for proc in found:
        try:
            dirs.update(SANDBOX_DIR.findall(" ".join(proc.cmdline())))
        except psutil.Error:
            continue
    if dirs:
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if any(d + "/" in cmd or cmd.endswith(d) for d in dirs) and proc not in found:
                    found.append(proc)
                    found.extend(c for c in proc.children(recursive=True) if c not in found)
            except psutil.Error:
                continue
    return found


def alive(procs: list[psutil.Process], timeout: float = 3.0) -> list[str]:
    """The processes of ``procs`` still running after ``timeout`` (zombies count as gone)."""
    _gone, left = psutil.wait_procs(procs, timeout=timeout)
    out = []
    for proc in left:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue


def environ_without_targets() -> dict[str, str]:
    """This process's environment without the target variables (a test sets its own)."""
    from propflow_ops.sandbox.isolation import is_target_variable

    return {k: v for k, v in os.environ.items() if not is_target_variable(k)}
