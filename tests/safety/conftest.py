"""Fixtures of the safety suite: every runbook that exists, run once per composite world and once per
dead-target world. Session-scoped (each test module reads the same runs) and pinned to one xdist worker
per fixture with ``xdist_group`` so that each set of runs happens once.

How the runs are made: in the healthy world (and the two runs started together) as `propflow-ops run`
processes, as an engineer would, so that every runbook goes through the real command once per world
set; in the fault worlds w1-w3 and against the dead targets through the command's own code in this
process with the notebook on a warm kernel (``harness.run_in_process``), which is what costs a run's
kernel start and imports once per kernel instead of once per run (PROPFLOW_TEST_IN_PROCESS=0: processes
for every run). Either way every AWS call goes through the recording (or throttling) proxy: it is the
kernel's AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from runs import end_pool, in_process, new_pool

from propflow_ops.sandbox import canaries as C

from .harness import (
    WORLDS,
    AwsProxy,
    RunRecord,
    SilentServer,
    StatusServer,
    closed_port,
    present_slugs,
    run_cli,
    run_in_process,
    world_state,
)

# Concurrent `propflow-ops run`s inside one fixture (the dead-target runs mostly wait on timeouts).
JOBS = int(os.environ.get("PROPFLOW_SAFETY_JOBS", "2"))
DEAD_JOBS = int(os.environ.get("PROPFLOW_SAFETY_DEAD_JOBS", "4"))
# A default run has no reason to take long; this only stops a hang from stalling CI.
RUN_TIMEOUT_S = 300.0
# The budget a run gets against dead and hanging targets (README "Safety"): the runbook's own timeouts
# must end it well inside; the runner's watchdog kills the kernel at the budget; the subprocess timeout
# (budget + margin for kernel start and the report) tells a hang from a slow run.
DEAD_BUDGET_S = 120.0
DEAD_TIMEOUT_S = DEAD_BUDGET_S + 90.0


@dataclass
class World:
    name: str
    scenarios: tuple[str, ...]
    output: Path
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)  # slug -> its default run
    twins: list[RunRecord] = field(default_factory=list)  # same runbook, same incident, started together


def _run_with_proxy(world: str, slug: str, env: dict[str, str], upstream: str, output: Path,
                    *args: str, throttle: bool = False, budget: float | None = None,
                    timeout: float = RUN_TIMEOUT_S, process: bool = False, pool: Any = None) -> RunRecord:
    """One run behind its own recording proxy: a `propflow-ops` process with ``process``, else in this
    process on a warm kernel of ``pool`` (default: the session's)."""
    proxy = AwsProxy(upstream, throttle=throttle)
    try:
        extra = ("--budget", f"{budget:g}") if budget else ()
        proxied = {**env, "AWS_ENDPOINT_URL": proxy.url}
        if process or not in_process():
            record = run_cli(world, slug, proxied, *args, *extra, output_dir=output, timeout=timeout)
        else:
            record = run_in_process(world, slug, proxied, *args, *extra, output_dir=output, timeout=timeout,
                                    pool=pool)
    finally:
        proxy.close()
    record.calls = list(proxy.calls)
    return record


@pytest.fixture(scope="session")
def worlds(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, World]]:
    """Every runbook with its defaults in every composite world; world state before and after."""
    root = tmp_path_factory.mktemp("safety-worlds")
    slugs = present_slugs(include_post_incident=False)
    out: dict[str, World] = {}
    try:
        for name, scenarios in WORLDS.items():
            sandbox.use(*scenarios)
            w = World(name, scenarios, root / name)
            w.before = world_state(sandbox)
            env = dict(sandbox.env)
            upstream = sandbox.aws.endpoint
            incident = ("--incident", f"SAFETY-{name}")
            process = name == "healthy"  # the real command once per runbook; the fault worlds in-process
            with ThreadPoolExecutor(JOBS) as pool:
                twin_jobs = []
                if name == "healthy" and "api-down" in slugs:
                    twin_jobs = [pool.submit(_run_with_proxy, name, "api-down", env, upstream, w.output,
                                             "--incident", "SAFETY-TWINS", process=True) for _ in range(2)]
                jobs = {slug: pool.submit(_run_with_proxy, name, slug, env, upstream, w.output, *incident,
                                          process=process)
                        for slug in slugs}
                w.runs = {slug: job.result() for slug, job in jobs.items()}
                w.twins = [job.result() for job in twin_jobs]
            if "post-incident" in present_slugs():
                w.runs["post-incident"] = _run_with_proxy(name, "post-incident", env, upstream, w.output,
                                                          *incident, process=process)
            w.after = world_state(sandbox)
            out[name] = w
        _write_timings(root, [r for w in out.values() for r in [*w.runs.values(), *w.twins]])
        yield out
    finally:
        sandbox.use()


