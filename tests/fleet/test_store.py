"""The S3 evidence store (issue 18 part 1), against the sandbox's moto server: real runs publish the local
layout under s3://, encrypted, SHA256SUMS last, never overwritten; the incident record lives there; the review
reads every complete run back, verifies it and publishes its own run there."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest

from propflow_ops import cli, store
from propflow_ops import incident_record as ir
from propflow_ops.findings import iso, utcnow
from propflow_ops.runner import RunRequest, run
from propflow_ops.sources import aws

pytestmark = pytest.mark.slow


@pytest.fixture
def s3world(world, monkeypatch):
    sandbox = world()
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    aws.clear_cache()
    yield sandbox
    aws.clear_cache()


def objects(client, bucket: str, prefix: str) -> dict[str, dict]:
    return {o["Key"][len(prefix) :]: o for o in store.list_keys(client, bucket, prefix)}


def test_a_run_publishes_the_folder_layout_encrypted_with_its_record(s3world, capsys):
    out = s3world.fleet.output_dir + "/team"
    inc = "INC-S3-1"
    code = cli.main(["run", "triage", "--incident", inc, "--output-dir", out, "--no-html"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert code in (0, 1)
    assert printed[-1].startswith(f"{out}/{inc}/") and printed[-1].endswith("-triage")
    client = s3world.aws.client("s3")
    url = store.parse_s3(printed[-1])
    keys = objects(client, url.bucket, url.prefix + "/")
    assert set(keys) == {"report.ipynb", "evidence.json", "SHA256SUMS"}
    sums = store.get_bytes(client, url.bucket, url.key("SHA256SUMS")).decode()
    for line in sums.splitlines():
        digest, name = line.split()
        assert hashlib.sha256(store.get_bytes(client, url.bucket, url.key(name))).hexdigest() == digest
        assert client.head_object(Bucket=url.bucket, Key=url.key(name))["ServerSideEncryption"] == "AES256"
    assert (
        client.head_object(Bucket=url.bucket, Key=url.key("SHA256SUMS"))["ServerSideEncryption"] == "AES256"
    )
    evidence = json.loads(store.get_bytes(client, url.bucket, url.key("evidence.json")))
    assert evidence["incident"]["id"] == inc and evidence["incident"]["record"]["opened_via"] == "run triage"
    # the record: one object per event, in the store, read the same way by everyone
    events = ir.S3Store(store.parse_s3(out)).events(inc)
    assert [e["event"] for e in events if e["event"] in ("opened", "run")] == ["opened", "run"]
    assert [e for e in events if e["event"] == "run"][0]["run"] == url.name
    # nothing local was written
    assert not list(s3world.dir.glob(f"**/{inc}"))


def test_a_taken_name_gets_a_suffix_and_the_first_folder_is_untouched(s3world):
    client = s3world.aws.client("s3")
    root = store.parse_s3(s3world.fleet.output_dir + "/clash")
    first, second = store.S3Target(root, client), store.S3Target(root, client)
    for t in (first, second):
        t.open("INC-S3-2", "20260101T000000Z-triage")
    a = first.publish({"evidence.json": b'{"n": 1}'}, ["evidence.json"])
    b = second.publish({"evidence.json": b'{"n": 2}'}, ["evidence.json"])
    assert (a.name, b.name) == ("20260101T000000Z-triage", "20260101T000000Z-triage-2")
    assert store.get_bytes(client, a.bucket, a.key("evidence.json")) == b'{"n": 1}'
    with pytest.raises(store.Exists):  # the store itself refuses an overwrite
        store.put_new(client, a.bucket, a.key("evidence.json"), b"{}")


def test_concurrent_writers_agree_on_one_opened_event(s3world):
    url = store.parse_s3(s3world.fleet.output_dir + "/race")
    start = utcnow().replace(microsecond=0)
    barrier = threading.Barrier(4)

    def go(n: int) -> None:
        barrier.wait()
        ir.open_or_join(
            ir.S3Store(url),
            "INC-RACE",
            severity="P1",
            started_at=start,
            severity_given=False,
            started_given=False,
            by={"user": f"u{n}"},
            via="test",
        )

    threads = [threading.Thread(target=go, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = ir.S3Store(url).events("INC-RACE")
    assert [e["event"] for e in events] == ["opened"]
    assert (
        ir.S3Store(url)
        .client.list_objects_v2(Bucket=url.bucket, Prefix=url.key("INC-RACE", ir.LOCK))
        .get("KeyCount")
        == 0
    )  # the lock is released


def test_a_lock_taken_over_is_left_to_its_new_holder(s3world, monkeypatch):
    """The record's S3 lock: a holder that outlived LOCK_STALE_S and was taken over must not delete the new
    holder's lock when it ends, nor may a second writer that also saw the stale lock delete it."""
    url = store.parse_s3(s3world.fleet.output_dir + "/takeover")
    a, b, c = ir.S3Store(url), ir.S3Store(url), ir.S3Store(url)
    key = url.key("INC-LOCK", ir.LOCK)

    def holder() -> bytes | None:
        try:
            return store.get_bytes(a.client, url.bucket, key)
        except Exception:  # noqa: BLE001 - no lock
            return None

    first = a.session("INC-LOCK")
    first.__enter__()
    token_a = holder()
    stale_etag = a.client.head_object(Bucket=url.bucket, Key=key)["ETag"]  # c looks now, deletes later
    monkeypatch.setattr(ir, "LOCK_STALE_S", -1.0)  # a's lock counts as stale: b breaks it and takes over
    second = b.session("INC-LOCK")
    second.__enter__()
    monkeypatch.setattr(ir, "LOCK_STALE_S", 60.0)
    token_b = holder()
    assert token_b and token_b != token_a
    with pytest.raises(Exception, match="PreconditionFailed|412"):
        c._delete_if(key, stale_etag)  # c's late delete of the stale lock it saw
    assert holder() == token_b
    first.__exit__(None, None, None)  # a ends late
    assert holder() == token_b, "the late holder deleted the new holder's lock"
    second.__exit__(None, None, None)
    assert holder() is None


