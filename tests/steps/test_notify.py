"""steps.notify: send-test-otp against the API stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from propflow_ops.sandbox.standins import StandinServers, StandinState
from propflow_ops.steps import notify


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StandinServers, StandinState]]:
    state = StandinState()
    state.reset()
    srv = StandinServers(state, {})
    srv.start()
    yield srv, state
    srv.stop()


def test_plan_is_the_documents_curl_and_sends_nothing(servers):
    srv, state = servers
    state.reset()
    step = notify.send_test_otp(srv.url("api"), "+919999900001")
    assert step.name == "send-test-otp"
    assert step.command.startswith(f"curl -X POST {srv.url('api')}/api/v1/auth/login/otp")
    assert '{"phone": "+919999900001"}' in step.command
    assert "real SMS" in step.risk
    assert state.otp_requests == []


def test_execute_sends_exactly_one_otp(servers):
    srv, state = servers
    state.reset()
    result = notify.send_test_otp(srv.url("api") + "/", "+919999900001").execute()
    assert result["http_status"] == 200 and result["response"] == "OTP sent"
    assert state.otp_requests == ["+919999900001"]


def test_execute_reports_a_failing_endpoint(servers):
    srv, state = servers
    state.reset()
    state.otp_failing = True
    result = notify.send_test_otp(srv.url("api"), "+919999900001").execute()
    assert result["http_status"] == 500
    assert state.otp_requests == []


def test_unreachable_raises_so_the_step_is_recorded_failed():
    with pytest.raises(ConnectionError):
        notify.send_test_otp("http://127.0.0.1:9", "+919999900001", timeout_s=2).execute()
    assert notify.send_test_otp("http://x", " ").precondition == "no test_phone given"


def test_verification_is_the_one_answer_it_got_not_a_minute_of_polling(servers, monkeypatch):
    """The step's verdict is the HTTP status it got: re-reading it cannot change it, so a failing endpoint is
    "not verified" at once (no 60 s wait, no second SMS), a 2xx verified at once."""
    from propflow_ops.change.verify import wait_until

    monkeypatch.setenv("PROPFLOW_VERIFY_TIMEOUT_S", "60")
    srv, state = servers
    state.reset()
    state.otp_failing = True
    step = notify.send_test_otp(srv.url("api"), "+919999900001")
    assert step.verify is not None and step.execute is not None
    failed = wait_until(step.verify(step.execute(), {}))
    assert failed.verified is False and failed.seen == "OTP endpoint answered HTTP 500", failed
    assert failed.waited_s < 1.0
    state.reset()
    ok = wait_until(step.verify(step.execute(), {}))
    assert ok.verified is True and ok.seen == "OTP endpoint answered HTTP 200" and ok.waited_s < 1.0
    assert state.otp_requests == ["+919999900001"]  # one per execute, none from verifying
