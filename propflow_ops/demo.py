"""``propflow-ops demo``: the whole incident loop against the sandbox, in one command.

Starts the simulated PropFlow world in this process with a fault injected (default ``api-oom``), runs
``triage``, then the runbooks it recommends (two at a time), then the post-incident review of its own
incident; prints the run folders and a one-screen summary. The runs go through two warm kernels
(:mod:`propflow_ops.kernels`) that load the runbooks' imports while the sandbox starts. Exit 0 when the
reports were produced: the demo shows problems on purpose, so their ``fail`` findings are not a failure of
the demo.

The demo never sees a real target: the target variables it inherits are removed from its environment
before anything starts (its kernels inherit the cleaned one) and named on stderr. Ctrl-C or SIGTERM
stops it within seconds whatever it is doing: runs not started are cancelled, the kernels are killed,
the sandbox is stopped; exit 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import BadInput
from propflow_ops.kernels import KernelPool, WarmKernel
from propflow_ops.notify import sandbox_escalation
from propflow_ops.review.command import review_request
from propflow_ops.run.folder import output_root
from propflow_ops.runner import RunRequest, run

DEFAULT_SCENARIO = "api-oom"
SANDBOX_MODELS = "propflow_ops.sandbox.backend.models:Base"  # the sample backend's models (schema drift)
SHORT_DB_TIMES = (
    "db-idle-in-transaction",
    "db-long-query",
)  # PostgreSQL ages cannot be faked: 1 s thresholds
WORKERS = 2
STOP_TIMEOUT_S = 30.0  # the most the demo waits for its kernel workers when it ends normally
KILL_WAIT_S = 2.0  # ... and when it was interrupted (its kernels killed)


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


def extra_params(slug: str, scenarios: Sequence[str]) -> list[tuple[str, str]]:
    """The parameters (as ``-p NAME VALUE`` would give them) that make the sandbox's faults show in a runbook."""
    out: list[tuple[str, str]] = []
    if slug in ("triage", "migration"):
        out.append(("models", SANDBOX_MODELS))
    if slug in ("triage", "db-connection") and any(s in SHORT_DB_TIMES for s in scenarios):
        out += [("idle_in_transaction_s", "1"), ("long_query_s", "1")]
    return out


def submit_step(pool: KernelPool, req: RunRequest) -> Future[Step]:
    """One run in a warm kernel of ``pool``; what goes wrong becomes the step's error, never an exception."""
    t0 = time.monotonic()

    def job(kernel: WarmKernel | None) -> Step:
        try:
            result = run(req, kernel=kernel)
        except BadInput as exc:
            return Step(req.slug, 2, None, seconds=time.monotonic() - t0, error=str(exc))
        folder = result.path if isinstance(result.path, Path) else None  # the demo writes locally
        return Step(
            req.slug, result.exit_code, folder, result.evidence, time.monotonic() - t0, result.error or ""
        )

    return pool.submit(job)


def _fails(step: Step) -> list[str]:
    return [f["code"] for f in step.evidence.get("findings", []) if f.get("status") == "fail"]


def summary(
    scenarios: Sequence[str],
    incident: str,
    triage: Step,
    runbooks: Sequence[Step],
    review: Step,
    seconds: float,
) -> str:
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
        lines.append(
            f"{step.slug:14} {step.evidence.get('status', 'error'):8} "
            + (f"fail: {', '.join(fails)}" if fails else step.error or "no fail")
        )
    lines.append("")
    verdicts = {f["code"]: f for f in review.evidence.get("findings", [])}
    for code in (
        "EVIDENCE_TAMPERED",
        "INCIDENT_NOT_RESOLVED",
        "RTO_API_MISSED",
        "RTO_DATABASE_MISSED",
        "RTO_FILE_STORAGE_MISSED",
        "RESPONSE_TIME_MISSED",
    ):
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


