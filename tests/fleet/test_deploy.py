"""Where the fleet runs (issue 18 part 5): the deploy files parse, the task definition starts a worker our CLI
accepts, and the IAM policy names every AWS API the package calls (found by scanning the code against
botocore's service models), remediation calls only in their own optional statement. Docker cannot build on
this machine; the Dockerfile is checked for what the worker needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from propflow_ops import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# API operation -> the IAM action that allows it, where the names differ
IAM_ACTION = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:DeleteObjects": "s3:DeleteObject",
}
REMEDIATION = {
    "ecs:UpdateService",
    "rds:RebootDBInstance",
    "rds:CreateDBInstanceReadReplica",
    "s3:AbortMultipartUpload",
    "s3:DeleteObjects",
    "rds:CreateDBSnapshot",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
}  # the change lock (propflow_ops.change.lock)
# called once when the team sets the fleet up (and by the sandbox), never by a worker: the table exists
SETUP_ONLY = {"dynamodb:CreateTable"}
OPTIONAL = ("RemediationWhenEnabled", "RemediationChangeLock")
SUBMIT = {"sqs:SendMessage"}  # the engineer's side (iam-submit-policy.json), never the worker's
READ = re.compile(r"^(Describe|Get|List|Filter|StartQuery|StopQuery)")


def package_calls() -> set[str]:
    """``service:Operation`` for every boto3 operation the package calls (method calls and paginators)."""
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "propflow_ops").rglob("*.py")
        if "sandbox" not in p.relative_to(ROOT).parts
    )
    services = set(re.findall(r"""client(?:_from_env)?\(\s*["']([a-z0-9-]+)["']""", code))
    # a method call, not on self or super() (our own classes: a Redis client's execute_command is not ECS's)
    called = set(re.findall(r"(?<!super\(\))(?<!self)\.([a-z][a-z0-9_]+)\(", code)) | set(
        re.findall(r"""get_paginator\(\s*["']([a-z0-9_]+)""", code)
    )
    session = botocore.session.get_session()
    out: set[str] = set()
    for svc in services:
        ops = {xform_name(op): op for op in session.get_service_model(svc).operation_names}
        prefix = session.get_service_model(svc).metadata.get("signingName", svc)
        out |= {f"{prefix}:{ops[c]}" for c in called if c in ops}
    return out


def statements(name: str) -> dict[str, dict]:
    doc = json.loads((DEPLOY / name).read_text(encoding="utf-8"))
    assert doc["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in doc["Statement"]}


def actions(stmts: dict[str, dict], *, skip: tuple[str, ...] = ()) -> set[str]:
    out: set[str] = set()
    for sid, s in stmts.items():
        if sid not in skip:
            acts = s["Action"]
            out |= {acts} if isinstance(acts, str) else set(acts)
    return out


def test_the_scan_finds_what_the_package_calls():
    calls = package_calls()
    # the scanner must see the worker's queue calls, the store's conditional puts and a runbook read
    assert {"sqs:ReceiveMessage", "s3:PutObject", "ecs:DescribeServices", "sns:Publish"} <= calls


def test_the_iam_policies_name_every_aws_api_the_package_calls():
    worker, submit = statements("iam-worker-policy.json"), statements("iam-submit-policy.json")
    allowed = actions(worker) | actions(submit)
    missing = sorted(c for c in package_calls() - SETUP_ONLY if IAM_ACTION.get(c, c) not in allowed)
    assert not missing, f"calls the IAM policies do not allow: {missing}"
    without_remediation = actions(worker, skip=OPTIONAL)
    remediation = actions({sid: worker[sid] for sid in OPTIONAL})
    assert not (SETUP_ONLY & actions(worker))
    for call in REMEDIATION:
        action = IAM_ACTION.get(call, call)
        assert action in remediation, action
        if action != "s3:DeleteObject":  # the record's lock release is scoped to events.lock keys
            assert action not in without_remediation, f"{action} outside the optional remediation statement"
    assert worker["EvidenceStoreRecordLock"]["Resource"].endswith("/events.lock")
    reads = actions({"r": worker["RunbookReads"]})
    assert all(READ.match(a.split(":", 1)[1]) for a in reads), reads
    assert not (SUBMIT & actions(worker)), "the worker never sends to its own queue"
    assert all(s["Resource"] != "*" for sid, s in worker.items() if sid != "RunbookReads")


def test_the_task_definition_starts_a_worker_the_cli_accepts():
    td = json.loads((DEPLOY / "ecs-task-definition.json").read_text(encoding="utf-8"))
    (c,) = td["containerDefinitions"]
    args = cli._parser().parse_args(c["command"])
    assert args.command == "worker" and args.concurrency >= 1
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["PROPFLOW_OUTPUT_DIR"].startswith("s3://") and env["PROPFLOW_FLEET_QUEUE_URL"].startswith(
        "https://sqs."
    )
    secrets = {s["name"] for s in c["secrets"]}
    assert {"PROPFLOW_DATABASE_URL", "PROPFLOW_REDIS_URL"} <= secrets  # never in plain environment
    assert not any("URL" in n and "DATABASE" in n for n in env)
    assert c["stopTimeout"] == 120 and c["user"] != "0" and td["networkMode"] == "awsvpc"
    assert td["taskRoleArn"] and c["logConfiguration"]["logDriver"] == "awslogs"


@pytest.mark.parametrize(
    "needle",
    [
        "USER 10001",
        "STOPSIGNAL SIGTERM",
        'ENTRYPOINT ["propflow-ops"]',
        "COPY notebooks",
        "PROPFLOW_NOTEBOOKS_DIR=/opt/propflow-ops/notebooks",
    ],
)
def test_the_dockerfile_has_what_the_worker_needs(needle):
    assert needle in (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
