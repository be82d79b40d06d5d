"""Photo uploads (runbook 4): bucket, bucket policy for the task role, public access, upload errors, orphans.

The bucket-policy evaluation is :mod:`propflow_ops.checks.iam` (re-exported here: ``evaluate_policy``,
``PolicyDecision``, ``UnsupportedPolicyError``, the matchers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops.checks import logs as log_checks
from propflow_ops.checks.iam import KNOWN_CONTEXT as KNOWN_CONTEXT
from propflow_ops.checks.iam import PolicyDecision as PolicyDecision
from propflow_ops.checks.iam import UnsupportedPolicyError as UnsupportedPolicyError
from propflow_ops.checks.iam import _as_list, _sid, _statements
from propflow_ops.checks.iam import action_matches as action_matches
from propflow_ops.checks.iam import evaluate_policy as evaluate_policy
from propflow_ops.checks.iam import principal_matches as principal_matches
from propflow_ops.checks.iam import resource_matches as resource_matches
from propflow_ops.findings import Finding
from propflow_ops.results import takes_fetched

PUT_OBJECT = "s3:PutObject"


def policy_json(policy: Mapping[str, Any]) -> str:
    """A policy as indented JSON text (for display and copy-paste)."""
    return json.dumps(policy, indent=2)


def errors_by_type(errors: pd.DataFrame) -> pd.DataFrame:
    """Upload errors grouped by error type: count, first and last seen, an example message."""
    cols = ["error_type", "count", "first_seen", "last_seen", "example"]
    if errors.empty:
        return pd.DataFrame(columns=cols)
    g = errors.groupby("error_type").agg(
        count=("error_type", "size"),
        first_seen=("timestamp", "min"),
        last_seen=("timestamp", "max"),
        example=("message", "last"),
    )
    return g.sort_values("count", ascending=False).reset_index()[cols]


def overbroad_statements(policy: Mapping[str, Any] | str) -> list[dict[str, str]]:
    """Allow statements granting ``s3:*``/``*`` actions, or to a ``*`` principal (anyone)."""
    out: list[dict[str, str]] = []
    for i, st in enumerate(_statements(policy)):
        if st.get("Effect") != "Allow":
            continue
        sid = _sid(st, i)
        reasons = []
        actions = [str(a) for a in _as_list(st.get("Action"))]
        broad = [a for a in actions if a == "*" or a.lower() in ("s3:*", "s3:*object*")]
        if broad:
            reasons.append(
                f"grants {', '.join(broad)} (every S3 action, incl. DeleteObject and policy changes)"
            )
        if "NotAction" in st:
            reasons.append("uses NotAction with Allow (grants everything not listed)")
        principal = st.get("Principal")
        aws_principals = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
        if principal == "*" or "*" in [str(p) for p in aws_principals]:
            reasons.append("Principal * (anyone, incl. anonymous users)")
        if reasons:
            out.append({"sid": sid, "why": "; ".join(reasons)})
    return out


def least_privilege_policy(bucket: str, role_arn: str) -> dict[str, Any]:
    """What the API needs, and no more: object read/write/delete for the task role, TLS only."""
    objects = f"arn:aws:s3:::{bucket}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowApiTaskObjectAccess",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": objects,
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", objects],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


# --------------------------------------------------------------------------------------------
# Checks


Fetch = Mapping[str, Any] | BaseException | None  # a fetch's value, or its error (``takes_fetched``)


@takes_fetched
def check_bucket(status: Fetch, bucket: str) -> Finding:
    """S3_BUCKET_MISSING from :func:`propflow_ops.sources.s3.bucket_status`."""
    title = f"Bucket {bucket} exists"
    if isinstance(status, BaseException):
        return Finding.error("S3_BUCKET_MISSING", title, str(status), bucket=bucket)
    if status is None:  # never fetched
        return Finding.skipped(
            "S3_BUCKET_MISSING", title, "the bucket was not asked (HeadBucket)", bucket=bucket
        )
    if status.get("exists") is False:
        return Finding.fail(
            "S3_BUCKET_MISSING",
            f"Bucket {bucket} does not exist",
            f"HeadBucket: {status.get('reason') or 'NoSuchBucket'}; every upload fails with "
            "NoSuchBucket until it is recreated (check it was not renamed in S3_BUCKET).",
            bucket=bucket,
        )
    return Finding.ok(
        "S3_BUCKET_MISSING",
        title,
        f"{bucket} answers HeadBucket (region {status.get('region')}).",
        bucket=bucket,
        region=status.get("region"),
    )


@takes_fetched
def bucket_exists(status: Fetch) -> bool:
    """False only when S3 said the bucket does not exist (a failed HeadBucket could not tell)."""
    return not (isinstance(status, Mapping) and status.get("exists") is False)


@takes_fetched
def task_role(task: Fetch) -> dict[str, Any]:
    """The task definition's ARN and role (what the photo-upload runbook shows), or why it could not be read."""
    if isinstance(task, BaseException):
        return {"task definition": None, "task role": None, "error": str(task)}
    task = task or {}
    return {"task definition": task.get("arn"), "task role": task.get("role_arn"), "error": None}


