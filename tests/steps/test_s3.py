"""steps.s3 delete-orphaned-uploads: deletes exactly the listed orphans, re-checking the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from propflow_ops.checks import s3 as checks
from propflow_ops.findings import Evidence
from propflow_ops.remediation import run_step
from propflow_ops.sandbox.dataset import orphan_keys
from propflow_ops.sources import aws
from propflow_ops.sources import s3 as src
from propflow_ops.steps import s3 as steps

QUERY = "SELECT s3_key FROM photos"


@pytest.fixture
def env(world, sandbox_env, monkeypatch):
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield world
    aws.clear_cache()


def _evidence(apply):
    return Evidence(
        runbook="photo-upload", title="t", incident={}, parameters={"reason": "unit test"}, apply=list(apply)
    )


def test_plan_changes_nothing_and_apply_deletes_exactly_the_listed(env, sandbox_env):
    sb = env("s3-orphans")
    url = sandbox_env["PROPFLOW_DATABASE_URL"]
    inv = src.inventory("propflow-uploads")
    finding, orphans, _ = checks.check_orphans(inv, src.referenced_keys(QUERY, url))
    assert len(orphans) == 30
    s3 = sb.aws.client("s3")
    stale = pd.DataFrame(
        {
            "key": inv["multipart"]["key"][:1],
            "upload_id": inv["multipart"]["upload_id"][:1],
            "initiated": [datetime.now(UTC) - timedelta(days=9)],
        }
    )
    before = sb.snapshot()["s3"]
    planned = run_step(
        _evidence([]),
        steps.delete_orphaned_uploads(
            "propflow-uploads", orphans, stale, photo_keys_query=QUERY, database_url=url
        ),
    )
    assert planned.mode == "planned" and sb.snapshot()["s3"] == before
    # one listed key becomes referenced before the step runs: it must be kept
    kept = str(orphans["key"].iloc[0])
    query = f"{QUERY} UNION ALL SELECT '{kept}'"
    done = run_step(
        _evidence(["delete-orphaned-uploads"]),
        steps.delete_orphaned_uploads(
            "propflow-uploads", orphans, stale, photo_keys_query=query, database_url=url, batch=7
        ),
    )
    assert done.mode == "executed", done.action.detail
    assert done.result["deleted_objects"] == 29 and done.result["kept_now_referenced_or_changed"] == 1
    assert done.result["batches"] == 5 and done.result["aborted_multipart_uploads"] == 1
    after = sb.snapshot()["s3"]
    assert set(before["keys"]) - set(after["keys"]) == set(orphan_keys(30)) - {kept}
    assert after["multipart_uploads"] == before["multipart_uploads"] - 1
    assert s3.head_object(Bucket="propflow-uploads", Key=kept)


def test_database_down_deletes_nothing(env, sandbox_env):
    sb = env("s3-orphans")
    inv = src.inventory("propflow-uploads")
    _, orphans, _ = checks.check_orphans(
        inv, src.referenced_keys(QUERY, sandbox_env["PROPFLOW_DATABASE_URL"])
    )
    before = sb.snapshot()["s3"]
    done = run_step(
        _evidence(["delete-orphaned-uploads"]),
        steps.delete_orphaned_uploads(
            "propflow-uploads",
            orphans,
            pd.DataFrame(),
            photo_keys_query=QUERY,
            database_url="postgresql://u:p@127.0.0.1:1/x",
        ),
    )
    assert done.mode == "failed" and "re-check failed" in done.action.detail
    assert sb.snapshot()["s3"] == before
