from __future__ import annotations

import pytest

from propflow_ops.findings import Evidence
from propflow_ops.remediation import run_step
from propflow_ops.sources import aws, rds
from propflow_ops.steps import rds as steps


def ev(*apply: str) -> Evidence:
    return Evidence(
        "db-connection",
        "Database Connection Issues",
        {},
        {"reason": "unit test", "confirm": apply[0] if apply else ""},
        apply=list(apply),
    )


@pytest.fixture
def db(moto_aws):
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier="propflow-db",
        DBInstanceClass="db.t3.medium",
        Engine="postgres",
        MasterUsername="propflow",
        MasterUserPassword="pw-12345678",
        AllocatedStorage=20,
        MultiAZ=True,
    )
    return aws.client("rds")


def test_reboot_failover_plan_and_apply(db):
    inst = rds.db_instance("propflow-db")
    step = steps.reboot_db_failover("propflow-db", inst)
    assert step.command == "aws rds reboot-db-instance --db-instance-identifier propflow-db --force-failover"
    assert run_step(ev(), step).mode == "planned"
    out = run_step(ev("reboot-db-failover"), step)
    assert out.mode == "executed" and out.result["force_failover"] is True


def test_reboot_single_az_has_no_failover_flag(db):
    inst = dict(rds.db_instance("propflow-db"), MultiAZ=False)
    assert "--force-failover" not in steps.reboot_db_failover("propflow-db", inst).command


def test_create_read_replica(db):
    step = steps.create_read_replica("propflow-db")
    assert step.command == (
        "aws rds create-db-instance-read-replica --db-instance-identifier propflow-db-read "
        "--source-db-instance-identifier propflow-db"
    )
    assert run_step(ev(), step).mode == "planned"
    assert [d["DBInstanceIdentifier"] for d in db.describe_db_instances()["DBInstances"]] == ["propflow-db"]
    out = run_step(ev("create-read-replica"), step)
    assert out.mode == "executed"
    assert rds.read_replicas(rds.db_instance("propflow-db")) == ["propflow-db-read"]
    again = run_step(
        ev("create-read-replica"), steps.create_read_replica("propflow-db", existing=["propflow-db-read"])
    )
    assert again.mode == "failed"


def test_db_instance_missing_is_none(db):
    assert rds.db_instance("nope") == {}  # an answer: not found (None would read as not fetched)
