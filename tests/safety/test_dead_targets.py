"""3. Dead and hanging targets: API refusing or never answering, PostgreSQL and Redis refusing or never
answering, Twilio and Meta answering 500 or never answering, AWS throttling every call. Each runbook
finishes inside its budget on its own timeouts (not killed by the watchdog, never hung), writes its report,
reports the affected checks as fail or error with the reason, and exits 1 or 3."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from runs import end_pool, in_process, new_pool

from propflow_ops.findings import STATUS_ORDER
from propflow_ops.sandbox import canaries as C

from .conftest import DEAD_BUDGET_S, Lazy, _write_timings
from .harness import DripServer, RunRecord, SilentServer, present_slugs, run_cli, run_in_process

# Each test reads one dead world: its xdist group is that world's (conftest.world_group).
pytestmark = [pytest.mark.slow]

SLUGS = present_slugs(include_post_incident=False)

# The contract's codes (CONTRACT.md 6) whose input comes from each target.
API = {"API_HEALTH_FAILING", "WS_HANDSHAKE_FAILING"}
DATABASE = {
    "DB_UNREACHABLE",
    "DB_POOL_EXHAUSTED",
    "DB_IDLE_IN_TRANSACTION",
    "DB_LONG_RUNNING_QUERY",
    "DB_SLOW_QUERIES",
    "DB_MISSING_INDEX",
    "MIGRATION_PENDING",
    "MIGRATION_UNKNOWN_REVISION",
    "SCHEMA_DRIFT",
    "S3_ORPHANED_UPLOADS",
}
REDIS = {"REDIS_UNREACHABLE", "REDIS_MEMORY_PRESSURE", "REDIS_CLIENTS_EXHAUSTED"}
PROVIDERS = {"TWILIO_AUTH_FAILED", "TWILIO_BALANCE_LOW", "WHATSAPP_API_FAILING"}
AWS = {
    "ECS_SERVICE_DEGRADED",
    "ECS_TASK_OOM",
    "ECS_MEMORY_HIGH",
    "ECS_DEPLOYMENT_FAILED",
    "LOG_ERROR_SPIKE",
    "RDS_NOT_AVAILABLE",
    "DB_URL_MISMATCH",
    "DB_RPO_AT_RISK",
    "API_LATENCY_HIGH",
    "RDS_CPU_HIGH",
    "ECS_CPU_HIGH",
    "S3_BUCKET_MISSING",
    "S3_WRITE_DENIED",
    "S3_POLICY_OVERBROAD",
    "UPLOAD_ERRORS_IN_LOGS",
    "S3_ORPHANED_UPLOADS",
    "REDIS_NOT_AVAILABLE",
    "WS_RECONNECT_SPIKE",
    "MIGRATION_OBJECT_EXISTS",
}
AFFECTED = {
    "refused": API | DATABASE | REDIS | PROVIDERS,
    "hanging": API | DATABASE | REDIS | PROVIDERS,
    "throttled": AWS,
}
# Codes that must say "unreachable" outright (fail), not merely "could not check" (CONTRACT.md 2).
UNREACHABLE = {"DB_UNREACHABLE", "REDIS_UNREACHABLE", "API_HEALTH_FAILING"}


# A target that does not answer is a fail (CONTRACT.md 2), so the run exits 1 (or 3): a runbook that checks the
# target itself reports it under its own code; every other run gets it from propflow_ops.reach at ev.save().
DEAD_TARGET_FAIL = {"refused": "DB_UNREACHABLE", "hanging": "DB_UNREACHABLE", "throttled": "AWS_UNREACHABLE"}
# Skipped for want of configuration, whatever the target does: not a dead target read as healthy.
SKIP_OK = {"SCHEMA_DRIFT": "models"}


@pytest.mark.parametrize("world", list(AFFECTED))
@pytest.mark.parametrize("slug", SLUGS)
def test_the_runbook_finishes_with_a_report_on_its_own_timeouts(dead_worlds, world, slug):
    run = dead_worlds[world].runs[slug]
    assert run.code != -9, "HUNG: " + run.explain()
    assert run.folder is not None and run.evidence, run.explain()
    assert {"report.ipynb", "report.html", "evidence.json", "SHA256SUMS"} <= {
        p.name for p in run.folder.iterdir()
    }
    error = run.evidence.get("error") or ""
    assert "budget" not in error, f"{run.label}: only the watchdog stopped it ({DEAD_BUDGET_S:g} s): {error}"
    assert run.evidence["status"] != "error", f"{run.label} crashed against a dead target: {error}"
    assert run.seconds < DEAD_BUDGET_S + 60, run.explain()


@pytest.mark.parametrize("world", list(AFFECTED))
@pytest.mark.parametrize("slug", SLUGS)
def test_a_dead_target_never_reads_as_all_clear(dead_worlds, world, slug):
    run = dead_worlds[world].runs[slug]
    assert run.code in (1, 3), run.explain()
    findings = run.findings()
    code = DEAD_TARGET_FAIL[world]
    if slug not in ("notifications", "websocket") or world == "throttled":  # those two never use the database
        assert findings.get(code, {}).get("status") == "fail", f"{run.label}: {code} is {findings.get(code)}"


@pytest.mark.parametrize("world", list(AFFECTED))
@pytest.mark.parametrize("slug", SLUGS)
def test_affected_checks_are_fail_or_error_with_the_reason(dead_worlds, world, slug):
    run = dead_worlds[world].runs[slug]
    findings = run.findings()
    assert findings, run.explain()

    def acceptable(code: str, f: dict) -> bool:
        if f["status"] == "skipped" and SKIP_OK.get(code, "\0") in (f.get("detail") or ""):
            return True
        return f["status"] in ("fail", "error") and bool(f.get("detail"))

    wrong = {
        code: f"{f['status']}: {(f.get('detail') or '')[:120]}"
        for code, f in findings.items()
        if code in AFFECTED[world] and not acceptable(code, f)
    }
    assert wrong == {}, f"{run.label}: checks whose input is dead report as if healthy: {wrong}"
    if world != "throttled":
        soft = {
            c: findings[c]["status"] for c in UNREACHABLE & set(findings) if findings[c]["status"] != "fail"
        }
        assert soft == {}, f"{run.label}: an unreachable target must be a fail: {soft}"


@pytest.mark.parametrize("world", ["refused", "hanging"])
@pytest.mark.parametrize("slug", SLUGS)
def test_dead_targets_still_make_no_mutating_call(dead_worlds, world, slug):
    run = dead_worlds[world].runs[slug]
    mutating = sorted({str(c) for c in run.calls if not c.read_only})
    assert mutating == [], f"{run.label}: {mutating}"


def test_throttling_proxy_really_throttled(dead_worlds):
    runs = dead_worlds["throttled"].runs.values()
    calls = [c for r in runs for c in r.calls]
    assert calls, "no AWS call reached the throttling proxy"
    # boto3 retried (standard mode) and gave up: more attempts than distinct operations
    assert len(calls) > len({(c.service, c.operation) for c in calls})


# ------------------------------------------------------------------ one timeout per dead target
#
# One target dead at a time, the rest of the world healthy: an AWS endpoint that accepts and never answers, a
# database that accepts TCP and never answers, an API (and Twilio, Meta) that answers one byte every 2 s.
# Every network call has a total deadline and a target that timed out once fails the run's later calls at
# once (propflow_ops.reach breakers), so each runbook's report is written well inside a 90 s budget (the
# target on this machine is 60 s) with the target's finding as fail. Not a timing test: a regression shows
# as the watchdog's `error` at 90 s, a missing report or a finding that is not fail.

SLOW_BUDGET_S = 90.0
SLOW_TIMEOUT_S = SLOW_BUDGET_S + 90.0
SLOW_JOBS = int(os.environ.get("PROPFLOW_SAFETY_DEAD_JOBS", "3"))
# world -> {runbook: the finding that must be fail}; a runbook absent from the map must still finish clean
ONE_DEAD: dict[str, dict[str, str]] = {
    "aws-hanging": dict.fromkeys(SLUGS, "AWS_UNREACHABLE"),
    "db-hanging": {s: "DB_UNREACHABLE" for s in SLUGS if s not in ("notifications", "websocket")},
    "api-dripping": {
        s: c
        for s, c in {
            "api-down": "API_HEALTH_FAILING",
            "triage": "API_HEALTH_FAILING",
            "websocket": "WS_HANDSHAKE_FAILING",
        }.items()
        if s in SLUGS
    },
}


@pytest.fixture(scope="session")  # not torn down when another module's tests run between two worlds' groups
def one_dead(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lazy[dict[str, RunRecord]]]:
    """world -> runbook -> its run, each world made when a test first asks for it (its own xdist group); the
    runs in this process on warm kernels, like the other dead-target runs (PROPFLOW_TEST_IN_PROCESS=0:
    `propflow-ops run` processes)."""
    root = tmp_path_factory.mktemp("safety-one-dead")
    sandbox.use()
    base = dict(sandbox.env)
    silent, drip = SilentServer(), DripServer(2.0)
    graph_version = base["PROPFLOW_META_GRAPH_URL"].rstrip("/").rsplit("/", 1)[-1]
    pw = C.CANARY_DB_PASSWORD
    envs = {
        "aws-hanging": {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.port}"},
        "db-hanging": {
            "PROPFLOW_DATABASE_URL": f"postgresql+psycopg://propflow:{pw}@127.0.0.1:{silent.port}/propflow"
        },
        "api-dripping": {
            "PROPFLOW_API_URL": drip.url,
            "PROPFLOW_TWILIO_API_URL": drip.url,
            "PROPFLOW_META_GRAPH_URL": f"{drip.url}/{graph_version}",
        },
    }
    kernels: list[Any] = []

    def make(w: str) -> dict[str, RunRecord]:
        if in_process() and not kernels:
            kernels.append(new_pool(SLOW_JOBS))
        run = functools.partial(run_in_process, pool=kernels[0]) if kernels else run_cli
        with ThreadPoolExecutor(SLOW_JOBS) as pool:
            jobs = {
                slug: pool.submit(
                    run,
                    w,
                    slug,
                    {**base, **envs[w]},
                    "--incident",
                    f"SAFETY-ONE-{w}",
                    "--budget",
                    f"{SLOW_BUDGET_S:g}",
                    output_dir=root / w,
                    timeout=SLOW_TIMEOUT_S,
                )
                for slug in SLUGS
            }
            out = {slug: job.result() for slug, job in jobs.items()}
        _write_timings(root, list(out.values()))
        return out

    try:
        yield Lazy(envs, make)
    finally:
        for k in kernels:
            end_pool(k)
        silent.close()
        drip.close()


@pytest.mark.timeout(1800)  # the first test pays for every run of the fixture
@pytest.mark.parametrize("world", list(ONE_DEAD))
@pytest.mark.parametrize("slug", SLUGS)
def test_one_dead_target_costs_one_timeout_and_the_report_says_so(one_dead, world, slug):
    run = one_dead[world][slug]
    assert run.code != -9, "HUNG: " + run.explain()
    assert run.folder is not None and run.evidence, run.explain()
    assert {"report.ipynb", "report.html", "evidence.json", "SHA256SUMS"} <= {
        p.name for p in run.folder.iterdir()
    }
    error = run.evidence.get("error") or ""
    assert "budget" not in error, f"{run.label}: only the watchdog stopped it ({SLOW_BUDGET_S:g} s): {error}"
    assert run.evidence["status"] != "error", f"{run.label} crashed against a dead target: {error}"
    code = ONE_DEAD[world].get(slug)
    if code:
        found = _status(run, code)
        assert found == "fail", f"{run.label}: {code} is {found}\n{run.explain()}"


def _status(run: RunRecord, code: str) -> str | None:
    """The worst status of ``code`` in the run: a finding of its own, or a sub-check a triage component folded."""
    order = STATUS_ORDER  # worst first; str keys find the StrEnum members
    seen = [f["status"] for f in run.evidence.get("findings", []) if f["code"] == code]
    seen += [
        c["status"]
        for f in run.evidence.get("findings", [])
        for c in (f.get("data") or {}).get("checks", [])
        if isinstance(c, dict) and c.get("code") == code
    ]
    return min(seen, key=lambda s: order.get(s, 9)) if seen else None
