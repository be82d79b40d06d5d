"""RDS remediation steps: reboot with failover, create a read replica.

``command`` is the exact ``aws`` CLI equivalent; ``execute`` makes the same call
through boto3 only when the run's ``apply`` names the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from propflow_ops.change import protect, verify
from propflow_ops.remediation import Step, plan_commands, shell_line
from propflow_ops.results import unwrap
from propflow_ops.sources import aws


def _summary(resp: dict[str, Any]) -> dict[str, Any]:
    inst = resp.get("DBInstance") or {}
    return {
        "instance": inst.get("DBInstanceIdentifier"),
        "status": inst.get("DBInstanceStatus"),
        "source": inst.get("ReadReplicaSourceDBInstanceIdentifier"),
    }


def reboot_db_failover(db_instance: str, instance: Any = None) -> Step:
    """Reboot the instance, failing over to the standby when it is Multi-AZ (the runbook's last resort).

    ``instance`` (describe-db-instances, if already fetched) decides whether ``--force-failover`` applies:
    RDS refuses it on a Single-AZ instance, so there the step is a plain reboot and says so.
    """
    instance = unwrap(instance)  # a Fetched (sources.fetch.fetch(rds.db_instance, ...)) or its value
    multi_az = bool(instance.get("MultiAZ")) if isinstance(instance, Mapping) else True
    failover = multi_az
    args = ["aws", "rds", "reboot-db-instance", "--db-instance-identifier", db_instance]
    if failover:
        args.append("--force-failover")
    precondition = ""
    if isinstance(instance, Mapping) and instance.get("DBInstanceStatus") not in (
        "available",
        "storage-full",
        "incompatible-parameters",
    ):
        precondition = (
            f"instance is {instance.get('DBInstanceStatus')}; RDS only reboots an available instance"
        )

    def execute() -> dict[str, Any]:
        kwargs: dict[str, Any] = {"DBInstanceIdentifier": db_instance}
        if failover:
            kwargs["ForceFailover"] = True
        out = _summary(aws.client("rds").reboot_db_instance(**kwargs))
        out["force_failover"] = failover
        return out

    what = (
        f"Reboot {db_instance} with a forced failover to the Multi-AZ standby (last resort: every "
        "connection drops; expect 60-120 s of errors while DNS moves to the new primary)."
    )
    if not failover:
        what = (
            f"Reboot {db_instance} (Single-AZ: no standby, so no failover; the instance is unavailable "
            "for the whole reboot)."
        )
    command, argv = plan_commands((args, ""))
    return Step(
        name="reboot-db-failover",
        what=what,
        command=command,
        argv=argv,
        execute=execute,
        risk="Kills every session, including ones mid-transaction. Try terminating the offending sessions "
        "(pg_terminate_backend) and fixing the pool first.",
        precondition=precondition,
        resource=f"rds:{db_instance}",
        protection=f"a snapshot of {db_instance} (create-db-snapshot), waited for until available",
        protect=lambda opts, incident: protect.rds_snapshot(
            db_instance, "reboot-db-failover", incident, no_snapshot=opts.no_snapshot
        ),
        verify=lambda result, before: verify.rds_available(db_instance, failover=failover),
        undo=lambda result, before, kept: restore_undo(db_instance, kept),
    )


def restore_undo(db_instance: str, kept: Mapping[str, Any]) -> dict[str, Any]:
    """A reboot or a migration cannot be replayed backwards; the snapshot taken first can be restored."""
    snap = kept.get("snapshot")
    if not snap:
        return {
            "detail": f"no snapshot was taken ({kept.get('detail', 'none')}): restore from the latest "
            f"automated backup (point in time) if data must come back"
        }
    return {
        "detail": f"restore snapshot {snap} to a new instance, check it, then point the application at it",
        "snapshot": snap,
        "command": shell_line(
            [
                "aws",
                "rds",
                "restore-db-instance-from-db-snapshot",
                "--db-instance-identifier",
                f"{db_instance}-restored",
                "--db-snapshot-identifier",
                str(snap),
            ]
        ),
    }


def create_read_replica(
    db_instance: str, replica_id: str = "propflow-db-read", existing: list[str] | None = None
) -> Step:
    """Create a read replica of ``db_instance`` named ``replica_id`` (the application must be pointed at it)."""

    def execute() -> dict[str, Any]:
        resp = aws.client("rds").create_db_instance_read_replica(
            DBInstanceIdentifier=replica_id, SourceDBInstanceIdentifier=db_instance
        )
        return _summary(resp)

    already = replica_id in (existing or [])
    command, argv = plan_commands(
        (
            [
                "aws",
                "rds",
                "create-db-instance-read-replica",
                "--db-instance-identifier",
                replica_id,
                "--source-db-instance-identifier",
                db_instance,
            ],
            "",
        )
    )
    return Step(
        name="create-read-replica",
        what=f"Create read replica {replica_id} of {db_instance}. It only helps once read-only queries are "
        "routed to it (a second DATABASE_URL in the application).",
        command=command,
        argv=argv,
        execute=execute,
        risk="Takes 10-30 minutes and costs as much as the primary; replication lag means reads may be stale.",
        precondition=f"{replica_id} already exists as a replica of {db_instance}" if already else "",
        resource=f"rds:{replica_id}",
        verify=lambda result, before: verify.rds_available(replica_id),
        undo=lambda result, before, kept: {
            "detail": f"delete the replica {replica_id} (the primary is untouched)",
            "command": shell_line(
                [
                    "aws",
                    "rds",
                    "delete-db-instance",
                    "--db-instance-identifier",
                    replica_id,
                    "--skip-final-snapshot",
                ]
            ),
        },
    )
