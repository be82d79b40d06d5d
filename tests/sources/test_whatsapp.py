"""sources.whatsapp against the sandbox's Meta Graph stand-in on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from propflow_ops.sandbox import canaries as C
from propflow_ops.sandbox.standins import GRAPH_VERSION, StandinServers, StandinState
from propflow_ops.sources import whatsapp


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[StandinServers, StandinState]]:
    state = StandinState()
    state.reset()
    srv = StandinServers(state, {})
    srv.start()
    yield srv, state
    srv.stop()


def _cfg(srv, token=C.CANARY_WHATSAPP_TOKEN):
    return whatsapp.config(
        {
            "WHATSAPP_TOKEN": token,
            "WHATSAPP_PHONE_NUMBER_ID": C.WHATSAPP_PHONE_NUMBER_ID,
            "PROPFLOW_META_GRAPH_URL": f"{srv.url('graph')}/{GRAPH_VERSION}",
        }
    )


def test_defaults_and_not_configured():
    cfg = whatsapp.config({})
    assert cfg.graph_url == "https://graph.facebook.com/v21.0"
    assert cfg.missing == ["WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"]
    unset = whatsapp.phone_number(cfg)
    assert unset.value is None and unset.error is None  # the empty Fetched: not configured
    assert (
        unset.target
        == "whatsapp phone number (not configured: WHATSAPP_TOKEN, WHATSAPP_PHONE_NUMBER_ID not set)"
    )
    assert whatsapp.graph_error(unset) == {}


def test_phone_number_status_and_quality(servers):
    srv, state = servers
    state.reset()
    res = whatsapp.phone_number(_cfg(srv))
    assert res.ok and res.value.ok and res.value.problem is None
    assert (res.value.body["status"], res.value.body["quality_rating"]) == ("CONNECTED", "GREEN")
    assert whatsapp.graph_error(res) == {}


def test_expired_token(servers):
    srv, state = servers
    state.reset()
    state.whatsapp_token_expired = True
    res = whatsapp.phone_number(_cfg(srv))
    answer = res.value
    assert res.ok and answer.status == 401 and not answer.ok  # an answer of any status is the value
    assert whatsapp.graph_error(res)["code"] == 190
    assert whatsapp.graph_error(answer)["error_subcode"] == 463
    assert answer.problem.startswith("HTTP 401: code 190/463, Error validating access token")
    assert C.CANARY_WHATSAPP_TOKEN not in answer.url + answer.problem + res.target + repr(res) + repr(answer)
    state.reset()
    assert whatsapp.phone_number(_cfg(srv, token="wrong")).value.status == 401
