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
