"""Step ``delete-orphaned-uploads``: delete exactly the orphans the runbook listed, re-checking the database.

The runbook document's one-liner would have deleted every object older than
7 days, referenced or not (and, as written, its jq compares a date string with
a number, so it selects nothing). This step deletes only the objects the
orphan check listed (unreferenced by ``photo_keys_query`` and older than
``orphan_age_days``), re-runs the query just before each batch so a key that
became referenced meanwhile is kept, and aborts the stale incomplete multipart
uploads that were listed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops.change import protect, verify
from propflow_ops.remediation import Step, plan_commands
from propflow_ops.sources import s3 as s3_source
from propflow_ops.sources.fetch import fetch

NAME = "delete-orphaned-uploads"


def _bytes(n: int) -> str:
    from propflow_ops.checks.s3 import _bytes as fmt

    return fmt(n)


def delete_orphaned_uploads(
    bucket: str,
    orphans: pd.DataFrame,
    stale_uploads: pd.DataFrame,
    *,
    photo_keys_query: str,
    database_url: str | None,
    orphan_age_days: int = 7,
    batch: int = s3_source.DELETE_BATCH,
    client: Any = None,
) -> Step:
    """Delete the listed orphan objects (in batches) and abort the listed stale multipart uploads."""
    keys = [str(k) for k in orphans["key"]] if not orphans.empty else []
    sizes = dict(zip(orphans["key"], orphans["size"], strict=False)) if not orphans.empty else {}
    uploads = (
        [(str(r.key), str(r.upload_id)) for r in stale_uploads.itertuples()]
        if not stale_uploads.empty
        else []
    )
    total = int(sum(sizes.values()))
    what = (
        f"Delete {len(keys)} orphaned objects ({_bytes(total)}) from s3://{bucket} in batches of {batch}, "
        f"re-checking before each batch that the database still references none of them and that each is "
        f"older than {orphan_age_days} days; abort {len(uploads)} stale incomplete multipart uploads."
    )
    command, argv = plan_commands(
        (
            ["aws", "s3api", "delete-objects", "--bucket", bucket, "--delete", "file://orphans-batch-N.json"],
            f"{(len(keys) + batch - 1) // batch} batch(es) of the listed keys",
        ),
        (
            [
                "aws",
                "s3api",
                "abort-multipart-upload",
                "--bucket",
                bucket,
                "--key",
                "KEY",
                "--upload-id",
                "ID",
            ],
            f"x{len(uploads)}",
        ),
    )
    listed = [f"{k}  ({sizes[k]} bytes)" for k in keys[:50]] + [
        f"multipart {k} upload {u[:16]}..." for k, u in uploads[:20]
    ]
    more = len(keys) - 50 if len(keys) > 50 else 0
    preview = "\n".join(listed) + (f"\n... and {more} more objects" if more else "")

    def execute() -> dict[str, Any]:
        deleted: list[str] = []
        kept: list[str] = []
        errors: list[dict[str, str]] = []
        batches = 0
        cutoff = datetime.now(UTC) - timedelta(days=orphan_age_days)
        for i in range(0, len(keys), batch):
            chunk = keys[i : i + batch]
            refs = fetch(s3_source.referenced_keys, photo_keys_query, database_url, target="referenced_keys")
            if refs.error is not None:
                raise RuntimeError(f"database re-check failed, nothing more deleted: {refs.error}")
            referenced = refs.value or set()
            current = s3_source.object_last_modified(bucket, chunk, client=client)
            safe = []
            for key in chunk:
                modified = current.get(key)
                if key in referenced or modified is None or modified >= cutoff:
                    kept.append(key)
                else:
                    safe.append(key)
            if safe:
                result = s3_source.delete_objects(bucket, safe, batch=batch, client=client)
                deleted.extend(result["deleted"])
                errors.extend(result["errors"])
                batches += 1
        aborted = s3_source.abort_uploads(bucket, uploads, client=client)
        if errors:
            raise RuntimeError(f"{len(deleted)} deleted, {len(errors)} failed: {errors[:3]}")
        return {
            "deleted_objects": len(deleted),
            "deleted_bytes": int(sum(sizes.get(k, 0) for k in deleted)),
            "kept_now_referenced_or_changed": len(kept),
            "aborted_multipart_uploads": len(aborted),
            "batches": batches,
            "deleted_keys": deleted,
        }

    def undo(result: Any, before: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
        if kept.get("versioning") == "Enabled":
            return {
                "detail": "versioned bucket: remove each deleted key's delete marker (keys listed in this "
                "action's protect.keys) to restore it",
                "command": f"aws s3api list-object-versions --bucket {bucket} --prefix KEY  # then: "
                f"aws s3api delete-object --bucket {bucket} --key KEY --version-id DELETE_MARKER_ID",
            }
        return {
            "detail": f"cannot be undone: versioning of s3://{bucket} is {kept.get('versioning', 'unknown')}; "
            "the deleted keys are listed in this action's protect.keys"
        }

    return Step(
        NAME,
        what,
        command,
        execute,
        risk="Deletes objects for good (unless the bucket is versioned). Only the keys listed here.",
        preview=preview or "nothing listed: the step would delete nothing",
        argv=argv,
        resource=f"s3:{bucket}",
        protection="the list of keys to delete and the bucket's versioning state, saved in the evidence",
        protect=lambda opts, incident: protect.s3_listing(bucket, keys),
        verify=lambda result, before: verify.s3_gone(bucket, (result or {}).get("deleted_keys") or []),
        undo=undo,
    )
