import pytest

from propflow_ops.findings import Evidence
from propflow_ops.incident import BadInput
from propflow_ops.remediation import Step, parse_apply, run_step


def ev(apply=()):
    # applying needs a reason, and (this is not the sandbox) a confirmation: the notebook's parameters give both
    return Evidence(
        runbook="api-down",
        title="t",
        incident={},
        apply=list(apply),
        parameters={"reason": "unit test", "confirm": apply[0] if apply else ""},
    )


@pytest.fixture(autouse=True)
def _change_control(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPFLOW_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("PROPFLOW_LOCK_TABLE", raising=False)


def test_a_step_runs_only_when_applied():
    calls = []
    step = Step("rollback", "roll back", "aws ecs update-service ...", lambda: calls.append(1) or "done")
    e = ev()
    out = run_step(e, step)
    assert calls == [] and out.mode == "planned" and e.actions[0].mode == "planned"
    assert "--apply rollback" in repr(out)
    e2 = ev(["rollback"])
    out2 = run_step(e2, step)
    assert calls == [1] and out2.mode == "executed" and e2.actions[0].detail == "done"


def test_a_failing_step_is_recorded_as_failed():
    def boom():
        raise RuntimeError("AccessDenied")

    e = ev(["rollback"])
    out = run_step(e, Step("rollback", "roll back", "aws ...", boom))
    assert out.mode == "failed" and "AccessDenied" in e.actions[0].detail


def test_a_precondition_blocks_execution():
    calls = []
    e = ev(["rollback"])
    out = run_step(
        e, Step("rollback", "x", "aws", lambda: calls.append(1) or "", precondition="no previous revision")
    )
    assert calls == [] and out.mode == "failed" and "no previous revision" in e.actions[0].detail


def test_parse_apply_accepts_lists_and_comma_strings_and_rejects_unknown():
    assert parse_apply("rollback, force-new-deployment") == ["rollback", "force-new-deployment"]
    assert parse_apply(["rollback", "rollback"]) == ["rollback"]
    assert parse_apply("") == []
    with pytest.raises(BadInput):
        parse_apply(["rm-rf"])
    with pytest.raises(BadInput):
        parse_apply(["rollback"], allowed=("scale-service",))
