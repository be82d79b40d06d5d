"""sources.aws: clients with timeouts, target info, error text."""

from __future__ import annotations

import botocore.exceptions
import pytest

from propflow_ops.sources import aws


def test_client_has_timeouts_and_standard_retries(aws_env: str) -> None:
    c = aws.client("sts")
    cfg = c.meta.config
    assert (cfg.connect_timeout, cfg.read_timeout) == (3, 10)
    assert cfg.retries["mode"] == "standard"  # adaptive sleeps client-side after throttling
    assert cfg.retries.get("total_max_attempts", cfg.retries.get("max_attempts", 0) + 1) == 4
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
