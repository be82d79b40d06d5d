"""sources.fetch (error as value) and the wrappers that use it, against a real moto server and a closed port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from propflow_ops import reach
from propflow_ops.sources import apidb, aws, fetch, s3, twilio
from propflow_ops.sources.rds import FetchError

from .conftest import free_port


def test_attempt_returns_the_value_or_the_handled_failure():
    assert fetch.attempt(lambda: 42, lambda exc: -1) == 42
    failure = fetch.attempt(lambda: 1 / 0, lambda exc: exc)
    assert isinstance(failure, ZeroDivisionError)
    assert fetch.attempt(lambda: int("x"), lambda exc: f"{type(exc).__name__}") == "ValueError"
    with pytest.raises(KeyboardInterrupt):  # only Exception is returned
        fetch.attempt(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), lambda exc: exc)


def test_apidb_attempt_returns_a_one_line_fetch_error():
    assert apidb.attempt(int, "7") == 7
    err = apidb.attempt(int, "not a number")
    assert isinstance(err, FetchError) and str(err).startswith("ValueError: invalid literal")


def _window() -> tuple[datetime, datetime]:
    end = datetime.now(UTC)
    return end - timedelta(minutes=5), end


def test_wrappers_return_the_failure_when_the_target_answers_no(aws_env, unique):
    start, end = _window()
    group = f"/nope/{unique}"
    logs = s3.log_events(group, start, end)
    assert type(logs) is RuntimeError and "ResourceNotFound" in str(logs)
    raw = twilio.notification_logs(group, start, end)
    assert isinstance(raw, Exception) and not isinstance(raw, pd.DataFrame)
    assert not reach.unreachable(raw)  # answered "no": the check reports error, not fail
    td = s3.service_task_definition("no-cluster", "no-service", f"fam-{unique}")
    assert td["error"] and td["task_definition"] is None and td["env"] == {} and td["role_arn"] is None
    settings = twilio.task_settings("no-cluster", "no-service", f"fam-{unique}")
    assert settings.error and not settings.unreachable and settings.names == {}
    not_found = twilio.task_settings("no-cluster", "no-service")
    assert not_found.error and "not found" in not_found.error and not not_found.unreachable


def test_wrappers_return_the_failure_when_the_target_is_dead(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    aws.clear_cache()
    start, end = _window()
    raw = twilio.notification_logs("/any", start, end)
    assert isinstance(raw, Exception) and reach.unreachable(raw)
    settings = twilio.task_settings("c", "s", "f")
    assert settings.error and settings.unreachable
    logs = s3.log_events("/any", start, end)
    assert type(logs) is RuntimeError and "connect" in str(logs)
    assert "connect" in s3.service_task_definition("c", "s", "f")["error"]
    assert isinstance(apidb.logs("/any", start, end), FetchError)
