"""The review sees it all: interactive runs beside headless ones, and every applied step from the incident's
action log (also one whose session never saved, and one whose end was never written)."""

from __future__ import annotations

import json

import pytest

from propflow_ops import incident_record as ir
from propflow_ops import review as rv
from propflow_ops.incident import BadInput
from propflow_ops.operator import label
from propflow_ops.review.command import review_request
from propflow_ops.review.render import postmortem_markdown
from tests.incident.helpers import ALICE, BOB, at, fabricate_run, z


def _interactive(folder) -> None:  # type: ignore[no-untyped-def]
    ev = json.loads((folder / "evidence.json").read_text())
    ev["run"]["mode"] = "interactive"
    (folder / "evidence.json").write_text(json.dumps(ev))
    from propflow_ops.run.folder import write_sums

    write_sums(folder, ["report.ipynb", "evidence.json"])


def _action(
    store: ir.LocalStore, who: dict, phase: str, step: str, minute: float, mode: str, **kw: str
) -> None:
    with store.session("INC-51") as s:
        s.append(
            ir.event(
                "action",
                who,
                at=at(minute),
                phase=phase,
                step=step,
                mode=mode,
                runbook="api-down",
                command="aws ecs update-service ...",
                detail=kw.pop("detail", "rolled back"),
                by_label=label(who),
                reason="INC-51 OOM",
                **kw,
            )
        )


def test_interactive_runs_and_their_actions_are_in_the_timeline_postmortem_and_people(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path
    store = ir.LocalStore(root)
    ir.open_or_join(
        store,
        "INC-51",
        severity="P0",
        started_at=at(0),
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="run triage",
    )
    fabricate_run(root, "INC-51", "triage", 2, [("TRIAGE_API", "fail")], operator=ALICE)
    # Bob in JupyterLab: rollback applied from a cell, the session saved once (its evidence has the action too).
    _action(store, BOB, "started", "rollback", 5, "started")
    _action(store, BOB, "ended", "rollback", 5.5, "executed", run_mode="interactive")
    saved = fabricate_run(
        root,
        "INC-51",
        "api-down",
        4,
        [("ECS_TASK_OOM", "fail")],
        operator=BOB,
        actions=(("rollback", "executed", 5.5),),
    )
    _interactive(saved)
    # A second step whose end was never written (the kernel died), in a session that never saved.
    _action(store, BOB, "started", "force-new-deployment", 8, "started")
    review = rv.build_review("INC-51", root)

    runs = review.runs_table.set_index("runbook")
    assert runs.loc["api-down", "mode"] == "interactive" and runs.loc["triage", "mode"] == "headless"
    tl = review.timeline
    run_rows = tl[tl["kind"] == "run"]["what"].tolist()
    assert any("api-down: problems (1 fail) (interactive run); by bob@laptop-b" in w for w in run_rows), (
        run_rows
    )
    actions = tl[tl["kind"].str.startswith("action")]
    assert actions["kind"].tolist() == ["action started", "action executed", "action started"], actions
    executed = actions[actions["kind"] == "action executed"]["what"].iloc[0]
    assert (
        "rollback (api-down)" in executed
        and "reason: INC-51 OOM" in executed
        and "by bob@laptop-b" in executed
    )
    assert (tl["what"].str.contains("rollback").sum()) == 2, (
        "the saved run's copy of the action is not repeated"
    )

    changes = review.changes
    assert changes["step"].tolist() == ["rollback", "force-new-deployment"]
    assert changes["outcome"].tolist()[1].startswith("started, no end recorded")
    assert changes["by"].tolist() == [label(BOB), label(BOB)]
    md = postmortem_markdown(review)
    assert (
        "## Changes applied" in md
        and f"| rollback | api-down | executed | {label(BOB)} | interactive |" in md
    )
    assert "Runs reviewed: 2 (1 headless, 1 interactive)" in md
    people = dict(zip(review.people["who"], review.people["did"], strict=True))
    assert "ran api-down (interactive)" in people[label(BOB)]
    assert "applied rollback (executed)" in people[label(BOB)]
    fix = review.checklist.set_index("item").loc["Fix implemented", "evidence"]
    assert "rollback" in fix


def test_a_step_applied_in_a_session_that_never_saved_is_still_reviewed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ir.LocalStore(tmp_path)
    ir.open_or_join(
        store,
        "INC-51",
        severity="P0",
        started_at=at(0),
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="lab api-down",
    )
    fabricate_run(tmp_path, "INC-51", "triage", 1, [("TRIAGE_API", "fail")], operator=ALICE)
    _action(store, BOB, "started", "rollback", 3, "started")
    _action(store, BOB, "ended", "rollback", 3.2, "executed", run_mode="interactive")
    review = rv.build_review("INC-51", tmp_path)
    assert review.changes[["step", "outcome", "how"]].values.tolist() == [
        ["rollback", "executed", "interactive"]
    ]
    assert z(at(3.2)) in review.timeline[review.timeline["kind"] == "action executed"]["at"].tolist()


def test_review_runs_on_the_action_log_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A lab session applied a step and never saved: no run folder, but the review still has something to say."""
    store = ir.LocalStore(tmp_path)
    ir.open_or_join(
        store,
        "INC-51",
        severity="P0",
        started_at=at(0),
        severity_given=True,
        started_given=True,
        by=BOB,
        via="lab api-down",
    )
    with pytest.raises(BadInput, match="no runs"):
        review_request("INC-51", str(tmp_path))
    _action(store, BOB, "started", "rollback", 3, "started")
    req = review_request("INC-51", str(tmp_path))
    assert req.slug == "post-incident" and ("review_incident", "INC-51") in req.params
