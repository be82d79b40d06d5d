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

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")
_timings_lock = threading.Lock()


@dataclass
class World:
    name: str
    scenarios: tuple[str, ...]
    output: Path
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)  # slug -> its default run
    twins: list[RunRecord] = field(default_factory=list)  # same runbook, same incident, started together


def _run_with_proxy(
    world: str,
    slug: str,
    env: dict[str, str],
    upstream: str,
    output: Path,
    *args: str,
    throttle: bool = False,
    budget: float | None = None,
    timeout: float = RUN_TIMEOUT_S,
    process: bool = False,
    pool: Any = None,
) -> RunRecord:
    """One run behind its own recording proxy: a `propflow-ops` process with ``process``, else in this
    process on a warm kernel of ``pool`` (default: the session's)."""
    proxy = AwsProxy(upstream, throttle=throttle)
    try:
        extra = ("--budget", f"{budget:g}") if budget else ()
        proxied = {**env, "AWS_ENDPOINT_URL": proxy.url}
        if process or not in_process():
            record = run_cli(world, slug, proxied, *args, *extra, output_dir=output, timeout=timeout)
        else:
            record = run_in_process(
                world, slug, proxied, *args, *extra, output_dir=output, timeout=timeout, pool=pool
            )
    finally:
        proxy.close()
    record.calls = list(proxy.calls)
    return record


class Lazy(Mapping[str, T]):
    """name -> what ``make(name)`` returns, made the first time a test asks for that name and kept for the
    session. Each name's tests share an xdist group of their own (``pytest_collection_modifyitems`` below),
    so each world is made once, on one worker, and the worlds are made on both workers at the same time
    instead of one after the other on one. A world that could not be made fails every test that asks for
    it with the same error (it is not made again)."""

    def __init__(self, names: Iterable[str], make: Callable[[str], T]) -> None:
        self._names = list(names)
        self._make = make
        self._made: dict[str, T] = {}
        self._failed: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> T:
        if name not in self._names:
            raise KeyError(name)
        with self._lock:
            if name in self._failed:
                raise self._failed[name]
            if name not in self._made:
                try:
                    self._made[name] = self._make(name)
                except Exception as exc:  # kept, and raised again for every test that asks
                    self._failed[name] = exc
                    raise
            return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _make_world(sandbox: Any, root: Path, name: str) -> World:
    """Every runbook with its defaults in the composite world ``name``; world state before and after; the
    sandbox healthy again afterwards."""
    slugs = present_slugs(include_post_incident=False)
    scenarios = WORLDS[name]
    try:
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
                twin_jobs = [
                    pool.submit(
                        _run_with_proxy,
                        name,
                        "api-down",
                        env,
                        upstream,
                        w.output,
                        "--incident",
                        "SAFETY-TWINS",
                        process=True,
                    )
                    for _ in range(2)
                ]
            jobs = {
                slug: pool.submit(
                    _run_with_proxy, name, slug, env, upstream, w.output, *incident, process=process
                )
                for slug in slugs
            }
            w.runs = {slug: job.result() for slug, job in jobs.items()}
            w.twins = [job.result() for job in twin_jobs]
        if "post-incident" in present_slugs():
            w.runs["post-incident"] = _run_with_proxy(
                name, "post-incident", env, upstream, w.output, *incident, process=process
            )
        w.after = world_state(sandbox)
    finally:
        sandbox.use()
    _write_timings(root, [*w.runs.values(), *w.twins])
    return w


@pytest.fixture(scope="session")
def worlds(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lazy[World]]:
    """Every runbook with its defaults in every composite world; world state before and after. A world is
    made when a test first asks for it (``worlds[name]``)."""
    root = tmp_path_factory.mktemp("safety-worlds")
    try:
        yield Lazy(WORLDS, lambda name: _make_world(sandbox, root, name))
    finally:
        sandbox.use()


