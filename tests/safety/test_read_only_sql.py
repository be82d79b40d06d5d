"""1b. Read-only whatever a parameter holds: SQL typed into ``photo_keys_query`` (photo-upload, triage) runs in a
session the server holds read-only, one statement per execution, and a plan that writes, locks or calls a
function whose effect escapes the transaction is refused. Each attack below runs through the real runbook
against the sandbox; the whole world (every table's rows, columns, indexes, the sessions held open, Redis,
AWS) is compared before and after, and a session of ours must survive ``pg_terminate_backend``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from runs import in_process

from .harness import RunRecord, diff, present_slugs, run_cli, run_in_process, world_state

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("safety-sql")]

VICTIM = "propflow-safety-victim"
KEYS = "SELECT s3_key FROM photos"
# name -> the SQL an attacker (or a tired engineer) puts in photo_keys_query
ATTACKS: dict[str, str] = {
    "commit-then-delete": f"{KEYS}; COMMIT; DELETE FROM otp_codes; {KEYS}",
    "data-modifying-cte": f"WITH d AS (DELETE FROM otp_codes RETURNING id) {KEYS}",
    "read-write-then-delete": f"SET default_transaction_read_only = off; COMMIT; DELETE FROM otp_codes; {KEYS}",
    "session-characteristics": (
        f"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; COMMIT; DELETE FROM otp_codes; {KEYS}"
    ),
    "reset-all": f"RESET ALL; COMMIT; DELETE FROM otp_codes; {KEYS}",
    "begin-read-write": f"COMMIT; BEGIN READ WRITE; DELETE FROM otp_codes; COMMIT; {KEYS}",
    # OFFSET 0 keeps the filter inside: only the victim is signalled (never the run's own session first)
    "terminate-backend": (
        f"{KEYS} UNION ALL SELECT pg_terminate_backend(pid)::text FROM (SELECT pid FROM "
        f"pg_stat_activity WHERE application_name = '{VICTIM}' OFFSET 0) AS victim"
    ),
    "set-config": f"{KEYS} UNION ALL SELECT set_config('default_transaction_read_only', 'off', false)",
    "large-object": f"{KEYS} UNION ALL SELECT lo_unlink(oid)::text FROM pg_largeobject_metadata",
    "lock-rows": f"{KEYS} FOR UPDATE",
}
SLUGS = [s for s in ("photo-upload", "triage") if s in present_slugs()]
# triage reads photo_keys_query through the same source: two attacks prove it takes the same path
TRIAGE_ATTACKS = ("commit-then-delete", "terminate-backend")


CASES = [
    (slug, name) for slug in SLUGS for name in ATTACKS if slug != "triage" or name in TRIAGE_ATTACKS
] or [("none", "none")]


@dataclass
class Attack:
    name: str
    slug: str
    run: RunRecord
    changes: list[str] = field(default_factory=list)
    victim_alive: bool = True
    large_objects: tuple[int, int] = (0, 0)


def _large_objects(sandbox: Any) -> int:
    with sandbox.pg.connect(application_name="propflow-safety-snapshot", autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0])


@pytest.fixture(scope="module")
def attacks(
    sandbox: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, str], Attack]]:
    """Each attack through each runbook that takes photo_keys_query, one at a time, each in a fresh healthy
    world (so one attack's damage cannot hide the next one's), the world compared around it. The runs go
    through the command's own code in this process, the notebook on a warm kernel (tests/runs.py;
    PROPFLOW_TEST_IN_PROCESS=0: `propflow-ops run` processes)."""
    root: Path = tmp_path_factory.mktemp("safety-sql")
    out: dict[tuple[str, str], Attack] = {}
    try:
        for slug, name in CASES:
            if slug == "none":
                continue
            sandbox.use()
            with sandbox.pg.connect(application_name="propflow-safety-snapshot", autocommit=True) as conn:
                conn.execute("SELECT lo_create(0)")  # something for lo_unlink to destroy
            victim = sandbox.pg.connect(application_name=VICTIM, autocommit=True)
            try:
                before, los = world_state(sandbox), _large_objects(sandbox)
                run = (run_in_process if in_process() else run_cli)(
                    f"sql-{name}",
                    slug,
                    dict(sandbox.env),
                    "-p",
                    "photo_keys_query",
                    ATTACKS[name],
                    "--incident",
                    f"SAFETY-SQL-{name}",
                    output_dir=root / slug,
                    timeout=300,
                )
                a = Attack(name, slug, run, diff(before, world_state(sandbox)))
                try:
                    a.victim_alive = victim.execute("SELECT 1").fetchone() == (1,)
                except Exception:  # noqa: BLE001 - the attack killed it
                    a.victim_alive = False
                a.large_objects = (los, _large_objects(sandbox))
                out[(slug, name)] = a
            finally:
                victim.close()
        yield out
    finally:
        sandbox.use()


@pytest.mark.parametrize(("slug", "name"), CASES)
def test_a_typed_query_changes_nothing(attacks, slug, name):
    if slug == "none":
        pytest.skip("no runbook takes photo_keys_query")
    a = attacks[(slug, name)]
    assert a.run.folder is not None and a.run.evidence, a.run.explain()
    assert a.changes == [], (
        f"{slug} with photo_keys_query={ATTACKS[name]!r} changed the world:\n" + "\n".join(a.changes)
    )
    assert a.victim_alive, f"{slug} with photo_keys_query={ATTACKS[name]!r} terminated another session"
    assert a.large_objects[0] == a.large_objects[1], (
        f"large objects {a.large_objects[0]} -> {a.large_objects[1]}"
    )
    assert not any(act["mode"] != "planned" for act in a.run.evidence.get("actions", [])), a.run.evidence[
        "actions"
    ]


@pytest.mark.parametrize(("slug", "name"), CASES)
def test_a_refused_query_is_reported_not_read_as_clean(attacks, slug, name):
    """The orphan check cannot tell orphans without the keys: it says why (error), never ok on no keys."""
    if slug == "none":
        pytest.skip("no runbook takes photo_keys_query")
    a = attacks[(slug, name)]
    found = a.run.findings().get("S3_ORPHANED_UPLOADS")
    if found is None:  # triage folds it into its storage finding
        return
    assert found["status"] in ("error", "fail"), f"{a.run.label}: {found}"
