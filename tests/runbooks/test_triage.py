"""triage end to end: every sandbox scenario names the right runbook; healthy names none; nothing changes."""

from __future__ import annotations

import pytest
from runs import healthy_run, nbval, watched

from propflow_ops.runbooks import RUNBOOKS
from propflow_ops.sandbox.scenarios import SCENARIOS

NOTEBOOK = RUNBOOKS["triage"].path
MODELS = "propflow_ops.sandbox.backend.models:Base"
COMPONENTS = (
    "TRIAGE_API",
    "TRIAGE_ECS",
    "TRIAGE_DATABASE",
    "TRIAGE_REDIS",
    "TRIAGE_WEBSOCKET",
    "TRIAGE_S3",
    "TRIAGE_ERRORS",
    "TRIAGE_NOTIFICATIONS",
    "TRIAGE_MIGRATIONS",
)

# scenario -> (the runbook triage must recommend, the component that must not be ok)
EXPECTED: dict[str, tuple[str, str]] = {
    "api-oom": ("api-down", "TRIAGE_ECS"),
    "api-bad-deploy": ("api-down", "TRIAGE_ECS"),
    "api-latency-high": ("api-latency", "TRIAGE_ERRORS"),
    "db-down": ("db-connection", "TRIAGE_DATABASE"),
    "db-pool-exhausted": ("db-connection", "TRIAGE_DATABASE"),
    "db-idle-in-transaction": ("db-connection", "TRIAGE_DATABASE"),
    "db-long-query": ("db-connection", "TRIAGE_DATABASE"),
    "db-url-mismatch": ("db-connection", "TRIAGE_DATABASE"),
    "db-backups-off": ("db-connection", "TRIAGE_DATABASE"),
    "s3-bucket-missing": ("photo-upload", "TRIAGE_S3"),
    "s3-write-denied": ("photo-upload", "TRIAGE_S3"),
    "s3-policy-overbroad": ("photo-upload", "TRIAGE_S3"),
    "s3-orphans": ("photo-upload", "TRIAGE_S3"),
    "redis-down": ("websocket", "TRIAGE_REDIS"),
    "redis-maxclients": ("websocket", "TRIAGE_REDIS"),
    "redis-memory-pressure": ("websocket", "TRIAGE_REDIS"),
    "ws-handshake-failing": ("websocket", "TRIAGE_WEBSOCKET"),
    "ws-reconnect-storm": ("websocket", "TRIAGE_WEBSOCKET"),
    "twilio-auth-failed": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "twilio-low-balance": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "whatsapp-token-expired": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "notify-send-errors": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "notify-config-missing": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "otp-endpoint-failing": ("notifications", "TRIAGE_NOTIFICATIONS"),
    "migration-pending": ("migration", "TRIAGE_MIGRATIONS"),
    "migration-multiple-heads": ("migration", "TRIAGE_MIGRATIONS"),
    "migration-unknown-revision": ("migration", "TRIAGE_MIGRATIONS"),
    "migration-object-exists": ("migration", "TRIAGE_MIGRATIONS"),
    "schema-drift": ("migration", "TRIAGE_MIGRATIONS"),
}
# Time-based PostgreSQL thresholds cannot be faked: these two scenarios run with 1 s instead of 60 s / 30 s.
LOW_DB_TIMES = ("-p", "idle_in_transaction_s", "1", "-p", "long_query_s", "1")
TRIAGE = ("triage", "-p", "models", MODELS)  # the slug and its arguments


def test_every_scenario_has_an_expectation():
    assert set(EXPECTED) | {"healthy"} == set(SCENARIOS)


def test_healthy_recommends_nothing_fails_nothing_and_changes_nothing(world, sandbox_env, tmp_path):
    run, _, after = healthy_run(world, sandbox_env, *TRIAGE, output_dir=tmp_path)
    assert {c: run.status_of(c) for c in COMPONENTS} == dict.fromkeys(COMPONENTS, "ok")
    assert run.evidence["recommended_runbooks"] == []
    assert after["http"]["otp_requests"] == 0
    assert run.evidence["incident"]["severity"] == "P1"


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_names_its_runbook(scenario, world, sandbox_env, tmp_path):
    runbook, component = EXPECTED[scenario]
    extra = LOW_DB_TIMES if scenario in ("db-idle-in-transaction", "db-long-query") else ()
    run, before, after = watched(world(scenario), sandbox_env, *TRIAGE, *extra, output_dir=tmp_path)
    recs = run.evidence.get("recommended_runbooks")
    assert recs is not None, run.proc.stderr[-2000:]
    assert recs[:1] == [runbook], (scenario, recs, run.fails())  # the right runbook comes first
    assert run.status_of(component) in ("fail", "warn"), (scenario, run.findings().get(component))
    assert set(COMPONENTS) <= set(run.findings())  # every component reported, whatever its status
    reasons = run.evidence["recommendation_reasons"]
    assert reasons[runbook].startswith(RUNBOOKS[runbook].severity + ":")
    severities = [RUNBOOKS[s].severity for s in recs]
    assert severities == sorted(severities)  # most severe first
    assert after["http"] == before["http"]  # the OTP probe sent nothing
    assert after["migrations"] == before["migrations"] and after["ecs"] == before["ecs"]
    assert after["s3"] == before["s3"]
    if scenario == "api-oom":  # the API is down: probes through it (ws, OTP, latency) point at api-down only
        assert recs == ["api-down"] and run.code == 1
        assert run.status_of("TRIAGE_API") == "fail" and run.status_of("TRIAGE_WEBSOCKET") == "fail"
        checks = {c["code"]: c["status"] for c in run.findings()["TRIAGE_ECS"]["data"]["checks"]}
        assert checks["ECS_TASK_OOM"] == "fail" and checks["ECS_SERVICE_DEGRADED"] == "fail"
    if scenario in ("db-down", "redis-down"):  # /health names the dependency: its runbook, not api-down
        assert "api-down" not in recs and run.status_of("TRIAGE_API") == "fail"


def test_notebook_runs_top_to_bottom_under_nbval(world, sandbox_env):
    world()
    proc = nbval(NOTEBOOK, sandbox_env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
