"""7. Credentials go only where they were meant to. The configured host answers every request with a redirect
to ANOTHER origin (a loopback server on another port) that records what reaches it: for every HTTP client in
the package (Twilio, Meta Graph, the API health and OTP probes, the WebSocket handshake, the send-test-otp
step, the request function itself with Basic and bearer credentials) and through the notifications, websocket and api-down runbooks end to end, that
second server receives nothing at all (no Authorization, no token in a path or query, no phone number), and
the client reports the 3xx with the host it pointed to. A same-origin redirect is not followed either: each
call reaches the configured host exactly once."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from propflow_ops import reach
from propflow_ops.results import Fetched
from propflow_ops.sandbox import canaries as C
from propflow_ops.sources import http, twilio, whatsapp

from .harness import RecordingServer, RedirectServer, present_slugs, run_cli

pytestmark = [pytest.mark.xdist_group("safety-credentials")]

SID, TOKEN, WA_TOKEN = C.TWILIO_ACCOUNT_SID, C.CANARY_TWILIO_AUTH_TOKEN, C.CANARY_WHATSAPP_TOKEN
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


@pytest.fixture
def elsewhere() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture(params=[301, 302, 303, 307, 308])
def configured(request: pytest.FixtureRequest, elsewhere: RecordingServer) -> Iterator[RedirectServer]:
    reach.reset()
    server = RedirectServer(elsewhere.url, request.param)
    yield server
    server.close()
    reach.reset()


def _calls(base: str) -> dict[str, Any]:
    """Every client of the package, pointed at ``base``, each with its credentials."""
    from propflow_ops.steps.notify import send_test_otp

    tw = twilio.TwilioConfig(account_sid=SID, auth_token=TOKEN, api_url=base)
    wa = whatsapp.WhatsAppConfig(
        token=WA_TOKEN, phone_number_id=C.WHATSAPP_PHONE_NUMBER_ID, graph_url=f"{base}/v21.0"
    )

    def otp_step() -> Any:
        try:
            return send_test_otp(base, C.CANARY_PHONE_IN, timeout_s=5).execute()
        except Exception as exc:  # noqa: BLE001 - a redirect may be reported as a failed step
            return exc

    return {
        "twilio.account": lambda: twilio.account(tw, timeout_s=5),
        "twilio.balance": lambda: twilio.balance(tw, timeout_s=5),
        "twilio.messages": lambda: twilio.messages(tw, timeout_s=5),
        "whatsapp.phone_number": lambda: whatsapp.phone_number(wa, timeout_s=5),
        "twilio.request_json basic": lambda: twilio.request_json(
            "GET", f"{base}/x?api_key={TOKEN}", headers={"Authorization": BASIC}, timeout_s=5
        ),
        "twilio.request_json bearer": lambda: twilio.request_json(
            "GET", f"{base}/x", headers={"Authorization": f"Bearer {WA_TOKEN}"}, timeout_s=5
        ),
        "http.probe health": lambda: http.probe(
            f"{base}/health", timeout_s=5, retries=1, headers={"Authorization": f"Bearer {WA_TOKEN}"}
        ),
        "http.probe otp": lambda: http.probe(
            f"{base}/api/v1/auth/login/otp", method="POST", json_body={}, timeout_s=5, retries=0
        ),
        "http.ws_handshake": lambda: http.ws_handshake(http.ws_url(base, WA_TOKEN), timeout_s=5),
        "steps.notify.send_test_otp": otp_step,
    }


CLIENTS = list(_calls("http://127.0.0.1:1"))


def _leaks(server: RecordingServer) -> list[str]:
    return [
        f"{r['method']} {r['path']} authorization={r['headers'].get('authorization', '')!r}"
        for r in server.requests
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_to_another_origin_carries_nothing_there(configured, elsewhere, client):
    result = _calls(configured.url)[client]()
    assert _leaks(elsewhere) == [], (
        f"{client} followed a {configured.status} to another origin: {_leaks(elsewhere)}"
    )
    assert len(configured.requests) == 1, f"{client}: {configured.requests}"
    # a probe's Fetched shows no value in its repr: what it reports is its value's (the answer's) repr
    text = repr(result) + (repr(result.outcome) if isinstance(result, Fetched) else "")
    assert str(configured.status) in text, f"{client} did not report the {configured.status}: {text[:300]}"
    assert f"127.0.0.1:{elsewhere.port}" in text, (
        f"{client} did not name where the redirect pointed: {text[:300]}"
    )
    assert TOKEN not in text and WA_TOKEN not in text and BASIC not in text


@pytest.mark.parametrize("client", CLIENTS)
def test_a_same_origin_redirect_is_not_followed_either(client):
    reach.reset()
    server = RedirectServer(None, 302)
    try:
        _calls(server.url)[client]()
        assert len(server.requests) == 1, f"{client} followed a same-origin redirect: {server.requests}"
    finally:
        server.close()
        reach.reset()


RUNBOOKS = [s for s in ("notifications", "websocket", "api-down") if s in present_slugs()]


@pytest.mark.slow
@pytest.mark.parametrize("slug", RUNBOOKS or ["none"])
def test_a_runbook_pointed_at_a_redirecting_host_sends_no_credential_elsewhere(sandbox, tmp_path, slug):
    if slug == "none":
        pytest.skip("no runbook talks to an HTTP target")
    elsewhere = RecordingServer()
    configured = RedirectServer(elsewhere.url, 302)
    try:
        sandbox.use()
        graph_version = sandbox.env["PROPFLOW_META_GRAPH_URL"].rstrip("/").rsplit("/", 1)[-1]
        env = {
            **sandbox.env,
            "PROPFLOW_API_URL": configured.url,
            "PROPFLOW_TWILIO_API_URL": configured.url,
            "PROPFLOW_META_GRAPH_URL": f"{configured.url}/{graph_version}",
        }
        run = run_cli(
            "redirect", slug, env, "--incident", f"SAFETY-REDIRECT-{slug}", output_dir=tmp_path, timeout=300
        )
    finally:
        configured.close()
        elsewhere.close()
    assert run.folder is not None, run.explain()
    assert configured.requests, f"{slug} never called the configured host"
    assert _leaks(elsewhere) == [], f"{slug} sent requests to the redirect's target: {_leaks(elsewhere)}"
