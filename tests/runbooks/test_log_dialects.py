"""Runbooks on logs they were not written for (issue 15).

The sandbox writes the same world's API logs in another dialect (``Sandbox.use(...,
log_dialect=NAME)``, ``propflow-ops sandbox --log-dialect NAME``): ``python-json``
(python-json-logger field names, the request nested under ``http``, durations in seconds,
no ``event`` field) and ``text`` (gunicorn access lines, Python logging lines, tracebacks).
Every log-dependent fault scenario must be found in both; the healthy world in every
dialect must report no ``fail`` and no ``error``, and say which dialect it read.
(The ``propflow`` dialect's fault scenarios are the other runbook tests.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from runs import propflow_ops

from propflow_ops.sandbox.logs import DIALECTS, UnknownDialectError

OTHER_DIALECTS = tuple(d for d in DIALECTS if d != "propflow")
#: runbook -> the log-based codes it reports.
LOG_RUNBOOKS = {
    "api-down": ("LOG_ERROR_SPIKE",),
    "db-connection": ("DB_CONNECTION_REFUSED",),
    "api-latency": ("API_LATENCY_HIGH", "DB_SLOW_QUERIES"),
    "photo-upload": ("UPLOAD_ERRORS_IN_LOGS",),
    "websocket": ("WS_RECONNECT_SPIKE",),
    "notifications": ("NOTIFY_SEND_ERRORS",),
    "migration": ("MIGRATION_OBJECT_EXISTS",),
}
#: scenario -> (runbook, the log-based codes that must fail).
LOG_FAULTS = {
    "api-oom": ("api-down", ("LOG_ERROR_SPIKE",)),
    "api-latency-high": ("api-latency", ("API_LATENCY_HIGH", "DB_SLOW_QUERIES")),
    "db-down": ("db-connection", ("DB_CONNECTION_REFUSED",)),
    "db-pool-exhausted": ("db-connection", ("DB_POOL_EXHAUSTED",)),
    "s3-write-denied": ("photo-upload", ("UPLOAD_ERRORS_IN_LOGS",)),
    "s3-bucket-missing": ("photo-upload", ("UPLOAD_ERRORS_IN_LOGS",)),
    "redis-down": ("websocket", ("WS_RECONNECT_SPIKE",)),
    "ws-reconnect-storm": ("websocket", ("WS_RECONNECT_SPIKE",)),
    "notify-send-errors": ("notifications", ("NOTIFY_SEND_ERRORS",)),
    "migration-object-exists": ("migration", ("MIGRATION_OBJECT_EXISTS",)),
}


@pytest.fixture
def dialect_world(sandbox) -> Iterator[Callable[..., object]]:
    """``dialect_world(dialect, *scenarios)``: the world with its logs in ``dialect``; back to the default after."""

    def use(dialect: str, *names: str) -> object:
        sandbox.use(*names, log_dialect=dialect)
        return sandbox

    yield use
    sandbox.use(log_dialect="propflow")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_healthy_world_in_every_dialect_has_no_fail_or_error(dialect, dialect_world, sandbox_env, tmp_path):
    dialect_world(dialect)
    for slug, codes in LOG_RUNBOOKS.items():
        run = propflow_ops(sandbox_env, "run", slug, output_dir=tmp_path / slug)
        assert run.code == 0, (slug, run.proc.stderr[-2000:], run.fails())
        bad = {c: f["status"] for c, f in run.findings().items() if f["status"] in ("fail", "error")}
        assert bad == {}, (dialect, slug, bad)
        understood = run.findings()["LOGS_UNPARSED"]
        assert understood["status"] == "ok", (dialect, slug, understood)
        for code in codes:
            assert run.status_of(code) in ("ok", "skipped"), (dialect, slug, code, run.findings().get(code))
    latency = propflow_ops(sandbox_env, "run", "api-latency", output_dir=tmp_path / "latency-again")
    logs = latency.findings()["API_LATENCY_HIGH"]["data"]["logs"]
    assert logs["understood"] == logs["lines"] and logs["kinds"]["request"] > 1000
    expected = {"propflow": "json", "python-json": "json (", "text": "text ("}[dialect]
    assert logs["dialect"].startswith(expected), logs["dialect"]
    assert latency.findings()["API_LATENCY_HIGH"]["data"]["source"] == "logs"


@pytest.mark.parametrize("dialect", OTHER_DIALECTS)
@pytest.mark.parametrize("scenario", list(LOG_FAULTS))
def test_log_faults_found_in_other_dialects(scenario, dialect, dialect_world, sandbox_env, tmp_path):
    slug, codes = LOG_FAULTS[scenario]
    dialect_world(dialect, scenario)
    run = propflow_ops(sandbox_env, "run", slug, output_dir=tmp_path)
    assert run.code == 1, (run.proc.stderr[-2000:], run.fails())
    for code in codes:
        assert run.status_of(code) == "fail", (scenario, dialect, code, run.findings().get(code))
    assert run.status_of("LOGS_UNPARSED") == "ok", run.findings().get("LOGS_UNPARSED")
    from_logs = [
        f for f in run.evidence["findings"] if f["code"] in codes and f["data"].get("source") != "twilio"
    ]
    assert from_logs and {f["status"] for f in from_logs} == {"fail"}, from_logs  # the logs' own finding too
    if scenario == "notify-send-errors":
        per_provider = {r["provider"] for r in from_logs[0]["data"]["per_provider"]}
        assert per_provider == {"twilio", "whatsapp"}, per_provider
    if scenario == "s3-write-denied":
        assert run.findings()["UPLOAD_ERRORS_IN_LOGS"]["data"]["by_type"] == {"AccessDenied": 60}


def test_unknown_dialect_is_refused(sandbox):
    with pytest.raises(UnknownDialectError):
        sandbox.use(log_dialect="klingon")


def test_sandbox_command_refuses_an_unknown_dialect(sandbox_env):
    run = propflow_ops(sandbox_env, "sandbox", "--log-dialect", "klingon", timeout=60)
    assert run.code == 2 and "unknown log dialect 'klingon'" in run.proc.stderr
    assert "Traceback" not in run.proc.stderr


def test_bad_log_mapping_is_bad_input(sandbox_env, tmp_path):
    run = propflow_ops(
        sandbox_env,
        "run",
        "photo-upload",
        "-p",
        "log_mapping",
        '{"fields": {"statuz": "x"}}',
        output_dir=tmp_path,
    )
    assert run.code == 2, run.proc.stderr[-2000:]
    assert "log_mapping.fields.statuz" in run.proc.stderr and "Traceback" not in run.proc.stderr
    assert not list(tmp_path.glob("*/*"))  # nothing half-written
