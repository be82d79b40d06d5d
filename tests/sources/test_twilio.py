"""sources.twilio against the sandbox's Twilio stand-in on loopback (and a closed port)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
    assert not res.configured and not res.reached and "TWILIO_ACCOUNT_SID" in res.error


def test_account_and_balance(cfg, servers):
    acct = twilio.account(cfg)
    assert acct.ok and acct.status == 200 and acct.body["status"] == "active"
    bal = twilio.balance(cfg)
    assert bal.ok and bal.body == {
        "account_sid": C.TWILIO_ACCOUNT_SID,
        "balance": "152.30",
        "currency": "USD",
    }
    servers[1].twilio_balance = "3.17"
    assert twilio.balance(cfg).body["balance"] == "3.17"


def test_rejected_credentials_give_the_twilio_error(cfg, servers):
    servers[1].twilio_auth_failed = True
    res = twilio.account(cfg)
    assert (res.ok, res.status) == (False, 401)
    assert res.error == "HTTP 401: code 20003, Authenticate"
    assert C.CANARY_TWILIO_AUTH_TOKEN not in res.url + str(res.error)


def test_messages_frame_typed_without_phone_numbers(cfg, servers):
    servers[1].twilio_messages = failing_messages()
    out = twilio.messages(cfg, page_size=30)
    assert out.ok
    df = out.frame
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
    assert not res.reached and res.error.startswith("unreachable:")
    msgs = twilio.messages(cfg, timeout_s=2)
    assert not msgs.ok and msgs.frame.empty
