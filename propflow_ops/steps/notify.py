"""Remediation step of the notifications runbook: ``send-test-otp``.

The runbook document's "Test SMS manually": POST /api/v1/auth/login/otp with a
test phone number. It makes the API send a real SMS (and costs money), so it
never runs unless ``apply`` names it.
"""

from __future__ import annotations

import json
from typing import Any

from propflow_ops.change import verify
from propflow_ops.remediation import Step, plan_commands
from propflow_ops.sources.twilio import request_json

OTP_PATH = "/api/v1/auth/login/otp"
TIMEOUT_S = 15.0


def otp_url(api_url: str) -> str:
    return api_url.rstrip("/") + OTP_PATH


def send_test_otp(api_url: str, phone: str, *, timeout_s: float = TIMEOUT_S) -> Step:
    """POST {"phone": phone} to the OTP login endpoint; returns the HTTP status and latency."""
    url = otp_url(api_url)
    payload = json.dumps({"phone": phone})
    command, argv = plan_commands(
        (["curl", "-X", "POST", url, "-H", "Content-Type: application/json", "-d", payload], "")
    )

    def execute() -> dict[str, Any]:
        got = request_json(
            "POST",
            url,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            data=payload.encode(),
            timeout_s=timeout_s,
        )
        res = got.value
        if res is None:  # no answer: the step failed
            raise ConnectionError(f"{url}: {got.error}")
        detail = ""
        if isinstance(res.body, dict):
            detail = str(res.body.get("detail") or res.body.get("message") or "")[:200]
        return {
            "http_status": res.status,
            "latency_ms": res.latency_ms,
            "response": detail or res.problem or "",
        }

    return Step(
        name="send-test-otp",
        what="Ask the API to send a login OTP to the test phone (the document's manual curl): proves the "
        "whole path API -> Twilio -> handset.",
        command=command,
        argv=argv,
        execute=execute,
        risk="Sends a real SMS to the test phone and costs one message; the phone's owner receives a code.",
        precondition="" if phone.strip() else "no test_phone given",
        resource="api:otp-test",
        verify=lambda result, before: verify.Settled(  # the one answer this step got: no second SMS
            200 <= int((result or {}).get("http_status") or 0) < 300,
            f"OTP endpoint answered HTTP {(result or {}).get('http_status')}",
        ),
        undo=lambda result, before, kept: {"detail": "nothing to undo: one SMS was sent"},
    )
