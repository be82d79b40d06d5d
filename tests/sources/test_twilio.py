"""sources.twilio against the sandbox's Twilio stand-in on loopback (and a closed port)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from propflow_ops.errors import NoAnswer
from propflow_ops.sandbox import canaries as C
from propflow_ops.sandbox.standins import StandinServers, StandinState, failing_messages
from propflow_ops.sources import twilio
from sources.conftest import free_port


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StandinServers, StandinState]]:
    state = StandinState()
    state.reset()
    srv = StandinServers(state, {})
    srv.start()
    yield srv, state
    srv.stop()


@pytest.fixture
def cfg(servers):
    srv, state = servers
    state.reset()
    return twilio.config(
        {
            "TWILIO_ACCOUNT_SID": C.TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": C.CANARY_TWILIO_AUTH_TOKEN,
            "PROPFLOW_TWILIO_API_URL": srv.url("twilio") + "/",
        }
    )


def test_config_defaults_and_missing():
    cfg = twilio.config({})
    assert cfg.api_url == "https://api.twilio.com"
    assert cfg.missing == ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
    assert C.CANARY_TWILIO_AUTH_TOKEN not in repr(
        twilio.config({"TWILIO_AUTH_TOKEN": C.CANARY_TWILIO_AUTH_TOKEN})
    )
    res = twilio.account(cfg)
    assert res.value is None and res.error is None  # the empty Fetched: not configured
    assert res.target == "twilio account (not configured: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN not set)"
    unset = twilio.messages(cfg)
    assert unset.value is None and unset.error is None and "TWILIO_ACCOUNT_SID" in unset.target


def test_account_and_balance(cfg, servers):
    acct = twilio.account(cfg)
    assert acct.ok and acct.value.status == 200 and acct.value.body["status"] == "active"
    assert acct.value.problem is None and acct.target == acct.value.url and acct.target.endswith(".json")
    bal = twilio.balance(cfg)
    assert bal.ok and bal.value.body == {
        "account_sid": C.TWILIO_ACCOUNT_SID,
        "balance": "152.30",
        "currency": "USD",
    }
    servers[1].twilio_balance = "3.17"
    assert twilio.balance(cfg).value.body["balance"] == "3.17"


def test_rejected_credentials_give_the_twilio_error(cfg, servers):
    servers[1].twilio_auth_failed = True
    res = twilio.account(cfg)
    assert (res.ok, res.value.ok, res.value.status) == (True, False, 401)  # an answer: the value
    assert res.value.problem == "HTTP 401: code 20003, Authenticate"
    assert C.CANARY_TWILIO_AUTH_TOKEN not in res.value.url + str(res.value.problem) + repr(res.value) + repr(
        res
    )
    msgs = twilio.messages(cfg)
    assert msgs.value is None and str(msgs.error) == "HTTP 401: code 20003, Authenticate"
    assert msgs.error.unreachable is False


def test_messages_frame_typed_without_phone_numbers(cfg, servers):
    servers[1].twilio_messages = failing_messages()
    out = twilio.messages(cfg, page_size=30)
    assert out.ok
    df = out.value
    assert list(df.columns) == twilio.MESSAGE_COLUMNS
    assert len(df) == 30
    assert str(df["date_created"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(df["date_created"].dtype)
    assert df["date_created"].is_monotonic_decreasing
    assert set(df["status"]) == {"delivered", "failed", "undelivered"}
    assert df.loc[df["status"] == "delivered", "error_code"].isna().all()
    assert set(df["error_code"].dropna()) <= {30003, 30005, 30007, 21211, 21610, 21408}
    assert C.CANARY_PHONE_IN not in df.to_string()


def test_unreachable_returns_an_error_quickly():
    cfg = twilio.config(
        {
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "t",
            "PROPFLOW_TWILIO_API_URL": f"http://127.0.0.1:{free_port()}",
        }
    )
    res = twilio.account(cfg, timeout_s=2)
    assert res.value is None and isinstance(res.error, NoAnswer) and str(res.error).startswith("unreachable:")
    assert res.error.unreachable is True and res.error.attempts == 1
    msgs = twilio.messages(cfg, timeout_s=2)
    assert not msgs.ok and msgs.value is None and isinstance(msgs.error, NoAnswer)
    bad = twilio.request_json("GET", "ftp://example.invalid/x.json")
    assert isinstance(bad.error, NoAnswer) and bad.error.unreachable is False and bad.error.attempts == 0