def _write_timings(root: Path, records: list[RunRecord]) -> None:
    """How long each run took (timings.json beside the runs, added to as each world is made), to keep the
    README's numbers honest."""
    path = root / "timings.json"
    with _timings_lock:
        rows = json.loads(path.read_text()) if path.exists() else {}
        rows.update({f"{r.label} {' '.join(r.args)}": round(r.seconds, 1) for r in records})
        path.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


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
        "throttled": DeadWorld(
            "throttled", "every AWS call answered with a throttling error", {}, throttle=True
        ),
    }
    return worlds, [silent, s500]


def _make_dead_world(
    w: DeadWorld, base: dict[str, str], upstream: str, root: Path, kernels: Any
) -> DeadWorld:
    """Every runbook (but post-incident) against the dead world ``w`` with the suite's budget; against the
    throttled world also a step applied (it must fail, recorded)."""
    slugs = present_slugs(include_post_incident=False)
    env = {**base, **w.env}
    with ThreadPoolExecutor(DEAD_JOBS) as pool:
        jobs = {
            slug: pool.submit(
                _run_with_proxy,
                w.name,
                slug,
                env,
                upstream,
                root / w.name,
                "--incident",
                f"SAFETY-DEAD-{w.name}",
                throttle=w.throttle,
                budget=DEAD_BUDGET_S,
                timeout=DEAD_TIMEOUT_S,
                pool=kernels,
            )
            for slug in slugs
        }
        applied = None
        if w.name == "throttled" and "api-down" in slugs:
            # the change lock in a local file: a throttled DynamoDB would refuse the step before it meets
            # the throttling this run is about
            lock_env = {"PROPFLOW_LOCK_TABLE": "", "PROPFLOW_LOCK_DIR": str(root / "locks")}
            applied = pool.submit(
                _run_with_proxy,
                "throttled",
                "api-down",
                {**env, **lock_env},
                upstream,
                root / "applied",
                "--reason",
                "test",
                "--yes",
                "--apply",
                "force-new-deployment",
                throttle=True,
                budget=DEAD_BUDGET_S,
                timeout=DEAD_TIMEOUT_S,
                pool=kernels,
            )
        w.runs = {slug: job.result() for slug, job in jobs.items()}
        if applied is not None:
            w.applied = applied.result()
    _write_timings(root, [r for r in [*w.runs.values(), w.applied] if r is not None])
    return w


@pytest.fixture(scope="session")
def dead_worlds(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lazy[DeadWorld]]:
    """Every runbook (but post-incident) against each dead-target world, with the suite's budget. A world
    is made when a test first asks for it (``dead_worlds[name]``)."""
    root = tmp_path_factory.mktemp("safety-dead")
    sandbox.use()
    base = dict(sandbox.env)
    upstream = sandbox.aws.endpoint
    worlds, servers = _dead_worlds(base)
    kernels: list[Any] = []  # one pool for every dead world made here (the runs mostly wait on timeouts)

    def make(name: str) -> DeadWorld:
        if in_process() and not kernels:
            kernels.append(new_pool(DEAD_JOBS))
        return _make_dead_world(worlds[name], base, upstream, root, kernels[0] if kernels else None)

    try:
        yield Lazy(worlds, make)
    finally:
        for k in kernels:
            end_pool(k)
        for s in servers:
            s.close()


# The fixtures whose worlds are made one at a time (``Lazy``): fixture -> the world a test reads when it has no
# ``world`` parameter.
LAZY_WORLDS = {"worlds": "healthy", "dead_worlds": "throttled", "one_dead": None}


def world_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that reads a lazily made world: one per world (``safety-worlds-w1``), so
    that the worlds are made on both workers at once, each on one."""
    names = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    for fixture, default in LAZY_WORLDS.items():
        if fixture in names:
            world = params.get("world", default)
            return f"safety-{fixture.replace('_', '-')}-{world}" if world else f"safety-{fixture}"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that reads a world joins that world's xdist group; the first test to ask for a world pays for
    all its runs: give those tests room."""
    here = Path(__file__).parent
    for item in items:
        group = world_group(item) if here in Path(str(item.path)).parents else None
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        names = getattr(item, "fixturenames", ())
        if here in Path(str(item.path)).parents and "worlds" in names or "dead_worlds" in names:
            item.add_marker(pytest.mark.timeout(2400))