def demo_main(
    scenarios: list[str],
    output_dir: str | None,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> int:
    """Sandbox + triage + the recommended runbooks + the review of its own incident."""
    from propflow_ops.sandbox import Sandbox, UnknownScenarioError, isolation
    from propflow_ops.sandbox.core import SandboxRefused
    from propflow_ops.sandbox.stopping import Stopped, stop_on_signals

    chosen = list(scenarios) or [DEFAULT_SCENARIO]
    t0 = time.monotonic()
    try:
        sandbox = Sandbox(chosen, database_url=database_url, redis_url=redis_url)
    except (UnknownScenarioError, SandboxRefused) as exc:
        print(f"propflow-ops: error: {exc}", file=sys.stderr)
        return 2
    out = output_root(output_dir).resolve()
    # This process is the sandbox's: the kernels and everything else it starts inherit no target.
    isolation.announce(isolation.scrub())
    began = utcnow()  # the incident starts when the demo does: the sandbox start counts against the RTO
    incident = "DEMO-" + began.strftime("%Y%m%dT%H%M%SZ")
    with stop_on_signals() as guard:
        pool: KernelPool | None = None
        try:
            pool = KernelPool(WORKERS)  # the kernels load the runbooks' imports while the sandbox starts
            return _demo(sandbox, pool, chosen, out, t0, began, incident)
        except Stopped as stop:
            print(f"propflow-ops demo: interrupted ({stop}); stopping", file=sys.stderr, flush=True)
            return stop.exit_code
        finally:
            guard.calm()
            _say("demo: stopping the sandbox")
            interrupted = guard.signum is not None
            if pool is not None:
                # interrupted: the kernels are killed, a worker still waiting on its dead kernel is not waited for
                pool.close(KILL_WAIT_S if interrupted else STOP_TIMEOUT_S, kill=interrupted)
            sandbox.stop()
            if interrupted:  # the runs cut short leave no half-built run folder in the demo's incident
                for partial in (out / incident).glob(".tmp-*"):
                    shutil.rmtree(partial, ignore_errors=True)


def _demo(
    sandbox: Any, pool: KernelPool, chosen: list[str], out: Path, t0: float, began: datetime, incident: str
) -> int:
    _say(f"demo: starting the sandbox with {', '.join(chosen)}...")
    sandbox.start()
    _say(f"demo: sandbox ready in {time.monotonic() - t0:.1f} s; incident {incident}, reports under {out}")
    env = {**sandbox.env, "PROPFLOW_OUTPUT_DIR": str(out)}

    def request(slug: str) -> RunRequest:
        return RunRequest(
            slug=slug,
            incident=incident,
            started_at=iso(began),
            output_dir=str(out),
            env=env,
            params=extra_params(slug, chosen),
            progress=False,
            severity="P0" if slug == "triage" and DEFAULT_SCENARIO in chosen else None,
        )

    _say("demo: triage...")
    triage = submit_step(pool, request("triage")).result()
    recs = list(triage.evidence.get("recommended_runbooks") or [])
    _say(
        f"demo: triage {triage.evidence.get('status', 'error')} in {triage.seconds:.1f} s; "
        f"recommends {', '.join(recs) or 'nothing'}"
    )
    runbooks: list[Step] = []
    if recs:
        _say(f"demo: running {', '.join(recs)} ({WORKERS} at a time)...")
        futures = [submit_step(pool, request(slug)) for slug in recs]
        for fut in as_completed(futures):
            step = fut.result()
            _say(f"demo:   {step.slug} {step.evidence.get('status', 'error')} in {step.seconds:.1f} s")
        runbooks = [f.result() for f in futures]
    _say("demo: escalate to the Slack, PagerDuty and SNS stand-ins...")
    for line in sandbox_escalation(sandbox, incident, str(out)):
        _say(line)
    _say("demo: post-incident review...")
    try:
        req = review_request(incident, str(out))
        review = submit_step(
            pool, replace(req, announce=False, progress=False, env={**env, **req.env})
        ).result()
    except BadInput as exc:
        review = Step("post-incident", 2, None, error=str(exc))
    _say("")
    _say(summary(chosen, incident, triage, runbooks, review, time.monotonic() - t0))
    produced = triage.folder is not None and review.folder is not None
    return 0 if produced else 3
