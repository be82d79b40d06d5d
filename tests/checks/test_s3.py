"""checks.s3: the bucket-policy evaluator (pure) and the photo-upload checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from propflow_ops.checks import s3 as c
from propflow_ops.errors import FetchError
from propflow_ops.results import Fetched

ROLE = "arn:aws:iam::123456789012:role/propflow-ecs-task-role"
OBJ = "arn:aws:s3:::propflow-uploads/properties/1/a.jpg"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(**kw):
    st = {
        "Sid": "A",
        "Effect": "Allow",
        "Principal": {"AWS": ROLE},
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::propflow-uploads/*",
    }
    st.update(kw)
    return st


def deny(**kw):
    st = allow(Sid="D", Effect="Deny")
    st.update(kw)
    return st


@pytest.mark.parametrize(
    "pattern,action,expected",
    [
        ("s3:PutObject", "s3:PutObject", True),
        ("s3:putobject", "s3:PutObject", True),
        ("s3:*", "s3:PutObject", True),
        ("s3:Put*", "s3:PutObject", True),
        ("s3:Get*", "s3:PutObject", False),
        ("*", "s3:PutObject", True),
        ("s3:PutObj?ct", "s3:PutObject", True),
        ("s3:PutObjectAcl", "s3:PutObject", False),
        ("ec2:*", "s3:PutObject", False),
    ],
)
def test_action_wildcards(pattern, action, expected):
    assert c.action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("arn:aws:s3:::propflow-uploads/*", True),
        ("arn:aws:s3:::propflow-uploads/properties/*", True),
        ("arn:aws:s3:::propflow-uploads/other/*", False),
        ("arn:aws:s3:::propflow-uploads", False),  # the bucket, not its objects
        ("arn:aws:s3:::propflow-*", True),
        ("arn:aws:s3:::PROPFLOW-uploads/*", False),  # ARNs are case-sensitive
        ("*", True),
    ],
)
def test_resource_wildcards(pattern, expected):
    assert c.resource_matches(pattern, OBJ) is expected


@pytest.mark.parametrize(
    "principal,expected",
    [
        ("*", True),
        ({"AWS": "*"}, True),
        ({"AWS": ROLE}, True),
        ({"AWS": [ROLE.replace("task-role", "other"), ROLE]}, True),
        ({"AWS": "arn:aws:iam::123456789012:root"}, True),
        ({"AWS": "123456789012"}, True),
        ({"AWS": "arn:aws:iam::999999999999:root"}, False),
        ({"AWS": "arn:aws:iam::123456789:role/ecsTaskRole"}, False),  # the document's placeholder
        ({"Service": "ecs-tasks.amazonaws.com"}, False),
    ],
)
def test_principal_match(principal, expected):
    assert c.principal_matches(principal, ROLE)[0] is expected


def test_assumed_role_session_matches_its_role():
    session = "arn:aws:sts::123456789012:assumed-role/propflow-ecs-task-role/abc123"
    assert c.evaluate_policy(policy(allow()), session, "s3:PutObject", OBJ).decision == "allow"


def test_allow_then_explicit_deny_wins():
    d = c.evaluate_policy(policy(allow(), deny()), ROLE, "s3:PutObject", OBJ)
    assert d.decision == "explicit_deny" and d.denied_by == ["D"] and d.allowed_by == ["A"]


def test_deny_of_everyone_applies_to_the_role():
    d = c.evaluate_policy(policy(allow(), deny(Principal="*", Action="s3:*")), ROLE, "s3:PutObject", OBJ)
    assert d.decision == "explicit_deny"


def test_no_allow_is_implicit_deny():
    d = c.evaluate_policy(policy(allow(Action="s3:GetObject")), ROLE, "s3:PutObject", OBJ)
    assert d.decision == "implicit_deny" and not d.allowed


def test_deny_for_other_action_does_not_apply():
    d = c.evaluate_policy(policy(allow(), deny(Action="s3:DeleteObject")), ROLE, "s3:PutObject", OBJ)
    assert d.decision == "allow"


def test_tls_only_deny_does_not_apply_to_a_tls_request():
    lp = c.least_privilege_policy("propflow-uploads", ROLE)
    d = c.evaluate_policy(lp, ROLE, "s3:PutObject", OBJ)
    assert d.decision == "allow" and d.denied_by == [] and d.conditional == []
    assert c.overbroad_statements(lp) == []  # the Deny to * is not a grant


def test_unknown_condition_is_listed_not_counted():
    d = c.evaluate_policy(
        policy(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), ROLE, "s3:PutObject", OBJ
    )
    assert d.decision == "implicit_deny" and d.conditional == ["A (Allow, condition not evaluated)"]


@pytest.mark.parametrize("element", ["NotAction", "NotPrincipal", "NotResource"])
def test_not_elements_are_rejected_clearly(element):
    st = allow()
    st[element] = st.pop(
        {"NotAction": "Action", "NotPrincipal": "Principal", "NotResource": "Resource"}[element]
    )
    with pytest.raises(c.UnsupportedPolicyError, match=element):
        c.evaluate_policy(policy(st), ROLE, "s3:PutObject", OBJ)
    f = c.check_write_access(policy(st), bucket="propflow-uploads", role_arn=ROLE)
    assert f.status == "error" and element in f.detail


def test_policy_as_json_string_and_single_statement_object():
    doc = json.dumps({"Version": "2012-10-17", "Statement": allow()})
    assert c.evaluate_policy(doc, ROLE, "s3:PutObject", OBJ).decision == "allow"


def test_overbroad_document_example_and_public_principal():
    doc_example = allow(
        Sid="AllowECSWrite", Action="s3:*", Principal={"AWS": "arn:aws:iam::123456789:role/ecsTaskRole"}
    )
    public = allow(Sid="PublicRead", Principal="*", Action="s3:GetObject")
    f = c.check_policy_overbroad(policy(doc_example, public, allow()))
    assert f.status == "warn"
    assert [s["sid"] for s in f.data["statements"]] == ["AllowECSWrite", "PublicRead"]
    assert c.check_policy_overbroad(policy(allow())).status == "ok"


def test_write_access_findings():
    kw = {"bucket": "propflow-uploads", "role_arn": ROLE}
    assert c.check_write_access(policy(allow()), **kw).status == "ok"
    assert c.check_write_access(policy(allow(), deny()), **kw).status == "fail"
    assert c.check_write_access(policy(allow(Action="s3:GetObject")), **kw).status == "fail"
    assert c.check_write_access(None, **kw).status == "fail"
    assert c.check_write_access(Fetched(None, FetchError("AccessDenied")), **kw).status == "error"
    assert c.check_write_access(policy(allow()), bucket="b", role_arn=None).status == "skipped"
    assert c.check_write_access({}, bucket="b", role_arn=ROLE, bucket_exists=False).status == "skipped"
    assert c.check_write_access(None, bucket="b", role_arn=None, role_error="boom").status == "error"
    failed_task = Fetched(None, FetchError("ECS: AccessDenied"))
    assert c.check_write_access(policy(allow()), failed_task, bucket="b").status == "error"
    assert c.check_write_access(policy(allow()), {"role_arn": ROLE}, bucket="propflow-uploads").status == "ok"


def test_bucket_and_public_access_block():
    assert c.check_bucket({"exists": False}, "b").status == "fail"
    assert c.check_bucket(Fetched(None, FetchError("timeout")), "b").status == "error"
    assert c.check_bucket({"exists": True}, "b").status == "ok"
    on = dict.fromkeys(c.PAB_FLAGS, True)
    assert c.check_public_access_block(on).status == "ok"
    assert c.check_public_access_block(None).status == "warn"
    assert c.check_public_access_block(on | {"BlockPublicPolicy": False}).data["off"] == ["BlockPublicPolicy"]


def _logs(rows):
    df = pd.DataFrame(rows, columns=["timestamp", "level", "event", "status", "error_type", "message"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def test_upload_errors_by_type():
    logs = _logs(
        [
            ("2026-01-01T10:00:00Z", "INFO", "upload", 201, None, "ok"),
            ("2026-01-01T10:00:10Z", "ERROR", "upload", 500, "AccessDenied", "Upload failed"),
            ("2026-01-01T10:01:10Z", "ERROR", "upload", 500, "AccessDenied", "Upload failed"),
            ("2026-01-01T10:01:20Z", "ERROR", "upload", 500, "NoSuchBucket", "Upload failed"),
            ("2026-01-01T10:01:30Z", "ERROR", "request", 500, "KeyError", "Internal Server Error"),
        ]
    )
    f = c.check_upload_errors(logs)
    assert f.status == "fail" and f.data["by_type"] == {"AccessDenied": 2, "NoSuchBucket": 1}
    assert f.data["uploads"] == 4
    assert c.errors_by_type(c.upload_errors(logs))["count"].tolist() == [2, 1]
    assert c.check_upload_errors(logs.iloc[:1]).status == "ok"
    assert c.check_upload_errors(RuntimeError("logs down")).status == "error"


NOW = datetime(2026, 1, 20, tzinfo=UTC)


def _inventory():
    objects = pd.DataFrame(
        {
            "key": ["ref-old", "orphan-old", "orphan-new", "ref-new"],
            "size": [10, 20, 30, 40],
            "last_modified": pd.to_datetime(
                [
                    NOW - timedelta(days=30),
                    NOW - timedelta(days=8),
                    NOW - timedelta(days=6),
                    NOW - timedelta(days=1),
                ],
                utc=True,
            ),
            "storage_class": "STANDARD",
        }
    )
    multipart = pd.DataFrame(
        {
            "key": ["mp-old", "mp-new"],
            "upload_id": ["u1", "u2"],
            "initiated": pd.to_datetime([NOW - timedelta(days=9), NOW - timedelta(hours=1)], utc=True),
        }
    )
    return {"objects": objects, "multipart": multipart, "pages": 1}


def test_orphans_are_unreferenced_and_old_only():
    f, orphans, stale = c.check_orphans(_inventory(), {"ref-old", "ref-new"}, orphan_age_days=7, now=NOW)
    assert f.status == "warn"
    assert orphans["key"].tolist() == ["orphan-old"]
    assert stale["upload_id"].tolist() == ["u1"]
    assert f.data["orphan_bytes"] == 20
    f5, orphans5, _ = c.check_orphans(_inventory(), {"ref-old", "ref-new"}, orphan_age_days=5, now=NOW)
    assert sorted(orphans5["key"]) == ["orphan-new", "orphan-old"]


def test_orphans_none_and_errors():
    inv = _inventory()
    inv["multipart"] = inv["multipart"].iloc[1:]
    refs = {"ref-old", "orphan-old"}
    assert c.check_orphans(inv, refs, now=NOW)[0].status == "ok"
    assert c.check_orphans(inv, Fetched(None, FetchError("db down")), now=NOW)[0].status == "error"
    assert c.check_orphans(FetchError("AccessDenied"), refs, now=NOW)[0].status == "error"
    assert c.check_orphans(inv, refs, bucket_exists=False)[0].status == "skipped"


def test_capacity_summary():
    s = c.capacity_summary(_inventory())
    assert s["objects"] == 4 and s["total_bytes"] == 100 and s["incomplete_multipart_uploads"] == 2
