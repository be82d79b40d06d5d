"""2. No secrets or PII out: after every runbook ran in every world (and against every dead target), no
file it wrote and nothing it printed holds a canary; the reports still show that each setting exists."""

from __future__ import annotations

import pytest

from .harness import WORLDS, canary_needles, files_under, find_canaries, present_slugs

SLUGS = present_slugs()
DEAD = ["refused", "hanging", "throttled"]
# Settings a runbook shows (by name, value masked) because the runbook document asks to look at them.
SETTINGS_SHOWN = {
    "db-connection": ["DATABASE_URL"],
    "notifications": ["TWILIO_AUTH_TOKEN", "WHATSAPP_TOKEN"],
}


def _leaks(run):
    needles = canary_needles()
    leaks = []
    if run.folder is not None:
        for path in files_under(run.folder):
            leaks += find_canaries(
                path.read_text(encoding="utf-8", errors="replace"), f"{run.label}: {path.name}", needles
            )
    leaks += find_canaries(run.stdout, f"{run.label}: stdout", needles)
    leaks += find_canaries(run.stderr, f"{run.label}: stderr", needles)
    return leaks


@pytest.mark.slow
@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("slug", SLUGS)
def test_no_canary_in_what_a_run_wrote_or_printed(worlds, world, slug):
    run = worlds[world].runs[slug]
    assert run.folder is not None, run.explain()
    leaks = _leaks(run)
    assert not leaks, "secrets or phone numbers in the output:\n" + "\n".join(map(str, leaks))


@pytest.mark.slow
@pytest.mark.parametrize("world", list(WORLDS))
def test_no_canary_anywhere_under_the_output_dir(worlds, world):
    """Including files outside the run folders (a review's postmortem.md, a stray temporary file)."""
    needles = canary_needles()
    leaks = [
        leak
        for path in files_under(worlds[world].output)
        for leak in find_canaries(path.read_text(encoding="utf-8", errors="replace"), str(path), needles)
    ]
    assert not leaks, "\n".join(map(str, leaks))


@pytest.mark.slow
@pytest.mark.parametrize("world", DEAD)
@pytest.mark.parametrize("slug", present_slugs(include_post_incident=False))
def test_no_canary_out_against_dead_targets(dead_worlds, world, slug):
    """The dead-target URLs carry the database and Redis passwords: error texts must not echo them."""
    run = dead_worlds[world].runs[slug]
    leaks = _leaks(run)
    assert not leaks, "\n".join(map(str, leaks))


@pytest.mark.slow
@pytest.mark.parametrize("slug", sorted(s for s in SETTINGS_SHOWN if s in SLUGS) or ["none"])
def test_reports_still_show_that_each_setting_exists(worlds, slug):
    if slug == "none":
        pytest.skip("no runbook that shows settings exists yet")
    run = worlds["healthy"].runs[slug]
    assert run.folder is not None, run.explain()
    html = (run.folder / "report.html").read_text(encoding="utf-8")
    nb = (run.folder / "report.ipynb").read_text(encoding="utf-8")
    for name in SETTINGS_SHOWN[slug]:
        assert name in html and name in nb, f"{run.label}: the report does not show {name} at all"


@pytest.mark.slow
def test_parameters_holding_secrets_are_masked_in_evidence(worlds):
    for slug, run in worlds["healthy"].runs.items():
        params = run.evidence.get("parameters", {})
        for name, value in params.items():
            if "token" in name.lower() and value not in ("", None, [], {}):
                assert value == "***", f"{slug}: parameter {name} is not masked in evidence.json"
