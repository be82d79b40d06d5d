"""Pure checks of the notifications runbook."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from checks.logframes import NOW, frame, line
from propflow_ops.checks import notify as n
from propflow_ops.errors import FetchError, NoAnswer
from propflow_ops.findings import Action
from propflow_ops.records import HttpAnswer
from propflow_ops.remediation import Step, StepOutcome
from propflow_ops.results import Fetched
from propflow_ops.sources.twilio import TaskSettings, messages_frame, not_configured


def _ok(body, status=200):
    return Fetched(HttpAnswer("u", status, 12.0, body=body), None, "u", 0.012)


def _err(status, body, error="HTTP err"):
    return Fetched(HttpAnswer("u", status, 12.0, body=body, problem=error), None, "u", 0.012)


UNREACHABLE = Fetched(
    None, NoAnswer("unreachable: ConnectionRefusedError: refused", unreachable=True, attempts=1), "u", 0.003
)
NOT_CONFIGURED = not_configured("twilio account", ["TWILIO_AUTH_TOKEN"])


def test_issue_codes_are_all_explained():
    for code in (20003, 21211, 21408, 21610, 30003, 30005, 30007):
        meaning, action = n.TWILIO_ERROR_CODES[code]
        assert meaning and action


def test_config_missing_lists_names_and_never_values():
    settings = TaskSettings(
        "propflow-api:4",
        {"TWILIO_ACCOUNT_SID": "value", "TWILIO_FROM_NUMBER": "empty", "WHATSAPP_TOKEN": "secret"},
    )
    f = n.config_missing(settings)
    assert f.status == "fail"
    assert f.data["settings_missing"] == ["TWILIO_AUTH_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"]
    assert f.data["settings_empty"] == ["TWILIO_FROM_NUMBER"]
    table = n.settings_table(settings)
    assert list(table["in_task_definition"]) == [
        "yes (plain value)",
        "MISSING",
        "EMPTY",
        "yes (secret reference)",
        "MISSING",
    ]
    full = TaskSettings("propflow-api:3", dict.fromkeys(n.REQUIRED_SETTINGS, "secret"))
    assert n.config_missing(full).status == "ok"
    assert n.config_missing(Fetched(None, FetchError("AccessDenied"))).status == "error"
    dead = n.config_missing(FetchError("ThrottlingException: Rate exceeded", unreachable=True))
    assert dead.status == "fail" and "unreachable" in dead.title


def test_twilio_auth():
    assert n.twilio_auth(_ok({"status": "active", "type": "Full"})).status == "ok"
    f = n.twilio_auth(
        _err(401, {"code": 20003, "message": "Authenticate"}, "HTTP 401: code 20003, Authenticate")
    )
    assert f.status == "fail" and f.data["twilio_code"] == 20003 and "Auth Token" in f.detail
    suspended = n.twilio_auth(_ok({"status": "suspended"}))
    assert suspended.status == "fail" and suspended.title == "Twilio account is suspended"
    down = n.twilio_auth(UNREACHABLE)
    assert down.status == "fail" and "unreachable" in down.title and "(u)" in down.detail
    unset = n.twilio_auth(NOT_CONFIGURED)
    assert unset.status == "skipped" and "TWILIO_AUTH_TOKEN not set" in unset.detail
    assert n.twilio_auth(Fetched()).status == "skipped"  # never fetched
    assert n.twilio_auth(_ok(None)).status == "fail"  # a 2xx without the JSON asked for (its problem says so)
    late = n.twilio_auth(
        Fetched(None, FetchError("no answer within the triage budget of 25 s"), "twilio_account")
    )
    assert late.status == "error"  # a fetch that failed otherwise: not a verdict on the credentials


@pytest.mark.parametrize(
    ("balance", "status"), [("3.17", "fail"), ("19.99", "fail"), ("20.00", "ok"), ("152.30", "ok")]
)
def test_twilio_balance_threshold(balance, status):
    f = n.twilio_balance(_ok({"balance": balance, "currency": "USD"}))
    assert f.status == status
    assert f.data["balance"] == float(balance)


def test_twilio_balance_unreadable_is_error_not_ok():
    assert n.twilio_balance(_err(401, {"code": 20003})).status == "error"
    assert n.twilio_balance(_ok({"balance": "n/a"})).status == "error"
    assert n.twilio_balance(NOT_CONFIGURED).status == "skipped"
    assert n.twilio_balance(Fetched()).status == "skipped"
    assert n.twilio_balance(UNREACHABLE).status == "error"
    assert n.twilio_balance(_ok({"balance": "5"}), min_balance=4).status == "ok"


def _messages(statuses_codes, minutes_apart=1.0):
    items = []
    for i, (status, code) in enumerate(statuses_codes):
        created = NOW - timedelta(minutes=i * minutes_apart)
        items.append(
            {
                "sid": f"SM{i}",
                "status": status,
                "error_code": code,
                "to": "+919999900001",
                "date_created": created.strftime("%a, %d %b %Y %H:%M:%S +0000"),
            }
        )
    return Fetched(messages_frame(items), None, "messages", 0.01)


def test_twilio_send_errors_by_code_in_window():
    msgs = _messages(
        [
            ("failed", 30007),
            ("undelivered", 30003),
            ("delivered", None),
            ("failed", 30007),
            ("sent", None),
            ("failed", 21610),
        ]
        + [("failed", 21211)] * 3,
        minutes_apart=10,
    )
    assert "to" not in msgs.value  # phone numbers are not kept
    start = NOW - timedelta(minutes=55)
    f = n.twilio_send_errors(msgs, start=start, end=NOW)
    assert f.status == "fail"
    assert (f.data["messages"], f.data["failed"]) == (6, 4)
    table = n.error_code_table(msgs, start=start, end=NOW)
    assert n.error_code_table(msgs.value, start=start, end=NOW).equals(table)
    assert dict(zip(table["error_code"], table["count"], strict=True)) == {30007: 2, 30003: 1, 21610: 1}
    assert (
        table.set_index("error_code").loc[21610, "meaning"].startswith("Attempt to send to an unsubscribed")
    )
    healthy = _messages([("delivered", None)] * 20 + [("failed", 30003)] * 2)
    assert n.twilio_send_errors(healthy).status == "ok"  # 2 failures: below min_errors
    broken = Fetched(None, FetchError("HTTP 500", unreachable=False), "messages")
    assert (
        n.twilio_send_errors(broken).status == "error" and "HTTP 500" in n.twilio_send_errors(broken).detail
    )
    assert n.error_code_table(broken).empty
    assert n.twilio_send_errors(not_configured("twilio messages", ["TWILIO_ACCOUNT_SID"])).status == "skipped"
    assert n.twilio_send_errors(Fetched()).status == "skipped"


def test_whatsapp_status():
    expired = _err(
        401,
        {
            "error": {
                "message": "Session has expired",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 463,
            }
        },
    )
    f = n.whatsapp_status(expired)
    assert f.status == "fail" and f.title == "WhatsApp access token expired" and f.data["graph_code"] == 190
    ok = _ok({"status": "CONNECTED", "quality_rating": "GREEN", "messaging_limit_tier": "TIER_1K"})
    assert n.whatsapp_status(ok).status == "ok"
    assert n.whatsapp_status(_ok({"status": "CONNECTED", "quality_rating": "RED"})).status == "warn"
    assert n.whatsapp_status(_ok({"status": "RESTRICTED", "quality_rating": "RED"})).status == "fail"
    assert n.whatsapp_status(UNREACHABLE).status == "fail"
    unset = n.whatsapp_status(not_configured("whatsapp phone number", ["WHATSAPP_TOKEN"]))
    assert unset.status == "skipped" and "WHATSAPP_TOKEN not set" in unset.detail
    assert n.whatsapp_status(Fetched()).status == "skipped"
    assert "status" in set(n.whatsapp_table(ok)["field"])
    assert list(n.whatsapp_table(UNREACHABLE)["value"]) == ["unreachable: ConnectionRefusedError: refused"]
    unset_table = n.whatsapp_table(not_configured("whatsapp phone number", ["WHATSAPP_TOKEN"]))
    assert "WHATSAPP_TOKEN not set" in unset_table["value"].iloc[0]


def _notify_logs(errors: int, oks: int = 20):
    lines = [
        line(i * 0.5, "INFO", "twilio message queued", event="notification", provider="twilio")
        for i in range(oks)
    ]
    lines += [
        line(
            i * 0.7,
            "ERROR",
            "twilio send failed: Unknown destination handset",
            event="notification",
            provider="twilio",
            error_code=30005,
        )
        for i in range(errors)
    ]
    lines += [
        line(
            3,
            "ERROR",
            "whatsapp send failed: (#131026) Message undeliverable",
            event="notification",
            provider="whatsapp",
            error_code=131026,
        )
    ]
    lines += [line(4, "INFO", "whatsapp message queued", event="notification", provider="whatsapp")] * 10
    return frame(lines)


def test_log_send_errors_per_provider():
    logs = _notify_logs(errors=8)
    f = n.log_send_errors(logs)
    assert f.status == "fail" and "twilio" in f.title and "whatsapp" not in f.title
    table = n.errors_by_provider(logs).set_index("provider")
    assert (table.loc["twilio", "errors"], table.loc["twilio", "lines"]) == (8, 28)
    assert table.loc["whatsapp", "errors"] == 1
    meanings = n.log_code_meanings(logs).set_index("error_code")
    assert meanings.loc["30005", "meaning"].startswith("Unknown destination handset")
    assert meanings.loc["131026", "meaning"].startswith("Message undeliverable")
    assert n.log_send_errors(_notify_logs(errors=1)).status == "ok"
    assert n.log_send_errors(RuntimeError("AccessDeniedException")).status == "error"
    assert n.log_send_errors(TimeoutError("read timed out")).status == "fail"
    assert len(n.notification_errors(logs)) == 9
    assert n.notification_errors(RuntimeError("x")).empty


def _outcome(mode, result=None, applied=True):
    step = Step("send-test-otp", "send", "curl ...", lambda: {})
    return StepOutcome(
        step, Action("send-test-otp", mode, "curl ...", "detail"), result=result, applied=applied
    )


def test_otp_endpoint_only_when_applied():
    skipped = n.otp_endpoint(_outcome("planned", applied=False))
    assert skipped.status == "skipped" and "send-test-otp" in skipped.detail
    assert n.otp_endpoint(_outcome("executed", {"http_status": 200, "latency_ms": 40.0})).status == "ok"
    failing = n.otp_endpoint(_outcome("executed", {"http_status": 500, "response": "Internal Server Error"}))
    assert failing.status == "fail" and failing.data["http_status"] == 500
    assert n.otp_endpoint(_outcome("failed")).status == "fail"


def test_display_tables_hold_no_pandas_str_columns():
    # notebook.show masks object columns; keep text columns object-typed so it masks them
    table = n.errors_by_provider(_notify_logs(errors=3))
    assert table["top_error"].dtype == object
    assert isinstance(n.whatsapp_table(_ok({"display_phone_number": "+1 555"})), pd.DataFrame)
    assert n.whatsapp_table(_ok({"display_phone_number": "+1 555"}))["value"].dtype == object
