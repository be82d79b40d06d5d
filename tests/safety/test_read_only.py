"""1. Read-only by default: every runbook, with its defaults, in every composite world, makes only read
calls to AWS and leaves the world (AWS, PostgreSQL, Redis, migration files, HTTP side effects) unchanged."""

from __future__ import annotations

import pytest

from .harness import WORLDS, diff, present_slugs, uncovered_scenarios

# Each test that reads a world joins that world's xdist group (conftest.world_group).
pytestmark = [pytest.mark.slow]


def test_the_composite_worlds_cover_every_scenario():
    assert uncovered_scenarios() == set(), "add these scenarios to a world in tests/safety/harness.py WORLDS"


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("slug", present_slugs())
def test_a_default_run_makes_only_read_calls(worlds, world, slug):
    run = worlds[world].runs[slug]
    assert run.code != -9 and run.folder is not None, run.explain()
    if slug != "post-incident":
        assert run.calls, (
            f"{run.label}: the recording proxy saw no AWS call at all (is AWS_ENDPOINT_URL honoured?)"
        )
    mutating = sorted({str(c) for c in run.calls if not c.read_only})
    assert mutating == [], f"{run.label} made mutating AWS calls with its defaults: {mutating}"


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("slug", present_slugs())
def test_a_default_run_only_plans_its_steps(worlds, world, slug):
    run = worlds[world].runs[slug]
    modes = {a["step"]: a["mode"] for a in run.evidence.get("actions", [])}
    assert all(m == "planned" for m in modes.values()), f"{run.label}: {modes}"


@pytest.mark.parametrize("world", list(WORLDS))
def test_the_world_is_unchanged_after_every_runbook_ran(worlds, world):
    w = worlds[world]
    assert w.runs, "no runbook ran"
    changes = diff(w.before, w.after)
    assert changes == [], f"world {world} ({', '.join(w.scenarios) or 'healthy'}) changed:\n" + "\n".join(
        changes
    )


@pytest.mark.slow
@pytest.mark.parametrize("slug", [s for s in ("photo-upload", "triage") if s in present_slugs()] or ["none"])
def test_a_query_parameter_cannot_turn_a_default_run_into_a_write(sandbox, tmp_path, slug):
    """photo_keys_query is SQL the engineer may edit: a default run still must not write with it."""
    if slug == "none":
        pytest.skip("no runbook takes photo_keys_query yet")
    from .harness import run_cli

    sandbox.use()
    before = sandbox.snapshot()["database"]
    run = run_cli(
        "query",
        slug,
        dict(sandbox.env),
        "-p",
        "photo_keys_query",
        "DELETE FROM photos RETURNING s3_key",
        output_dir=tmp_path,
        timeout=300,
    )
    after = sandbox.snapshot()["database"]
    assert run.folder is not None, run.explain()
    assert after == before, f"{slug} wrote to the database through photo_keys_query: {diff(before, after)}"