@takes_fetched
def check_write_access(
    policy: Fetch,
    task: Fetch = None,
    *,
    bucket: str,
    role_arn: str | None = None,
    bucket_exists: bool = True,
    role_error: str | None = None,
    key: str = "uploads/runbook-probe.jpg",
) -> Finding:
    """S3_WRITE_DENIED: the bucket policy (None: the bucket has none) evaluated for the task role and
    s3:PutObject on the bucket's objects. The role is the ``task``'s (``sources.s3.service_task_definition``),
    else ``role_arn``; ``role_error`` (or a failed ``task``) says why the role could not be read."""
    code, title = "S3_WRITE_DENIED", "Task role may PutObject under the bucket policy"
    if isinstance(task, BaseException):
        role_error = role_error or str(task)
    elif isinstance(task, Mapping):
        role_arn = role_arn or task.get("role_arn")
    if not bucket_exists:
        return Finding.skipped(code, title, f"bucket {bucket} does not exist (see S3_BUCKET_MISSING)")
    if role_error:
        return Finding.error(code, title, f"cannot read the service's task definition: {role_error}")
    if not role_arn:
        return Finding.skipped(code, title, "the task definition has no taskRoleArn: no role to evaluate")
    if isinstance(policy, BaseException):
        return Finding.error(code, title, str(policy))
    resource = f"arn:aws:s3:::{bucket}/{key}"
    if policy is None:
        return Finding.fail(
            code,
            "No bucket policy grants s3:PutObject to the task role",
            f"{bucket} has no bucket policy, so nothing at the bucket allows {role_arn} to "
            "write; unless the role's own IAM policy grants it (aws iam "
            "simulate-principal-policy), uploads are denied.",
            role=role_arn,
        )
    try:
        d = evaluate_policy(policy, role_arn, PUT_OBJECT, resource)
    except (UnsupportedPolicyError, ValueError) as exc:
        return Finding.error(code, title, f"cannot evaluate the bucket policy: {exc}", role=role_arn)
    data = {
        "role": role_arn,
        "decision": d.decision,
        "allowed_by": d.allowed_by,
        "denied_by": d.denied_by,
        "conditional": d.conditional,
    }
    if d.decision == "explicit_deny":
        return Finding.fail(
            code,
            "Bucket policy explicitly denies s3:PutObject to the task role",
            f"Deny in {', '.join(d.denied_by)} overrides any Allow"
            + (f" ({', '.join(d.allowed_by)})" if d.allowed_by else "")
            + ".",
            **data,
        )
    if d.decision == "implicit_deny":
        extra = f" Conditional statements not evaluated: {'; '.join(d.conditional)}." if d.conditional else ""
        return Finding.fail(
            code,
            "Bucket policy does not allow s3:PutObject to the task role",
            f"No Allow statement matches {role_arn}, s3:PutObject, {resource}.{extra}",
            **data,
        )
    if d.conditional:
        return Finding.warn(
            code,
            "Task role allowed to PutObject, but some statements are conditional",
            f"Allowed by {', '.join(d.allowed_by)}; not evaluated: {'; '.join(d.conditional)}.",
            **data,
        )
    note = f" ({'; '.join(d.notes)})" if d.notes else ""
    return Finding.ok(code, title, f"Allowed by {', '.join(d.allowed_by)}{note}.", **data)


@takes_fetched
def check_policy_overbroad(policy: Fetch, *, bucket_exists: bool = True) -> Finding:
    """S3_POLICY_OVERBROAD (warn): an Allow of s3:* / * or to a * principal (``policy`` None: no policy)."""
    code, title = "S3_POLICY_OVERBROAD", "Bucket policy grants no more than needed"
    if not bucket_exists:
        return Finding.skipped(code, title, "bucket does not exist")
    if isinstance(policy, BaseException):
        return Finding.error(code, title, str(policy))
    if policy is None:
        return Finding.ok(code, title, "no bucket policy")
    try:
        broad = overbroad_statements(policy)
    except (UnsupportedPolicyError, ValueError) as exc:
        return Finding.error(code, title, f"cannot read the bucket policy: {exc}")
    if broad:
        return Finding.warn(
            code,
            "Bucket policy is broader than the API needs",
            "; ".join(f"{b['sid']}: {b['why']}" for b in broad),
            statements=broad,
        )
    return Finding.ok(code, title, "no s3:* grant and no * principal")


