"""In-process moto for the step unit tests (the end-to-end tests use the sandbox)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from propflow_ops.sources import aws


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    moto = pytest.importorskip("moto")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_cache()
    with moto.mock_aws():
        yield
    aws.clear_cache()
