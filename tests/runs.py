"""Run ``propflow-ops`` as an engineer would (a subprocess against the sandbox) and read what it left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Snapshot = dict[str, Any]


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
        order = {"fail": 0, "error": 1, "warn": 2, "ok": 3, "skipped": 4}
        out: dict[str, dict[str, Any]] = {}
        for f in self.evidence.get("findings", []):
            if f["code"] not in out or order[f["status"]] < order[out[f["code"]]["status"]]:
                out[f["code"]] = f
        return out

    def status_of(self, code: str) -> str | None:
        f = self.findings().get(code)
        return f["status"] if f else None

    def fails(self) -> set[str]:
        return {c for c, f in self.findings().items() if f["status"] == "fail"}

    def actions(self) -> dict[str, dict[str, Any]]:
        return {a["step"]: a for a in self.evidence.get("actions", [])}


def propflow_ops(env: Mapping[str, str], *args: str, timeout: float = 300, output_dir: Path | None = None) -> Run:
    """Run the command with the sandbox's environment; returns the run folder and its evidence."""
    full_env = {**os.environ, **env}
    if output_dir is not None:
        full_env["PROPFLOW_OUTPUT_DIR"] = str(output_dir)
    proc = subprocess.run([sys.executable, "-m", "propflow_ops.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    folder = None
    evidence: dict[str, Any] = {}
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if last and Path(last).is_dir():
        folder = Path(last)
        ev_path = folder / "evidence.json"
        if ev_path.exists():
            evidence = json.loads(ev_path.read_text())
    return Run(proc, folder, evidence)


def watched(sb: Any, env: Mapping[str, str], slug: str, *args: str, output_dir: Path) -> tuple[Run, Snapshot, Snapshot]:
    """``propflow-ops run SLUG ARGS`` against the sandbox ``sb``, with the world's snapshot before and after it."""
    before = sb.snapshot()
    run = propflow_ops(env, "run", slug, *args, output_dir=output_dir)
    return run, before, sb.snapshot()


def healthy_run(world: Callable[..., Any], env: Mapping[str, str], slug: str, *args: str, output_dir: Path,
                ok: Iterable[str] = ()) -> tuple[Run, Snapshot, Snapshot]:
    """SLUG against the healthy world, asserting what every healthy run shows: exit 0, no ``fail``, each code
    in ``ok`` ok, and a world the run left as it was. Returns the run and both snapshots for further checks."""
    run, before, after = watched(world(), env, slug, *args, output_dir=output_dir)
    assert run.code == 0, run.proc.stderr[-2000:] + str(run.fails())
    assert run.fails() == set()
    for code in ok:
        assert run.status_of(code) == "ok", (code, run.findings().get(code))
    assert before == after
    return run, before, after


def nbval(notebook: Path, env: Mapping[str, str], *, cwd: Path | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The notebook run top to bottom under ``pytest --nbval-lax``, with the sandbox's environment."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                           str(notebook)], capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd,
                          timeout=timeout)


def ctrl_c_works() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: Ctrl-C's default action, whatever the
    test runner inherited (a shell starts background jobs with SIGINT ignored, and Python then keeps it
    ignored, so the child would never see the interrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
