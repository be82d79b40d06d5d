"""Run ``propflow-ops`` as an engineer would (a subprocess against the sandbox) and read what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
