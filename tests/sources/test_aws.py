"""sources.aws: clients with timeouts, target info, error text."""

from __future__ import annotations

import botocore.exceptions
import pytest
from botocore.config import Config

from propflow_ops.sources import aws


def test_client_has_timeouts_and_standard_retries(aws_env: str) -> None:
    c = aws.client("sts")
    cfg = c.meta.config
    assert (cfg.connect_timeout, cfg.read_timeout) == (aws.CONNECT_TIMEOUT_S, aws.READ_TIMEOUT_S) == (3, 8)
    assert cfg.retries["mode"] == "standard"  # adaptive sleeps client-side after throttling
    # TOTAL attempts, the first included (botocore's max_attempts counts retries: 3 meant 4 attempts)
    assert (
        cfg.retries.get("total_max_attempts", cfg.retries.get("max_attempts", 0) + 1)
        == aws.TOTAL_ATTEMPTS
        == 2
    )
    assert c.meta.endpoint_url == aws_env  # from AWS_ENDPOINT_URL, not from our code
    assert aws.client("sts") is c
    assert aws.client("sts", "eu-west-1") is not c


def test_target_info_against_moto(aws_env: str) -> None:
    info = aws.target_info()
    assert info["aws_account"] == "123456789012"
    assert info["region"] == "ap-southeast-2"
    assert info["endpoint"] == aws_env
    assert "error" not in info


def test_target_info_unreachable_endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.sources.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    info = aws.target_info()
    assert info["aws_account"] is None
    assert "cannot connect to endpoint" in info["error"]


def test_aws_error_text_shapes() -> None:
    err = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied\nmore"}}, "PutObject"
    )
    assert aws.aws_error_text(err) == "PutObject: AccessDenied: Access Denied"
    conn = botocore.exceptions.EndpointConnectionError(endpoint_url="http://x:1")
    assert aws.aws_error_text(conn) == "cannot connect to endpoint http://x:1"
    rt = botocore.exceptions.ReadTimeoutError(endpoint_url="http://x:1")
    assert aws.aws_error_text(rt) == "read timeout from http://x:1"
    assert aws.aws_error_text(ValueError("a\nb")) == "ValueError: a"


def test_an_endpoint_that_never_answers_costs_one_bounded_call_then_fails_fast(aws_env, monkeypatch) -> None:
    """Total attempts x (connect + read) bound the first call; the endpoint's breaker fails the next at once."""
    import time

    from propflow_ops import reach
    from tests.safety.harness import SilentServer

    silent = SilentServer()
    # the runbooks' timeouts (3 s + 8 s per attempt) scaled down: the same bound, proven in seconds
    monkeypatch.setattr(aws, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setattr(aws, "READ_TIMEOUT_S", 2)
    monkeypatch.setattr(aws, "ATTEMPT_DEADLINE_S", 6)
    monkeypatch.setattr(aws, "_CONFIG", aws._CONFIG.merge(Config(connect_timeout=1, read_timeout=2)))
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.port}")
        aws.clear_cache()
        ecs = aws.client("ecs")
        t0 = time.monotonic()
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            ecs.list_clusters()
        first = time.monotonic() - t0
        assert silent.accepted == aws.TOTAL_ATTEMPTS, f"{silent.accepted} attempts"
        bound = aws.TOTAL_ATTEMPTS * (aws.CONNECT_TIMEOUT_S + aws.READ_TIMEOUT_S) + 10
        assert first < bound, f"{first:.1f} s"
        logs = aws.client("logs")  # made outside the timing: loading its model is CPU, not the call
        t0 = time.monotonic()
        with pytest.raises(reach.TargetDown):
            logs.describe_log_groups()
        assert time.monotonic() - t0 < 1
        (f,) = reach.findings()
        assert (f.code, f.status.value) == ("AWS_UNREACHABLE", "fail")
    finally:
        silent.close()
        aws.clear_cache()
