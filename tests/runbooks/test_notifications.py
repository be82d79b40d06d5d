"""notifications end to end: each finding code in its scenario, healthy, read-only default, the applied step."""

from __future__ import annotations

from runs import healthy_run, nbval, propflow_ops, watched

from propflow_ops.checks.notify import TWILIO_ERROR_CODES
from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["notifications"].path
CHECKED = (
    "NOTIFY_CONFIG_MISSING",
    "TWILIO_AUTH_FAILED",
    "TWILIO_BALANCE_LOW",
    "WHATSAPP_API_FAILING",
    "NOTIFY_SEND_ERRORS",
)


def _all(run, code):
    return [f for f in run.evidence["findings"] if f["code"] == code]


def test_healthy_reports_no_fail_and_sends_nothing(world, sandbox_env, tmp_path):
    run, _, after = healthy_run(world, sandbox_env, "notifications", output_dir=tmp_path, ok=CHECKED)
    assert [f["data"]["source"] for f in _all(run, "NOTIFY_SEND_ERRORS")] == ["twilio", "logs"]
    otp = run.findings()["OTP_ENDPOINT_FAILING"]
    assert otp["status"] == "skipped" and "send-test-otp" in otp["detail"]
    assert run.actions()["send-test-otp"]["mode"] == "planned"
    assert after["http"] == {"otp_requests": 0, "sms_sent": 0}
    assert run.findings()["TWILIO_BALANCE_LOW"]["data"]["balance"] == 152.30


def test_send_test_otp_applied_sends_exactly_one(world, sandbox_env, tmp_path):
    sb = world()
    run, before, after = watched(
        sb, sandbox_env, "notifications", "--reason", "test", "--apply", "send-test-otp", output_dir=tmp_path
    )
    assert run.actions()["send-test-otp"]["mode"] == "executed", run.actions()
    assert run.status_of("OTP_ENDPOINT_FAILING") == "ok"
    assert sb.http_state.otp_requests == ["+919999900001"]
    assert {k: v for k, v in after.items() if k != "http"} == {k: v for k, v in before.items() if k != "http"}


def test_twilio_auth_failed(world, sandbox_env, tmp_path):
    world("twilio-auth-failed")
    run = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path)
    assert run.code == 1
    auth = run.findings()["TWILIO_AUTH_FAILED"]
    assert auth["status"] == "fail"
    assert auth["data"]["http_status"] == 401 and auth["data"]["twilio_code"] == 20003
    assert "Authentication" in auth["detail"]
    assert run.status_of("TWILIO_BALANCE_LOW") == "error"
    assert run.status_of("WHATSAPP_API_FAILING") == "ok"
    assert run.fails() == {"TWILIO_AUTH_FAILED"}


def test_twilio_low_balance(world, sandbox_env, tmp_path):
    world("twilio-low-balance")
    run = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path)
    low = run.findings()["TWILIO_BALANCE_LOW"]
    assert low["status"] == "fail"
    assert low["data"] == {"balance": 3.17, "currency": "USD", "min_balance": 20.0}
    assert run.fails() == {"TWILIO_BALANCE_LOW"}
    # the threshold is a parameter
    lenient = propflow_ops(
        sandbox_env,
        "run",
        "notifications",
        "-p",
        "twilio_min_balance",
        "2.5",
        output_dir=tmp_path / "lenient",
    )
    assert lenient.status_of("TWILIO_BALANCE_LOW") == "ok"


def test_whatsapp_token_expired(world, sandbox_env, tmp_path):
    world("whatsapp-token-expired")
    run = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path)
    wa = run.findings()["WHATSAPP_API_FAILING"]
    assert wa["status"] == "fail"
    assert wa["title"] == "WhatsApp access token expired"
    assert (wa["data"]["graph_code"], wa["data"]["graph_subcode"]) == (190, 463)
    assert run.fails() == {"WHATSAPP_API_FAILING"}


def test_send_errors_by_code_and_provider(world, sandbox_env, tmp_path):
    world("notify-send-errors")
    run = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path)
    assert run.code == 1
    twilio, logs = _all(run, "NOTIFY_SEND_ERRORS")
    assert twilio["status"] == "fail" and logs["status"] == "fail"
    codes = {r["error_code"] for r in twilio["data"]["by_error_code"]}
    assert len(codes) >= 4 and codes <= set(TWILIO_ERROR_CODES)  # every code explained from our table
    assert twilio["data"]["failed"] >= 20 and twilio["data"]["failed_share"] > 0.5
    per_provider = {r["provider"]: r for r in logs["data"]["per_provider"]}
    assert set(per_provider) == {"twilio", "whatsapp"}
    assert per_provider["twilio"]["errors"] > 0 and per_provider["whatsapp"]["errors"] > 0
    assert run.fails() == {"NOTIFY_SEND_ERRORS"}


def test_config_missing_names_only(world, sandbox_env, tmp_path):
    world("notify-config-missing")
    run = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path)
    cfg = run.findings()["NOTIFY_CONFIG_MISSING"]
    assert cfg["status"] == "fail"
    assert cfg["data"]["settings_missing"] == ["TWILIO_AUTH_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"]
    assert cfg["data"]["task_definition"].endswith(":4")
    assert run.fails() == {"NOTIFY_CONFIG_MISSING"}
    from propflow_ops.sandbox.canaries import SECRET_CANARIES

    for path in run.folder.iterdir():
        text = path.read_text(errors="replace")
        assert not [c for c in SECRET_CANARIES if c in text], path.name


def test_otp_endpoint_failing_only_when_applied(world, sandbox_env, tmp_path):
    sb = world("otp-endpoint-failing")
    read_only = propflow_ops(sandbox_env, "run", "notifications", output_dir=tmp_path / "read")
    assert read_only.status_of("OTP_ENDPOINT_FAILING") == "skipped"
    assert read_only.code == 0
    run = propflow_ops(
        sandbox_env,
        "run",
        "notifications",
        "--reason",
        "test",
        "--apply",
        "send-test-otp",
        output_dir=tmp_path / "apply",
    )
    otp = run.findings()["OTP_ENDPOINT_FAILING"]
    assert otp["status"] == "fail" and otp["data"]["http_status"] == 500
    step = run.actions()["send-test-otp"]
    assert step["mode"] == "executed"
    # not verified, at once: the endpoint's one answer was a 500 (no minute of polling a settled answer)
    assert step["verified"] is False and step["verification"]["seen"] == "OTP endpoint answered HTTP 500", (
        step
    )
    assert step["verification"]["waited_s"] < 5, step
    assert run.code == 1
    assert sb.sms_sent == 0


def test_notebook_runs_under_nbval(world, sandbox_env):
    world()
    proc = nbval(NOTEBOOK, sandbox_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
