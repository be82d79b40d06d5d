"""sources.fetch (error as value) and the wrappers that use it, against a real moto server and a closed port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from propflow_ops import reach
from propflow_ops.results import Fetched, frame, takes_fetched
from propflow_ops.sources import aws, fetch, s3, twilio
from propflow_ops.sources import logs as logsrc
from propflow_ops.sources.rds import FetchError

from .conftest import free_port


def test_attempt_returns_the_value_or_the_handled_failure():
    assert fetch.attempt(lambda: 42, lambda exc: -1) == 42
    failure = fetch.attempt(lambda: 1 / 0, lambda exc: exc)
    assert isinstance(failure, ZeroDivisionError)
    assert fetch.attempt(lambda: int("x"), lambda exc: f"{type(exc).__name__}") == "ValueError"
    with pytest.raises(KeyboardInterrupt):  # only Exception is returned
        fetch.attempt(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), lambda exc: exc)


def test_fetch_returns_the_value_or_a_one_line_fetch_error_with_target_and_time():
    got = fetch.fetch(int, "7")
    assert got.ok and got.value == 7 and got.error is None and got.target == "int(7)" and got.seconds >= 0
    err = fetch.fetch(int, "not a number", target="parse")
    assert not err.ok and err.value is None and err.target == "parse"
    assert isinstance(err.error, FetchError) and str(err.error).startswith("ValueError: invalid literal")
    assert err.outcome is err.error and got.outcome == 7
    assert "not a number" not in repr(fetch.fetch(dict, secret="not a number"))  # the value is never shown


def test_checks_judge_a_fetched_as_its_value_or_its_error():
    @takes_fetched
    def judged(x: object, *, y: object = None) -> tuple[object, object]:
        return x, y

    failed = fetch.fetch(int, "x")
    assert judged(fetch.fetch(int, "3"), y=failed) == (3, failed.error)
    assert judged(5) == (5, None)  # plain values pass through
    assert frame(failed).empty and frame(Fetched(pd.DataFrame({"a": [1]}))).shape == (1, 1)


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
    got = fetch.fetch(logsrc.fetch_log_events, "/any", start, end)
    assert isinstance(got.error, FetchError) and got.value is None
