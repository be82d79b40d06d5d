"""What one headless run is asked to do (:class:`RunRequest`) and what it gave (:class:`RunResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propflow_ops.store import S3Url

DEFAULT_BUDGET_S = 300
DEFAULT_CELL_TIMEOUT_S = 120


@dataclass
class RunResult:
    path: Path | S3Url  # the published run folder: local, or in the S3 evidence store
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
    env: dict[str, str] = field(
        default_factory=dict
    )  # extra environment for the kernel (the review's output dir)
    mode: str = (
        "headless"  # how it was started, for the record and evidence.json (the fleet's worker: "fleet")
    )
    yes: bool = False  # change control (propflow_ops.change): --yes, --reason, --no-snapshot, --force
    reason: str | None = None
    no_snapshot: bool = False
    force: bool = False
