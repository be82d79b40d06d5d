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


def test_a_failed_fetch_keeps_whether_the_target_was_unreachable():
    refused = fetch.fetch(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")), target="dead")
    answered = fetch.fetch(lambda: (_ for _ in ()).throw(LookupError("no such service")), target="no")
    assert reach.unreachable(refused.error) and not reach.unreachable(answered.error)
    with pytest.raises(KeyboardInterrupt):  # only Exception is returned
        fetch.fetch(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))


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


def test_sources_fetched_return_the_failure_when_the_target_answers_no(aws_env, unique):
    start, end = _window()
    group = f"/nope/{unique}"
    logs = fetch.fetch(logsrc.fetch_log_events, group, start, end)
    assert isinstance(logs.error, FetchError) and "ResourceNotFound" in str(logs.error) and logs.value is None
    assert not reach.unreachable(logs.error)  # answered "no": the check reports error, not fail
    td = fetch.fetch(s3.service_task_definition, "no-cluster", "no-service", f"fam-{unique}")
    assert td.error and td.value is None and s3.task_env(td) == {}
    settings = fetch.fetch(twilio.task_settings, "no-cluster", "no-service", f"fam-{unique}")
    assert settings.error and not reach.unreachable(settings.error) and settings.value is None
    not_found = fetch.fetch(twilio.task_settings, "no-cluster", "no-service")
    assert not_found.error and "not found" in str(not_found.error) and not reach.unreachable(not_found.error)


def test_sources_fetched_return_the_failure_when_the_target_is_dead(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    aws.clear_cache()
    start, end = _window()
    logs = fetch.fetch(logsrc.fetch_log_events, "/any", start, end)
    assert (
        isinstance(logs.error, FetchError) and reach.unreachable(logs.error) and "connect" in str(logs.error)
    )
    settings = fetch.fetch(twilio.task_settings, "c", "s", "f")
    assert settings.error and reach.unreachable(settings.error)
    td = fetch.fetch(s3.service_task_definition, "c", "s", "f")
    assert "connect" in str(td.error) and td.value is None
