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
    assert not whatsapp.phone_number(cfg).configured


def test_phone_number_status_and_quality(servers):
    srv, state = servers
    state.reset()
    res = whatsapp.phone_number(_cfg(srv))
    assert res.ok
    assert (res.body["status"], res.body["quality_rating"]) == ("CONNECTED", "GREEN")
    assert whatsapp.graph_error(res) == {}


def test_expired_token(servers):
    srv, state = servers
    state.reset()
    state.whatsapp_token_expired = True
    res = whatsapp.phone_number(_cfg(srv))
    assert res.status == 401 and not res.ok
    assert whatsapp.graph_error(res)["code"] == 190
    assert whatsapp.graph_error(res)["error_subcode"] == 463
    assert res.error.startswith("HTTP 401: code 190/463, Error validating access token")
    assert C.CANARY_WHATSAPP_TOKEN not in res.url + res.error
    state.reset()
    assert whatsapp.phone_number(_cfg(srv, token="wrong")).status == 401
