"""Change control end to end against the sandbox: ``propflow-ops run ... --apply`` as an engineer runs it.

- refused without confirmation (no terminal, a target that is not the sandbox): exit 2, one line, nothing
  changed, the refusal in the incident record; confirmed on a terminal by typing the step name;
- a lock conflict between two concurrent runs (two processes: one holds, the other is refused with who and
  since when), while the first one's step does not verify (/health keeps failing) and makes its run exit 1;
- migration steps: no snapshot possible without --no-snapshot, a downgrade refused while
  MIGRATION_OBJECT_EXISTS fails unless --force;
- what the terminal, report.html (at the top), evidence.json and the incident record say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from propflow_ops.change.target import MARKER

pytestmark = pytest.mark.slow
RESOURCE = "ecs:propflow/propflow-api"


class Cli:
    def __init__(self, proc: subprocess.Popen[str], out: str = "", err: str = "") -> None:
        self.proc, self.out, self.err = proc, out, err

    @property
    def code(self) -> int:
        return int(self.proc.returncode)

    @property
    def folder(self) -> Path | None:
        last = self.out.strip().splitlines()[-1] if self.out.strip() else ""
        return Path(last) if last and Path(last).is_dir() else None

    @property
    def evidence(self) -> dict[str, Any]:
        return json.loads((self.folder / "evidence.json").read_text()) if self.folder else {}

    def actions(self) -> dict[str, dict[str, Any]]:
        return {a["step"]: a for a in self.evidence.get("actions", [])}

    def explain(self) -> str:
        return f"exit {self.code}\nstdout: {self.out[-1500:]}\nstderr: {self.err[-2500:]}"


def start(
    env: dict[str, str], out: Path, *args: str, stdin: Any = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    full = {**os.environ, **env, "PROPFLOW_OUTPUT_DIR": str(out)}
    return subprocess.Popen(
        [sys.executable, "-m", "propflow_ops.cli", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> Cli:
    out, err = proc.communicate(timeout=timeout)
    return Cli(proc, out, err)


def cli(env: dict[str, str], out: Path, *args: str) -> Cli:
    return finish(start(env, out, *args))


def record(out: Path, incident: str) -> list[dict[str, Any]]:
    path = out / incident / "incident.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def not_sandbox(sandbox_env: dict[str, str]) -> dict[str, str]:
    """The sandbox's targets without its marker: what a production environment looks like to change control
    (the bare PROPFLOW_SANDBOX=1 flag stays: it must not be trusted)."""
    env = {k: v for k, v in sandbox_env.items() if k != MARKER}
    assert env["PROPFLOW_SANDBOX"] == "1"
    return env


def service(sandbox: Any) -> dict[str, Any]:
    return sandbox.aws.client("ecs").describe_services(cluster="propflow", services=["propflow-api"])[
        "services"
    ][0]


def test_apply_without_confirmation_is_refused_in_one_line_and_recorded(world, sandbox_env, tmp_path):
    sb = world()
    before = service(sb)
    run = cli(
        not_sandbox(sandbox_env),
        tmp_path,
        "run",
        "api-down",
        "--incident",
        "INC-NOCONFIRM",
        "--apply",
        "rollback",
        "--reason",
        "INC-NOCONFIRM bad deploy",
    )
    assert run.code == 2, run.explain()
    assert len(run.err.strip().splitlines()) == 1 and "Traceback" not in run.err, run.err
    assert "refused" in run.err and "--yes" in run.err and "terminal" in run.err, run.err
    assert run.folder is None and not list(
        (tmp_path / "INC-NOCONFIRM").glob("*-api-down*")
    )  # nothing half-written
    after = service(sb)
    assert (after["taskDefinition"], after["desiredCount"]) == (
        before["taskDefinition"],
        before["desiredCount"],
    )
    refused = [e for e in record(tmp_path, "INC-NOCONFIRM") if e["event"] == "action"]
    assert [(e["step"], e["mode"], e["phase"], e["reason"]) for e in refused] == [
        ("rollback", "refused", "refused", "INC-NOCONFIRM bad deploy")
    ]


def test_apply_without_reason_is_a_usage_error_even_in_the_sandbox(world, sandbox_env, tmp_path):
    world()
    run = cli(sandbox_env, tmp_path, "run", "api-down", "--apply", "force-new-deployment")
    assert run.code == 2 and "--reason" in run.err and run.folder is None, run.explain()


def test_confirmation_typed_on_a_terminal_after_the_plan(world, sandbox_env, tmp_path):
    sb = world("api-bad-deploy")
    before = service(sb)["taskDefinition"]
    master, slave = os.openpty()
    proc = start(
        not_sandbox(sandbox_env),
        tmp_path / "typed",
        "run",
        "api-down",
        "--incident",
        "INC-TTY",
        "--apply",
        "rollback",
        "--reason",
        "INC-TTY: roll back the bad deploy",
        stdin=slave,
    )
    os.close(slave)
    os.write(master, b"rollback\n")  # read by the prompt once the kernel has handed over the plan
    run = finish(proc)
    os.close(master)
    assert "This target is NOT the sandbox" in run.err and "Roll propflow-api back" in run.err, run.explain()
    step = run.actions()["rollback"]
    assert step["mode"] == "executed" and step["confirmed"] == "typed on the terminal", step
    assert step["reason"] == "INC-TTY: roll back the bad deploy" and step["by"]
    assert service(sb)["taskDefinition"] != before
    # the previous revision runs (the sandbox's service converges as ECS's would): verified within seconds
    assert step["verified"] is True, step
    assert "deployment COMPLETED, 2/2 tasks running on propflow-api:3" in step["verification"]["seen"], step
    assert step["verification"]["waited_s"] < 10, step
    assert step["undo"]["command"].endswith(
        f"--task-definition {before.rsplit('/', 1)[-1]} --desired-count 2"
    ), step
    # a wrong answer is a refusal, and the service stays where it is
    sb = world("api-bad-deploy")
    master, slave = os.openpty()
    proc = start(
        not_sandbox(sandbox_env),
        tmp_path / "wrong",
        "run",
        "api-down",
        "--incident",
        "INC-TTY2",
        "--apply",
        "rollback",
        "--reason",
        "INC-TTY2",
        stdin=slave,
    )
    os.close(slave)
    os.write(master, b"yes\n")
    run = finish(proc)
    os.close(master)
    assert run.actions()["rollback"]["mode"] == "refused", run.explain()
    assert service(sb)["taskDefinition"] == before
    assert run.code == 1


def test_two_concurrent_applies_one_holds_the_lock_the_other_is_refused(
    world, sandbox, sandbox_env, tmp_path
):
    """Engineer A restarts the API while /health keeps failing (api-oom): A's step does not verify, so A holds
    the lock for its whole bounded wait; engineer B, starting meanwhile, is refused with A's name and since."""
    world("api-oom")
    env_a = {**sandbox_env, "PROPFLOW_VERIFY_TIMEOUT_S": "45"}
    a = start(
        env_a,
        tmp_path,
        "run",
        "api-down",
        "--incident",
        "INC-LOCK-A",
        "--apply",
        "force-new-deployment",
        "--reason",
        "A: restart the OOM-ing tasks",
    )
    ddb = sandbox.aws.client("dynamodb")
    deadline = time.monotonic() + 180
    held: dict[str, Any] = {}
    while time.monotonic() < deadline and a.poll() is None:
        held = (
            ddb.get_item(
                TableName=sandbox_env["PROPFLOW_LOCK_TABLE"],
                Key={"resource": {"S": RESOURCE}},
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
        if held:
            break
        time.sleep(0.3)
    assert held, finish(a).explain()
    listed = cli(sandbox_env, tmp_path, "lock", "list")
    assert RESOURCE in listed.out and "INC-LOCK-A" in listed.out and "force-new-deployment" in listed.out, (
        listed.out
    )
    b = cli(
        sandbox_env,
        tmp_path,
        "run",
        "api-down",
        "--incident",
        "INC-LOCK-B",
        "--apply",
        "force-new-deployment",
        "--reason",
        "B: restart too",
    )
    ra = finish(a)
    refused = b.actions()["force-new-deployment"]
    assert refused["mode"] == "refused", b.explain()
    assert "locked by" in refused["detail"] and held["since"]["S"] in refused["detail"], refused
    assert "INC-LOCK-A" in refused["detail"] and refused["lock"]["owner"] == held["owner"]["S"]
    assert "APPLIED force-new-deployment: REFUSED" in b.out
    # A: executed, NOT verified (what it saw is said), the run exits 1, the lock is released
    step = ra.actions()["force-new-deployment"]
    assert step["mode"] == "executed" and step["verified"] is False, ra.explain()
    assert "1/2 tasks running" in step["verification"]["seen"], step  # api-oom: one task keeps dying
    assert step["verification"]["waited_s"] >= 40, step  # the whole wait: it never converges
    assert ra.code == 1 and "NOT VERIFIED" in ra.out, ra.explain()
    assert ra.actions()["rollback"]["detail"].startswith("Not applied in this run."), ra.actions()["rollback"]
    assert not ddb.scan(TableName=sandbox_env["PROPFLOW_LOCK_TABLE"]).get("Items")
    assert "none" in cli(sandbox_env, tmp_path, "lock", "list").out
    # report.html says it first; the incident record has A's started and ended, B's refusal
    html = (ra.folder / "report.html").read_text()
    assert html.index("Changes applied by this run") < html.index("Findings")
    assert "executed, NOT VERIFIED" in html and "A: restart the OOM-ing tasks" in html
    events_a = [(e["phase"], e["mode"]) for e in record(tmp_path, "INC-LOCK-A") if e["event"] == "action"]
    assert events_a == [("started", "started"), ("ended", "executed")], events_a
    events_b = [(e["phase"], e["mode"]) for e in record(tmp_path, "INC-LOCK-B") if e["event"] == "action"]
    assert events_b == [("refused", "refused")], events_b


def test_lock_break_needs_a_reason_and_is_recorded(sandbox, sandbox_env, tmp_path):
    from propflow_ops.change.lock import DynamoLocks

    locks = DynamoLocks(sandbox_env["PROPFLOW_LOCK_TABLE"], sandbox.aws.client("dynamodb"))
    locks.acquire("rds:propflow-db", "alice@gone (arn:x)", "reboot-db-failover", "INC-BREAK")
    assert cli(sandbox_env, tmp_path, "lock", "break", "rds:propflow-db").code == 2
    run = cli(sandbox_env, tmp_path, "lock", "break", "rds:propflow-db", "--reason", "alice's laptop died")
    assert run.code == 0 and "alice@gone" in run.out, run.err
    assert locks.list() == []
    ev = [e for e in record(tmp_path, "INC-BREAK") if e["event"] == "action"]
    assert ev and ev[0]["phase"] == "lock-break" and ev[0]["reason"] == "alice's laptop died"


def test_migration_without_rds_needs_no_snapshot_and_downgrade_is_guarded(
    world, sandbox, sandbox_env, tmp_path
):
    sb = world("migration-pending")
    before = sb.pg.alembic_revision()
    run = cli(
        sandbox_env,
        tmp_path,
        "run",
        "migration",
        "-p",
        "db_instance",
        "",
        "--apply",
        "migration-upgrade",
        "--reason",
        "finish the deploy",
    )
    step = run.actions()["migration-upgrade"]
    assert step["mode"] == "refused" and "--no-snapshot" in step["detail"], run.explain()
    assert sb.pg.alembic_revision() == before
    run = cli(
        sandbox_env,
        tmp_path,
        "run",
        "migration",
        "-p",
        "db_instance",
        "",
        "--apply",
        "migration-upgrade",
        "--reason",
        "finish the deploy",
        "--no-snapshot",
    )
    step = run.actions()["migration-upgrade"]
    assert step["mode"] == "executed" and step["verified"] is True, run.explain()
    assert "alembic current" in step["verification"]["seen"] and sb.pg.alembic_revision() != before
    assert step["undo"]["command"].startswith("alembic -c") and "downgrade" in step["undo"]["command"]
    # the downgrade would undo the last good migration while its object exists: refused unless forced
    sb = world("migration-object-exists")
    before = sb.pg.alembic_revision()
    run = cli(
        sandbox_env, tmp_path, "run", "migration", "--apply", "migration-downgrade", "--reason", "undo it"
    )
    step = run.actions()["migration-downgrade"]
    assert step["mode"] == "refused" and "MIGRATION_OBJECT_EXISTS" in step["detail"], run.explain()
    assert sb.pg.alembic_revision() == before
    run = cli(
        sandbox_env,
        tmp_path,
        "run",
        "migration",
        "--apply",
        "migration-downgrade",
        "--reason",
        "undo it",
        "--force",
    )
    step = run.actions()["migration-downgrade"]
    assert step["mode"] == "executed" and step["forced"].startswith("despite MIGRATION_OBJECT_EXISTS"), (
        run.explain()
    )
    snap = step["protect"]["snapshot"]
    assert snap in [
        s["DBSnapshotIdentifier"]
        for s in sandbox.aws.client("rds").describe_db_snapshots(DBInstanceIdentifier="propflow-db")[
            "DBSnapshots"
        ]
    ]
    assert step["undo"]["snapshot"] == snap and "upgrade" in step["undo"]["command"]
