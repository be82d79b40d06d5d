"""Before a step that can destroy: an RDS snapshot, or the S3 keys and the bucket's versioning state.

A protection either returns what it recorded (kept in the action's ``protect``) or raises :class:`Refused`
with the reason the step must not run (no snapshot possible and no ``--no-snapshot``, a snapshot that did
not complete in time, ...).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from propflow_ops.findings import utcnow

SNAPSHOT_WAIT_S = 60.0


class Refused(Exception):
    """The step must not run; the message says why and what to do."""


def snapshot_id(db_instance: str, step: str, incident_id: str) -> str:
    """RDS snapshot identifiers: letters, digits, hyphens, start with a letter, at most 255."""
    raw = f"propflow-ops-{incident_id}-{step}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}"
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")[
        :255
    ]  # RDS stores lower case


def rds_snapshot(
    db_instance: str, step: str, incident_id: str, *, no_snapshot: bool, wait_s: float = SNAPSHOT_WAIT_S
) -> dict[str, Any]:
    """Snapshot ``db_instance`` and wait (bounded) until it is available. ``db_instance`` empty: the database
    is not on RDS, so no snapshot is possible and only ``--no-snapshot`` lets the step run."""
    if not db_instance:
        if no_snapshot:
            return {
                "snapshot": None,
                "detail": "database not on RDS: no snapshot possible; applied with --no-snapshot",
            }
        raise Refused(
            "the database is not on RDS (db_instance is empty): no snapshot is possible; take a backup "
            "(pg_dump) and apply again with --no-snapshot (JupyterLab: no_snapshot = True)"
        )
    if no_snapshot:
        return {
            "snapshot": None,
            "detail": f"--no-snapshot: {db_instance} not snapshotted (the engineer's choice)",
        }
    from propflow_ops.sources import aws

    rds = aws.client("rds")
    ident = snapshot_id(db_instance, step, incident_id)
    try:
        snap = rds.create_db_snapshot(DBSnapshotIdentifier=ident, DBInstanceIdentifier=db_instance)[
            "DBSnapshot"
        ]
    except Exception as exc:  # noqa: BLE001 - no snapshot, no destructive step
        raise Refused(
            f"snapshot of {db_instance} failed, step not run: {aws.aws_error_text(exc)} (if the "
            "database is not on RDS, set db_instance empty and pass --no-snapshot)"
        ) from None
    status = snap.get("Status")
    deadline = time.monotonic() + wait_s
    while status != "available" and time.monotonic() < deadline:
        time.sleep(2)
        status = rds.describe_db_snapshots(DBSnapshotIdentifier=ident)["DBSnapshots"][0].get("Status")
    if status != "available":
        raise Refused(
            f"snapshot {ident} of {db_instance} is still {status} after {wait_s:.0f} s; apply again "
            "once `aws rds wait db-snapshot-available --db-snapshot-identifier "
            f"{ident}` returns"
        )
    return {
        "snapshot": ident,
        "db_instance": db_instance,
        "status": status,
        "detail": f"snapshot {ident} of {db_instance} available",
    }


def s3_listing(bucket: str, keys: Iterable[str]) -> dict[str, Any]:
    """The keys about to be deleted and whether the bucket keeps versions (so whether they can come back)."""
    from propflow_ops.sources import aws

    listed = list(keys)
    try:
        state = aws.client("s3").get_bucket_versioning(Bucket=bucket).get("Status") or "never enabled"
    except Exception as exc:  # noqa: BLE001 - unknown versioning is recorded as such, the list is kept
        state = f"unknown ({aws.aws_error_text(exc)})"
    recoverable = state == "Enabled"
    return {
        "bucket": bucket,
        "versioning": state,
        "keys": listed,
        "recoverable": recoverable,
        "detail": (
            f"{len(listed)} keys listed; versioning {state}: "
            + (
                "a deletion leaves a delete marker, removing it restores the object"
                if recoverable
                else "a deletion is permanent"
            )
        ),
    }