def test_review_reads_every_complete_run_from_the_store_and_writes_its_own_there(s3world, capsys):
    out = s3world.fleet.output_dir + "/review"
    inc = "INC-S3-3"
    start = iso(utcnow().replace(microsecond=0) - timedelta(minutes=5))
    for slug in ("triage", "api-down"):
        result = run(
            RunRequest(
                slug=slug,
                incident=inc,
                started_at=start if slug == "triage" else None,
                output_dir=out,
                html=False,
                progress=False,
            )
        )
        assert isinstance(result.path, store.S3Url)
    client = s3world.aws.client("s3")
    url = store.parse_s3(out)
    # a run whose writer died mid-upload (no SHA256SUMS): not a run for any reader
    store.put_new(client, url.bucket, url.key(inc, "20990101T000000Z-websocket", "evidence.json"), b"{}")
    # a tampered run: published, then its evidence replaced by someone with delete rights
    runs = [r for r in store.list_runs(url, inc) if r.complete]
    victim = [r for r in runs if r.name.endswith("api-down")][0]
    key = url.key(inc, victim.name, "evidence.json")
    doctored = json.loads(store.get_bytes(client, url.bucket, key))
    doctored["status"] = "ok"
    client.delete_object(Bucket=url.bucket, Key=key)
    store.put_new(client, url.bucket, key, json.dumps(doctored).encode())
    capsys.readouterr()
    code = cli.main(["review", inc, "--output-dir", out, "--no-html"])
    cap = capsys.readouterr()
    assert "have no SHA256SUMS (incomplete, left out): 20990101T000000Z-websocket" in cap.err
    folder = store.parse_s3(cap.out.strip().splitlines()[-1])
    assert folder.parent == url / inc and folder.name.endswith("-post-incident")
    evidence = json.loads(store.get_bytes(client, folder.bucket, folder.key("evidence.json")))
    findings = {f["code"]: f for f in evidence["findings"]}
    integrity = [f for c, f in findings.items() if "INTEGRITY" in c or "TAMPER" in c]
    assert integrity and integrity[0]["status"] == "fail" and victim.name in json.dumps(integrity[0])
    ran = {r["runbook"] for r in (evidence.get("runs") or [])} or {
        n for n in json.dumps(evidence).split('"') if n in ("triage", "api-down", "websocket")
    }
    assert "websocket" not in ran
    assert code in (1, 3) or code == 0
    assert "postmortem.md" in objects(client, folder.bucket, folder.prefix + "/")
    assert [e["event"] for e in ir.S3Store(url).events(inc)].count("run") == 3  # triage, api-down, review


