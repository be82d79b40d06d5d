"""S3 for the photo-upload runbook: bucket, policy, public access block, inventory, referenced keys, deletes.

The fetch functions raise when S3 (or ECS, or the database) could not answer; a notebook calls them
through ``sources.fetch.fetch``, which hands the checks a :class:`~propflow_ops.results.Fetched` (the
value, or a one-line error without secrets). An answer about the resource is a value: no such bucket
(``exists`` False), no policy or no public access block (None). The delete helpers (used only by the
``delete-orphaned-uploads`` step) raise too: a failed step is recorded as failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from propflow_ops.errors import FetchError
from propflow_ops.results import unwrap
from propflow_ops.sources import aws

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys a call
OBJECT_COLUMNS = ["key", "size", "last_modified", "storage_class"]
MULTIPART_COLUMNS = ["key", "upload_id", "initiated"]


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "")
    return ""


def bucket_status(bucket: str, *, client: Any = None) -> dict[str, Any]:
    """HeadBucket: ``exists`` True (with the region) or False (with the reason); raises when S3 could not tell."""
    s3 = client or aws.client("s3")
    try:
        resp = s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return {"exists": False, "reason": "NoSuchBucket (HeadBucket 404)"}
        raise
    region = (resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}).get("x-amz-bucket-region")
    return {"exists": True, "region": region or resp.get("BucketRegion")}


def bucket_policy(bucket: str, *, client: Any = None) -> dict[str, Any] | None:
    """GetBucketPolicy: the policy as a dict, or None when the bucket has none."""
    s3 = client or aws.client("s3")
    try:
        text = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except Exception as exc:
        if _code(exc) == "NoSuchBucketPolicy":
            return None
        raise
    try:
        return dict(json.loads(text))
    except ValueError as exc:
        raise FetchError(f"bucket policy is not valid JSON: {exc}") from None


def public_access_block(bucket: str, *, client: Any = None) -> dict[str, Any] | None:
    """GetPublicAccessBlock: the four flags, or None when the bucket has no block."""
    s3 = client or aws.client("s3")
    try:
        config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except Exception as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return None
        raise
    return dict(config)


def inventory(bucket: str, *, client: Any = None, prefix: str = "", page_size: int = 1000) -> dict[str, Any]:
    """Every object (ListObjectsV2, all pages) and every incomplete multipart upload (all pages).

    Returns ``objects`` (key, size, last_modified UTC, storage_class), ``multipart`` (key, upload_id,
    initiated UTC) and ``pages``; raises when the bucket cannot be listed.
    """
    s3 = client or aws.client("s3")
    rows: list[tuple[Any, ...]] = []
    uploads: list[tuple[Any, ...]] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    ):
        pages += 1
        for o in page.get("Contents", []):
            rows.append((o["Key"], int(o.get("Size", 0)), o.get("LastModified"), o.get("StorageClass")))
    for page in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    ):
        for u in page.get("Uploads", []):
            uploads.append((u["Key"], u["UploadId"], u.get("Initiated")))
    objects = pd.DataFrame(rows, columns=OBJECT_COLUMNS)
    objects["last_modified"] = pd.to_datetime(objects["last_modified"], utc=True)
    objects["size"] = objects["size"].astype("int64")
    multipart = pd.DataFrame(uploads, columns=MULTIPART_COLUMNS)
    multipart["initiated"] = pd.to_datetime(multipart["initiated"], utc=True)
    return {"objects": objects, "multipart": multipart, "pages": pages}


def referenced_keys(query: str, url: str | None, *, timeout_s: int = 10) -> set[str]:
    """The S3 keys the database still references: the first column of ``query``, run read-only.

    The query is typed by someone (a runbook parameter): it runs through ``db.guarded_rows`` on the
    read-only engine, so whatever it holds (``; COMMIT; DELETE``, a data-modifying CTE, ``SET ... read
    write``, ``pg_terminate_backend``) it changes nothing; a refused query raises a :class:`FetchError`
    naming it, as does a missing URL (the orphan check cannot run without the references).
    """
    if not url:
        raise FetchError("no database URL (PROPFLOW_DATABASE_URL, or DATABASE_URL in the task definition)")
    from propflow_ops.sources import db
    from propflow_ops.sources.fetch import fetch_error

    engine = None
    try:
        engine = db.make_engine(url, connect_timeout_s=timeout_s, statement_timeout_ms=timeout_s * 1000)
        return {str(row[0]) for row in db.guarded_rows(engine, query) if row and row[0] is not None}
    except db.ReadOnlyViolation as exc:
        raise FetchError(f"photo_keys_query {exc}") from None
    except Exception as exc:  # noqa: BLE001 - re-raised as one line without the URL (the engine masks it)
        raise fetch_error(exc, engine) from None
    finally:
        if engine is not None:
            engine.dispose()


def service_task_definition(
    cluster: str, service: str, task_family: str, *, client: Any = None
) -> dict[str, Any]:
    """The task definition the service runs (else the family's latest).

    Returns ``task_definition`` (the DescribeTaskDefinition dict: holds env values, never display it),
    ``env`` (its environment, in memory only), ``arn`` and ``role_arn`` (taskRoleArn); raises when ECS
    could not be read.
    """
    from propflow_ops.sources import ecs

    td = ecs.current_task_definition(cluster, service, task_family, client=client)
    env = {k: v for k, v in ecs.task_environment(td).items() if v is not None}
    return {
        "task_definition": td,
        "env": env,
        "arn": td.get("taskDefinitionArn"),
        "role_arn": td.get("taskRoleArn") or None,
    }


def task_env(task: Any) -> dict[str, str]:
    """The environment of :func:`service_task_definition`'s result (a :class:`Fetched` or its value); {} when
    it failed or has none. In memory only: it may hold secrets."""
    value = unwrap(task)
    return dict(value.get("env") or {}) if isinstance(value, dict) else {}


def task_role_arn(task_definition: dict[str, Any] | None) -> str | None:
    """The task role of a DescribeTaskDefinition ``taskDefinition`` dict (None when it has none)."""
    if not task_definition:
        return None
    return task_definition.get("taskRoleArn") or None


# --- mutating helpers: used only by steps.s3 --------------------------------------------------


def delete_objects(
    bucket: str, keys: Sequence[str], *, batch: int = DELETE_BATCH, client: Any = None
) -> dict[str, Any]:
    """DeleteObjects in batches of at most ``batch`` keys. Returns deleted keys and per-key errors."""
    s3 = client or aws.client("s3")
    deleted: list[str] = []
    errors: list[dict[str, str]] = []
    batches = 0
    for i in range(0, len(keys), batch):
        chunk = list(keys[i : i + batch])
        resp = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": False}
        )
        batches += 1
        deleted.extend(d["Key"] for d in resp.get("Deleted", []))
        errors.extend({"key": e.get("Key", ""), "code": e.get("Code", "")} for e in resp.get("Errors", []))
    return {"deleted": deleted, "errors": errors, "batches": batches}


def abort_uploads(bucket: str, uploads: Iterable[tuple[str, str]], *, client: Any = None) -> list[str]:
    """AbortMultipartUpload for each (key, upload_id); returns the upload ids aborted."""
    s3 = client or aws.client("s3")
    aborted = []
    for key, upload_id in uploads:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        aborted.append(upload_id)
    return aborted


def object_last_modified(
    bucket: str, keys: Iterable[str], *, client: Any = None
) -> dict[str, datetime | None]:
    """HeadObject LastModified of each key (None when the object is gone)."""
    s3 = client or aws.client("s3")
    out: dict[str, datetime | None] = {}
    for key in keys:
        try:
            out[key] = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                out[key] = None
            else:
                raise
    return out
