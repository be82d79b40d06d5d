"""``propflow-ops demo``: the whole incident loop against the sandbox, in one command.

Starts the simulated PropFlow world in this process with a fault injected (default ``api-oom``), runs
``triage``, then the runbooks it recommends (two at a time, as ``propflow-ops run`` subprocesses), then the
post-incident review of its own incident; prints the run folders and a one-screen summary. The sandbox is
stopped whatever happens (Ctrl-C too). Exit 0 when the reports were produced: the demo shows problems on
purpose, so their ``fail`` findings are not a failure of the demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propflow_ops.findings import iso, utcnow
from propflow_ops.runner import output_root

DEFAULT_SCENARIO = "api-oom"
SANDBOX_MODELS = "propflow_ops.sandbox.backend.models:Base"  # the sample backend's models (schema drift)
SHORT_DB_TIMES = ("db-idle-in-transaction", "db-long-query")  # PostgreSQL ages cannot be faked: 1 s thresholds
WORKERS = 2


@dataclass
class Step:
    slug: str
    code: int
    folder: Path | None
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""


def _say(text: str) -> None:
    print(text, flush=True)


def extra_params(slug: str, scenarios: Sequence[str]) -> list[str]:
    """The -p options the demo passes a runbook so the sandbox's faults show in it."""
    out: list[str] = []
    if slug in ("triage", "migration"):
        out += ["-p", "models", SANDBOX_MODELS]
    if slug in ("triage", "db-connection") and any(s in SHORT_DB_TIMES for s in scenarios):
        out += ["-p", "idle_in_transaction_s", "1", "-p", "long_query_s", "1"]
    return out


def run_cli(args: Sequence[str], env: Mapping[str, str], slug: str, timeout: float = 300) -> Step:
    """One ``propflow-ops`` subprocess; the last stdout line is its run folder."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "propflow_ops.cli", *args], capture_output=True, text=True,
                              env=dict(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        return Step(slug, 3, None, seconds=time.monotonic() - t0, error=f"no answer within {timeout:g} s")
    lines = proc.stdout.strip().splitlines()
    folder = Path(lines[-1]) if lines and Path(lines[-1]).is_dir() else None
    evidence: dict[str, Any] = {}
    if folder and (folder / "evidence.json").exists():
        evidence = json.loads((folder / "evidence.json").read_text(encoding="utf-8"))
    error = "" if folder else (proc.stderr.strip().splitlines() or ["no run folder"])[-1]
    return Step(slug, proc.returncode, folder, evidence, time.monotonic() - t0, error)


def _fails(step: Step) -> list[str]:
    return [f["code"] for f in step.evidence.get("findings", []) if f.get("status") == "fail"]


def summary(scenarios: Sequence[str], incident: str, triage: Step, runbooks: Sequence[Step], review: Step,
            seconds: float) -> str:
    """One screen: what was injected, what triage saw and recommended, each runbook, the review's verdicts."""
    lines = [f"propflow-ops demo: incident {incident}, scenario {', '.join(scenarios)} ({seconds:.0f} s)", ""]
    comps = [f for f in triage.evidence.get("findings", []) if str(f.get("code", "")).startswith("TRIAGE_")]
    lines.append("Triage: " + "  ".join(f"{f['code'][7:].lower()}={f['status']}" for f in comps))
    reasons = triage.evidence.get("recommendation_reasons") or {}
    for i, slug in enumerate(triage.evidence.get("recommended_runbooks") or [], 1):
        lines.append(f"  {i}. {slug}: {reasons.get(slug, '')[:110]}")
    if not triage.evidence.get("recommended_runbooks"):
        lines.append("  no runbook recommended")
    lines.append("")
    for step in runbooks:
        fails = _fails(step)
        lines.append(f"{step.slug:14} {step.evidence.get('status', 'error'):8} "
                     + (f"fail: {', '.join(fails)}" if fails else step.error or "no fail"))
    lines.append("")
    verdicts = {f["code"]: f for f in review.evidence.get("findings", [])}
    for code in ("EVIDENCE_TAMPERED", "INCIDENT_NOT_RESOLVED", "RTO_API_MISSED", "RTO_DATABASE_MISSED",
                 "RTO_FILE_STORAGE_MISSED", "RESPONSE_TIME_MISSED"):
        if code in verdicts:
            f = verdicts[code]
            lines.append(f"review {f['status']:7} {f['title']}: {f.get('detail', '')[:80]}")
    lines.append("")
    lines.append("Run folders:")
    for step in (triage, *runbooks, review):
        lines.append(f"  {step.folder or '(none: ' + step.error + ')'}")
    if review.folder and (review.folder / "postmortem.md").exists():
        lines.append(f"Post-mortem: {review.folder / 'postmortem.md'}")
    return "\n".join(lines)


def demo_main(scenarios: list[str], output_dir: str | None) -> int:
    """Sandbox + triage + the recommended runbooks + the review of its own incident."""
    from propflow_ops.sandbox import Sandbox, UnknownScenarioError

    chosen = list(scenarios) or [DEFAULT_SCENARIO]
    t0 = time.monotonic()
    try:
        sandbox = Sandbox(chosen)
    except UnknownScenarioError as exc:
        print(f"propflow-ops: error: {exc}", file=sys.stderr)
        return 2
    out = output_root(output_dir).resolve()
    began = utcnow()  # the incident starts when the demo does: the sandbox start counts against the RTO
    incident = "DEMO-" + began.strftime("%Y%m%dT%H%M%SZ")
    _say(f"demo: starting the sandbox with {', '.join(chosen)}...")
    try:
        sandbox.start()
        _say(f"demo: sandbox ready in {time.monotonic() - t0:.1f} s; incident {incident}, reports under {out}")
        env = {**os.environ, **sandbox.env, "PROPFLOW_OUTPUT_DIR": str(out)}
        env.pop("PROPFLOW_EVIDENCE_PATH", None)
        common = ["--incident", incident, "--started-at", iso(began) or ""]
        _say("demo: triage...")
        triage = run_cli(["run", "triage", *common, *extra_params("triage", chosen)], env, "triage")
        recs = list(triage.evidence.get("recommended_runbooks") or [])
        _say(f"demo: triage {triage.evidence.get('status', 'error')} in {triage.seconds:.1f} s; "
             f"recommends {', '.join(recs) or 'nothing'}")
        runbooks: list[Step] = []
        if recs:
            _say(f"demo: running {', '.join(recs)} ({WORKERS} at a time)...")
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                futures = {pool.submit(run_cli, ["run", slug, *common, *extra_params(slug, chosen)], env, slug): slug
                           for slug in recs}
                done: dict[str, Step] = {}
                for fut in as_completed(futures):
                    step = fut.result()
                    done[step.slug] = step
                    _say(f"demo:   {step.slug} {step.evidence.get('status', 'error')} in {step.seconds:.1f} s")
            runbooks = [done[s] for s in recs]
        _say("demo: post-incident review...")
        review = run_cli(["review", incident, "--output-dir", str(out)], env, "post-incident")
        _say("")
        _say(summary(chosen, incident, triage, runbooks, review, time.monotonic() - t0))
        produced = triage.folder is not None and review.folder is not None
        return 0 if produced else 3
    finally:
        _say("demo: stopping the sandbox")
        sandbox.stop()
