"""In-process moto for the step unit tests (the end-to-end tests use the sandbox)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from propflow_ops.sources import aws


@pytest.fixture(autouse=True)
def change_control(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Applied steps write the incident record and take the change lock: both under tmp_path here; their
    verification waits at most 1 s and its /health probe goes to a closed loopback port, never to a default URL."""
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("PROPFLOW_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("PROPFLOW_VERIFY_TIMEOUT_S", "1")
    monkeypatch.delenv("PROPFLOW_LOCK_TABLE", raising=False)
    monkeypatch.setenv("PROPFLOW_API_URL", "http://127.0.0.1:9")


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