PAB_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@takes_fetched
def check_public_access_block(config: Fetch, *, bucket_exists: bool = True) -> Finding:
    """S3_PUBLIC_ACCESS_OPEN (warn): the bucket's public access block (None: it has none) is missing or not
    all four flags on."""
    code, title = "S3_PUBLIC_ACCESS_OPEN", "Public access block on (all four settings)"
    if not bucket_exists:
        return Finding.skipped(code, title, "bucket does not exist")
    if isinstance(config, BaseException):
        return Finding.error(code, title, str(config))
    if not config:
        return Finding.warn(
            code,
            "Bucket has no public access block",
            "Nothing at the bucket stops a public policy or ACL (account-level block not checked).",
        )
    off = [f for f in PAB_FLAGS if not config.get(f)]
    if off:
        return Finding.warn(code, "Public access block partly off", f"off: {', '.join(off)}", off=off)
    return Finding.ok(code, title, "all four settings on")


@takes_fetched
def upload_errors(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """The upload errors among the log lines: an upload line (``upload`` in its path, message or event) that
    is an error (error level, 5xx, an exception) or answered 4xx."""
    if isinstance(logs, BaseException) or logs is None:
        return pd.DataFrame(columns=["timestamp", "error_type", "message"])
    if logs.empty:
        return logs.iloc[0:0]
    uploads = log_checks.is_upload(logs)
    status = pd.to_numeric(logs["status"], errors="coerce").fillna(0) >= 400 if "status" in logs else False
    out = logs[uploads & (log_checks.is_error(logs) | status)].copy()
    out["error_type"] = _error_type(out)
    return out


_ERROR_TYPE_IN_TEXT = (
    r"\(([A-Z][A-Za-z]+)\)|\b((?:AccessDenied|NoSuchBucket|SlowDown|RequestTimeout|InvalidAccessKeyId|"
    r"SignatureDoesNotMatch|ExpiredToken|EntityTooLarge)\b)"
)


def _error_type(errors: pd.DataFrame) -> pd.Series:
    """Each error's type: its ``error_type``/``error_code`` field, else the S3 error code its message names
    (``An error occurred (AccessDenied)``), else ``5xx``/``4xx`` from the status, else ``unknown``."""
    if errors.empty:
        return pd.Series([], index=errors.index, dtype="object")
    out = pd.Series("", index=errors.index, dtype="object")
    for col in ("error_type", "error_code"):
        if col in errors:
            out = out.where(
                out != "", errors[col].astype("object").where(errors[col].notna(), "").astype(str)
            )
    if "message" in errors:
        found = errors["message"].astype("object").fillna("").astype(str).str.extract(_ERROR_TYPE_IN_TEXT)
        out = out.where(out != "", found[0].fillna(found[1]).fillna(""))
    if "status" in errors:
        st = pd.to_numeric(errors["status"], errors="coerce")
        out = out.where(out != "", st.map(lambda v: f"HTTP {int(v)}" if v == v else ""))
    return out.where(out != "", "unknown")


@takes_fetched
def check_upload_errors(logs: pd.DataFrame | BaseException, *, min_errors: int = 1) -> Finding:
    """UPLOAD_ERRORS_IN_LOGS: failed uploads in the window, by error type (``logs`` may be the fetch's exception)."""
    code, title = "UPLOAD_ERRORS_IN_LOGS", "Upload errors in the API logs"
    if isinstance(logs, BaseException):
        return Finding.error(code, title, logs)
    if logs is None:  # never fetched
        return Finding.skipped(code, title, "the logs were not fetched")
    info = log_checks.summary(logs)
    errors = upload_errors(logs)
    total_uploads = int(log_checks.is_upload(logs).sum()) if not logs.empty else 0
    if len(errors) >= max(1, min_errors):
        by_type = errors["error_type"].value_counts().to_dict()
        text = ", ".join(f"{k} {v}" for k, v in by_type.items())
        return Finding.fail(
            code,
            f"{len(errors)} failed uploads in the window",
            f"by error type: {text} (of {total_uploads} upload lines)",
            errors=len(errors),
            uploads=total_uploads,
            by_type=by_type,
            logs=info,
        )
    if not total_uploads:
        return Finding.skipped(
            code,
            "No upload lines in the logs",
            f"no line of the window mentions an upload ({info['lines']} lines read, dialect "
            f"{info.get('dialect')}): nothing to judge",
            uploads=0,
            logs=info,
        )
    return Finding.ok(
        code,
        "No upload errors in the logs",
        f"{total_uploads} upload lines, none failed",
        uploads=total_uploads,
        logs=info,
    )


# --- orphans ----------------------------------------------------------------------------------


def _utc(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize(UTC) if t.tzinfo is None else t.tz_convert(UTC)


def find_orphans(
    objects: pd.DataFrame, referenced: Iterable[str], *, orphan_age_days: int = 7, now: datetime | None = None
) -> pd.DataFrame:
    """Objects (key, size, last_modified) that no referenced key names and older than ``orphan_age_days``."""
    if objects.empty:
        return objects.iloc[0:0].copy()
    cutoff = _utc(now or datetime.now(UTC)) - timedelta(days=orphan_age_days)
    refs = set(referenced)
    last = pd.to_datetime(objects["last_modified"], utc=True)
    mask = ~objects["key"].isin(refs) & (last < cutoff)
    return objects[mask].sort_values("last_modified").reset_index(drop=True)


def stale_multipart(
    uploads: pd.DataFrame, *, orphan_age_days: int = 7, now: datetime | None = None
) -> pd.DataFrame:
    """Incomplete multipart uploads initiated more than ``orphan_age_days`` ago."""
    if uploads.empty:
        return uploads.iloc[0:0].copy()
    cutoff = _utc(now or datetime.now(UTC)) - timedelta(days=orphan_age_days)
    return uploads[pd.to_datetime(uploads["initiated"], utc=True) < cutoff].reset_index(drop=True)


@takes_fetched
def check_orphans(
    inventory: Fetch,
    referenced: Iterable[str] | BaseException | None,
    *,
    orphan_age_days: int = 7,
    now: datetime | None = None,
    bucket_exists: bool = True,
) -> tuple[Finding, pd.DataFrame, pd.DataFrame]:
    """S3_ORPHANED_UPLOADS (warn). Returns the finding, the orphan objects and the stale multipart uploads."""
    code, title = "S3_ORPHANED_UPLOADS", f"No orphaned uploads older than {orphan_age_days} days"
    empty = pd.DataFrame()
    if not bucket_exists:
        return Finding.skipped(code, title, "bucket does not exist"), empty, empty
    if isinstance(inventory, BaseException):
        return Finding.error(code, title, f"listing the bucket failed: {inventory}"), empty, empty
    if isinstance(referenced, BaseException):
        return (
            Finding.error(code, title, f"cannot read the keys the database references: {referenced}"),
            empty,
            empty,
        )
    if inventory is None:
        return Finding.skipped(code, title, "the bucket was not listed"), empty, empty
    referenced = set(referenced or ())
    objects: pd.DataFrame = inventory["objects"]
    uploads: pd.DataFrame = inventory["multipart"]
    orphans = find_orphans(objects, referenced, orphan_age_days=orphan_age_days, now=now)
    stale = stale_multipart(uploads, orphan_age_days=orphan_age_days, now=now)
    size = int(orphans["size"].sum()) if not orphans.empty else 0
    data = {
        "orphan_objects": len(orphans),
        "orphan_bytes": size,
        "stale_multipart_uploads": len(stale),
        "referenced_keys": len(referenced),
        "objects": len(objects),
    }
    if len(orphans) or len(stale):
        return (
            Finding.warn(
                code,
                f"{len(orphans)} orphaned objects ({_bytes(size)}) and {len(stale)} stale multipart uploads",
                f"older than {orphan_age_days} days and referenced by no row of the database query; "
                "step delete-orphaned-uploads removes exactly these",
                **data,
            ),
            orphans,
            stale,
        )
    return (
        Finding.ok(code, title, f"{len(objects)} objects, all referenced or recent", **data),
        orphans,
        stale,
    )


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@takes_fetched
def capacity_summary(inventory: Fetch) -> dict[str, Any]:
    """Object count and total size (what the document's --max-keys 1 could not tell)."""
    if isinstance(inventory, BaseException):
        return {"error": str(inventory)}
    if inventory is None:
        return {"error": "the bucket was not listed"}
    objects: pd.DataFrame = inventory["objects"]
    total = int(objects["size"].sum()) if not objects.empty else 0
    return {
        "objects": len(objects),
        "total_size": _bytes(total),
        "total_bytes": total,
        "incomplete_multipart_uploads": len(inventory["multipart"]),
        "pages": inventory.get("pages"),
    }


@takes_fetched
def statements_table(policy: Mapping[str, Any] | str | BaseException | None) -> pd.DataFrame:
    """The policy's statements, one row each, for display."""
    if not policy or isinstance(policy, BaseException):
        return pd.DataFrame(columns=["sid", "effect", "principal", "action", "resource", "condition"])
    rows = []
    for i, st in enumerate(_statements(policy)):
        rows.append(
            {
                "sid": _sid(st, i),
                "effect": st.get("Effect"),
                "principal": json.dumps(st.get("Principal")),
                "action": json.dumps(st.get("Action", st.get("NotAction"))),
                "resource": json.dumps(st.get("Resource")),
                "condition": json.dumps(st.get("Condition")) if st.get("Condition") else "",
            }
        )
    return pd.DataFrame(rows)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
