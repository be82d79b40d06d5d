"""sources.s3 against the sandbox's moto S3 and PostgreSQL."""

from __future__ import annotations

import pytest

from propflow_ops.errors import FetchError
from propflow_ops.sandbox.dataset import N_PHOTOS
from propflow_ops.sources import aws
from propflow_ops.sources import s3 as src
from propflow_ops.sources.fetch import fetch


@pytest.fixture
def env(world, sandbox_env, monkeypatch):
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield world
    aws.clear_cache()


def test_healthy_bucket(env):
    env()
    assert src.bucket_status("propflow-uploads")["exists"] is True
    assert src.bucket_status("no-such-bucket-here")["exists"] is False
    pol = fetch(src.bucket_policy, "propflow-uploads")
    assert pol.error is None and pol.value["Statement"][0]["Sid"] == "AllowApiTaskObjectAccess"
    assert src.public_access_block("propflow-uploads")["BlockPublicPolicy"] is True


def test_inventory_follows_every_page(env):
    env("s3-orphans")
    got = fetch(src.inventory, "propflow-uploads", page_size=100)
    assert got.error is None
    inv = got.value
    assert len(inv["objects"]) == N_PHOTOS + 30
    assert inv["pages"] == 3
    assert len(inv["multipart"]) == 3
    assert str(inv["objects"]["last_modified"].dtype).startswith("datetime64") and "UTC" in str(
        inv["objects"]["last_modified"].dtype
    )
    assert inv["objects"]["size"].gt(0).all()


def test_missing_bucket_and_policy(env):
    env("s3-bucket-missing")
    assert isinstance(fetch(src.bucket_policy, "propflow-uploads").error, FetchError)
    assert isinstance(fetch(src.inventory, "propflow-uploads").error, FetchError)


def test_referenced_keys_are_read_only(env, sandbox_env):
    sb = env()
    url = sandbox_env["PROPFLOW_DATABASE_URL"]
    refs = fetch(src.referenced_keys, "SELECT s3_key FROM photos", url, target="refs")
    assert refs.error is None and len(refs.value) == N_PHOTOS
    bad = fetch(src.referenced_keys, "DELETE FROM photos RETURNING s3_key", url, target="refs")
    assert "read-only" in str(bad.error) and bad.value is None
    assert sb.snapshot()["database"]["row_counts"]["photos"] == N_PHOTOS
    assert "no database URL" in str(fetch(src.referenced_keys, "SELECT 1", None).error)


def test_service_task_definition(env):
    env()
    got = fetch(src.service_task_definition, "propflow", "propflow-api", "propflow-api")
    assert got.error is None
    td = got.value
    assert td["role_arn"].endswith(":role/propflow-ecs-task-role")
    assert "REDIS_URL" in td["env"]
    missing = fetch(src.service_task_definition, "propflow", "nope", "no-such-family")
    assert missing.error and missing.value is None and src.task_env(missing) == {}