def _write_timings(root: Path, records: list[RunRecord]) -> None:
    """How long each run took (timings.json beside the runs), to keep the README's numbers honest."""
    import json

    rows = {f"{r.label} {' '.join(r.args)}": round(r.seconds, 1) for r in records}
    (root / "timings.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------ dead targets


@dataclass
class DeadWorld:
    name: str
    description: str
    env: dict[str, str]
    throttle: bool = False
    runs: dict[str, RunRecord] = field(default_factory=dict)
    applied: RunRecord | None = None  # a step applied against this world (it must fail, recorded)


def _dead_worlds(sandbox_env: dict[str, str]) -> tuple[dict[str, DeadWorld], list[Any]]:
    silent, s500 = SilentServer(), StatusServer(500)
    refused = closed_port()
    pw = C.CANARY_DB_PASSWORD
    rpw = C.CANARY_REDIS_PASSWORD
    graph_version = sandbox_env["PROPFLOW_META_GRAPH_URL"].rstrip("/").rsplit("/", 1)[-1]
    worlds = {
        "refused": DeadWorld(
            "refused",
            "API, PostgreSQL and Redis refuse connections; Twilio and Meta answer 500",
            {
                "PROPFLOW_API_URL": f"http://127.0.0.1:{refused}",
                "PROPFLOW_DATABASE_URL": f"postgresql+psycopg://propflow:{pw}@127.0.0.1:{refused}/propflow",
                "PROPFLOW_REDIS_URL": f"redis://:{rpw}@127.0.0.1:{refused}/0",
                "PROPFLOW_TWILIO_API_URL": s500.url,
                "PROPFLOW_META_GRAPH_URL": f"{s500.url}/{graph_version}",
            },
        ),
        "hanging": DeadWorld(
            "hanging",
            "API, PostgreSQL, Redis, Twilio and Meta accept connections and never answer",
            {
                "PROPFLOW_API_URL": f"http://127.0.0.1:{silent.port}",
                "PROPFLOW_DATABASE_URL": f"postgresql+psycopg://propflow:{pw}@127.0.0.1:{silent.port}/propflow",
                "PROPFLOW_REDIS_URL": f"redis://:{rpw}@127.0.0.1:{silent.port}/0",
                "PROPFLOW_TWILIO_API_URL": f"http://127.0.0.1:{silent.port}",
                "PROPFLOW_META_GRAPH_URL": f"http://127.0.0.1:{silent.port}/{graph_version}",
            },
        ),
        "throttled": DeadWorld("throttled", "every AWS call answered with a throttling error", {}, throttle=True),
    }
    return worlds, [silent, s500]


@pytest.fixture(scope="session")
def dead_worlds(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DeadWorld]]:
    """Every runbook (but post-incident) against each dead-target world, with the suite's budget."""
    root = tmp_path_factory.mktemp("safety-dead")
    sandbox.use()
    base = dict(sandbox.env)
    upstream = sandbox.aws.endpoint
    worlds, servers = _dead_worlds(base)
    slugs = present_slugs(include_post_incident=False)
    kernels = new_pool(DEAD_JOBS) if in_process() else None  # the runs mostly wait on timeouts
    try:
        with ThreadPoolExecutor(DEAD_JOBS) as pool:
            jobs: dict[tuple[str, str], Any] = {}
            for w in worlds.values():
                env = {**base, **w.env}
                for slug in slugs:
                    jobs[(w.name, slug)] = pool.submit(
                        _run_with_proxy, w.name, slug, env, upstream, root / w.name, "--incident",
                        f"SAFETY-DEAD-{w.name}", throttle=w.throttle, budget=DEAD_BUDGET_S, timeout=DEAD_TIMEOUT_S,
                        pool=kernels)
            applied = None
            if "api-down" in slugs:
                w = worlds["throttled"]
                # the change lock in a local file: a throttled DynamoDB would refuse the step before it meets
                # the throttling this run is about
                lock_env = {"PROPFLOW_LOCK_TABLE": "", "PROPFLOW_LOCK_DIR": str(root / "locks")}
                applied = pool.submit(_run_with_proxy, "throttled", "api-down", {**base, **w.env, **lock_env},
                                      upstream, root / "applied", "--reason", "test", "--yes", "--apply",
                                      "force-new-deployment", throttle=True, budget=DEAD_BUDGET_S,
                                      timeout=DEAD_TIMEOUT_S, pool=kernels)
            for (wname, slug), job in jobs.items():
                worlds[wname].runs[slug] = job.result()
            if applied is not None:
                worlds["throttled"].applied = applied.result()
        _write_timings(root, [r for w in worlds.values() for r in [*w.runs.values(), w.applied] if r is not None])
        yield worlds
    finally:
        if kernels is not None:
            end_pool(kernels)
        for s in servers:
            s.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The first test to ask for a world fixture pays for all its runs: give those tests room."""
    here = Path(__file__).parent
    for item in items:
        names = getattr(item, "fixturenames", ())
        if here in Path(str(item.path)).parents and "worlds" in names or "dead_worlds" in names:
            item.add_marker(pytest.mark.timeout(2400))
