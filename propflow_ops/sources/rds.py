"""RDS: describe one DB instance (fetch only; judged by ``checks.db``)."""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from propflow_ops.errors import FetchError as FetchError  # tests and older callers import it from here
from propflow_ops.sources import aws


def db_instance(identifier: str, *, client: Any = None) -> dict[str, Any]:
    """``DBInstances[0]`` of describe-db-instances; ``{}`` when the instance does not exist (RDS said so: an
    answer, never None, which a :class:`~propflow_ops.results.Fetched` reads as "not fetched"); raises when RDS
    could not be asked (call it through ``sources.fetch.fetch``)."""
    rds = client or aws.client("rds")
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier).get("DBInstances") or []
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return {}
        raise
    return dict(found[0]) if found else {}


def read_replicas(instance: dict[str, Any] | None) -> list[str]:
    return list((instance or {}).get("ReadReplicaDBInstanceIdentifiers") or [])