def test_bad_or_unreachable_store_is_one_line_before_anything_runs(s3world, capsys):
    assert cli.main(["run", "triage", "--output-dir", "s3://Bad_Bucket/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an S3 bucket name" in err
    assert (
        cli.main(
            ["run", "triage", "--output-dir", "s3://no-such-evidence-bucket/x", "--incident", "INC-S3-4"]
        )
        == 3
    )
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        "propflow-ops: error: cannot write the report under s3://no-such-evidence-bucket/x: "
    )
    assert "Traceback" not in err
    assert ir.S3Store(store.parse_s3("s3://propflow-evidence/x")).events("INC-S3-4") == []


def test_a_runs_breaker_does_not_stop_the_store(s3world):
    """reach's breaker is per run; the store (and the worker's queue) are plumbing of a long-lived process."""
    from propflow_ops import reach

    client = store.s3_client()
    reach.trip(reach.aws_key(aws.client("s3")), "timed out once, earlier")
    try:
        with pytest.raises(reach.TargetDown):
            aws.client("s3").head_bucket(Bucket=s3world.fleet.bucket)  # the runbooks' client: breaker open
        target = store.S3Target(store.parse_s3(s3world.fleet.output_dir + "/breaker"))
        target.open("INC-BRK", "20260101T000000Z-triage")
        assert target.publish({"evidence.json": b"{}"}, ["evidence.json"]).name == "20260101T000000Z-triage"
        assert store.plumbing_client("sqs").get_queue_attributes(
            QueueUrl=s3world.fleet.queue_url, AttributeNames=["VisibilityTimeout"]
        )
        assert client is store.s3_client()
    finally:
        reach.reset()


def test_incident_commands_and_escalate_share_the_store_clock(s3world, capsys):
    """Two engineers on two machines: one opens the incident in the store, the other acks and escalates it
    there; both read the same record."""
    out = s3world.fleet.output_dir + "/clock"
    inc = "INC-S3-CLOCK"
    started = iso(utcnow().replace(microsecond=0) - timedelta(minutes=20))
    s3world.notify.sns_messages(s3world.aws)
    assert (
        cli.main(["incident", "open", inc, "--severity", "P0", "--started-at", started, "--output-dir", out])
        == 0
    )
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"{out}/{inc}/events/"
    assert cli.main(["escalate", inc, "--output-dir", out]) == 0
    first = capsys.readouterr().out
    assert cli.main(["escalate", inc, "--output-dir", out]) == 0  # the second engineer: nothing sent twice
    capsys.readouterr()
    state = ir.load(ir.S3Store(store.parse_s3(out)), inc)
    sent = [e for e in state.escalations if e.get("status") == "sent"]
    assert sent and len({(e["step"], e["channel"]) for e in sent}) == len(sent), first
    assert any(f"Evidence: {out}/{inc}" in m for m in s3world.notify.sns_messages(s3world.aws))
    assert cli.main(["incident", "ack", inc, "--output-dir", out]) == 0
    capsys.readouterr()
    assert cli.main(["incident", "show", inc, "--json", "--output-dir", out]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["acknowledged_at"] and shown["severity"] == "P0" and shown["started_at"] == started
