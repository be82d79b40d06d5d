"""The change lock: one holder per resource, who and since when for the refused, expiry, token-checked release,
break; the DynamoDB backend (moto) and the local fcntl lock files, across processes."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from propflow_ops.change import lock as lock_mod
from propflow_ops.change.lock import DynamoLocks, FileLocks, LockBusy


@pytest.fixture(params=["dynamodb", "files"])
def locks(request, tmp_path, monkeypatch):
    if request.param == "files":
        yield FileLocks(tmp_path / "locks")
        return
    moto = pytest.importorskip("moto")
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    import boto3

    with moto.mock_aws():
        client = boto3.client("dynamodb")
        lock_mod.create_table(client, "locks")
        yield DynamoLocks("locks", client)


def test_second_holder_is_refused_with_who_and_since(locks):
    a = locks.acquire("ecs:propflow/propflow-api", "alice@h1 (arn:a)", "rollback", "INC-1")
    with pytest.raises(LockBusy) as busy:
        locks.acquire("ecs:propflow/propflow-api", "bob@h2 (arn:b)", "scale-service", "INC-2")
    held = busy.value.holder
    assert (held.owner, held.step, held.incident, held.since) == (
        "alice@h1 (arn:a)",
        "rollback",
        "INC-1",
        a.since,
    )
    assert "alice@h1" in str(busy.value) and a.since in str(busy.value)
    other = locks.acquire(
        "rds:propflow-db", "bob@h2 (arn:b)", "reboot-db-failover", "INC-2"
    )  # another resource
    assert [h.resource for h in locks.list()] == ["ecs:propflow/propflow-api", "rds:propflow-db"]
    assert locks.release(a) and locks.release(other)
    assert locks.list() == []
    assert locks.acquire(
        "ecs:propflow/propflow-api", "bob@h2 (arn:b)", "scale-service", "INC-2"
    ).owner.startswith("bob")


def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_release_the_new_one(locks):
    old = locks.acquire("s3:propflow-uploads", "alice", "delete-orphaned-uploads", "INC-1", ttl_s=-5)
    new = locks.acquire("s3:propflow-uploads", "bob", "delete-orphaned-uploads", "INC-2")
    assert not locks.release(old)  # a holder that outlived its lock does not free the new holder's
    assert [h.owner for h in locks.list()] == ["bob"]
    assert locks.release(new)


def test_break_frees_and_says_who_held_it(locks):
    locks.acquire("alembic:db/propflow", "alice", "migration-upgrade", "INC-9")
    gone = locks.break_("alembic:db/propflow")
    assert gone is not None and gone.owner == "alice" and gone.incident == "INC-9"
    assert locks.list() == [] and locks.break_("alembic:db/propflow") is None


def _hold(directory: str, ready, release) -> None:  # a second engineer's process
    locks = FileLocks(directory)
    h = locks.acquire("ecs:propflow/propflow-api", "alice@other-host", "rollback", "INC-P")
    ready.set()
    release.wait(30)
    locks.release(h)


def test_file_locks_hold_across_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(60)
        with pytest.raises(LockBusy, match="alice@other-host"):
            FileLocks(tmp_path).acquire("ecs:propflow/propflow-api", "bob", "scale-service", "INC-Q")
    finally:
        release.set()
        proc.join(30)
    deadline = time.monotonic() + 5
    while FileLocks(tmp_path).list() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        FileLocks(tmp_path).acquire("ecs:propflow/propflow-api", "bob", "scale-service", "INC-Q").owner
        == "bob"
    )


def test_locks_for_picks_the_table_when_configured(tmp_path):
    assert isinstance(lock_mod.locks_for({"PROPFLOW_LOCK_TABLE": "t"}), DynamoLocks)
    assert isinstance(lock_mod.locks_for({"PROPFLOW_LOCK_DIR": str(tmp_path)}), FileLocks)
