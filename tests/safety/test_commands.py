"""8. Commands shown to be copied are safe to copy: every remediation step's planned command, built from
hostile resource names (``;``, ``$(...)``, backticks, quotes, spaces, newlines), parses back to exactly the
argument vectors the step means, with no shell operator, substitution or extra line outside quotes.

The parser below is the shell's view, not the code's: ``shlex`` in POSIX mode with the shell's punctuation
(``;``, ``&``, ``|``, ``<``, ``>``, ``(``, ``)``) as separate tokens, split into commands at newlines that are
outside quotes. An unquoted ``;`` becomes its own token and the comparison fails; so does an unquoted newline
(one command becomes two) and a comment that swallows an argument.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

import pandas as pd
import pytest

from propflow_ops import remediation
from propflow_ops.remediation import Step, shell_line
from propflow_ops.results import Fetched
from propflow_ops.sources.alembic import AlembicState, DbRevision
from propflow_ops.steps import alembic as alembic_steps
from propflow_ops.steps import ecs, notify, rds, s3

HOSTILE = [
    "propflow; rm -rf ~",
    "x$(touch /tmp/pwned)y",
    "x`id`y",
    'it\'s "quoted"',
    "two words",
    "line\nrm -rf /",
    "semi;colon&amp|pipe>out<in",
    "#not-a-comment",
    "back\\slash $HOME ${PATH}",
    "tab\there\r\nCRLF",
]


def split_commands(text: str) -> list[list[str]]:
    """The shell's reading of ``text``: one argv per command line (newlines outside quotes end a command)."""
    lines: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    comment = False
    for ch in text:
        if comment:  # a comment runs to the end of its line (quotes in it are no quotes)
            if ch != "\n":
                current.append(ch)
                continue
            comment = False
        if escaped:
            escaped = False
        elif quote == "'":
            if ch == "'":
                quote = ""
        elif quote == '"':
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quote = ""
        elif ch == "\\":
            escaped = True
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (not current or current[-1].isspace()):
            comment = True
        elif ch == "\n":
            lines.append("".join(current))
            current = []
            continue
        current.append(ch)
    assert not quote, f"an unterminated quote in {text!r}"
    lines.append("".join(current))
    out = []
    for line in lines:
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        out.append(list(lex))
    return [argv for argv in out if argv]


def check(step: Step, hostile: str) -> None:
    assert step.argv, f"{step.name}: no argv recorded for its command"
    parsed = split_commands(step.command)
    assert parsed == [list(a) for a in step.argv], (
        f"{step.name}: the command does not copy back to its argv\n{step.command}\n{parsed}\n{step.argv}"
    )
    forms = (hostile, json.dumps(hostile)[1:-1])  # the OTP step carries it inside a JSON body
    assert any(form in arg for argv in step.argv for arg in argv for form in forms), (
        f"{step.name}: {hostile!r} not in its argv"
    )


def _state(config: str, rev: str, prev: str) -> Fetched[AlembicState]:
    database = Fetched(DbRevision(current=[rev], version_table=True), None, "alembic_version")
    scripts = AlembicState(heads=[rev], known=[rev, prev], down_revisions={rev: [prev]}, database=database)
    return Fetched(scripts, None, config)


BUILDERS: dict[str, Callable[[str], Step]] = {
    "force-new-deployment": lambda h: ecs.force_new_deployment(h, h + "-svc"),
    "rollback": lambda h: ecs.rollback(h, h + "-svc", h, revisions=[f"{h}:1", f"{h}:2"], current=f"{h}:2"),
    "rollback-unknown": lambda h: ecs.rollback(h, h + "-svc", h, revisions=[], current=f"{h}:2"),
    "scale-service": lambda h: ecs.scale_service(h, h + "-svc", 3),
    "reboot-db-failover": lambda h: rds.reboot_db_failover(
        h, {"MultiAZ": True, "DBInstanceStatus": "available"}
    ),
    "reboot-single-az": lambda h: rds.reboot_db_failover(
        h, {"MultiAZ": False, "DBInstanceStatus": "available"}
    ),
    "create-read-replica": lambda h: rds.create_read_replica(h, h + "-read"),
    "delete-orphaned-uploads": lambda h: s3.delete_orphaned_uploads(
        h,
        pd.DataFrame({"key": [f"{h}/a.jpg"], "size": [10]}),
        pd.DataFrame({"key": [f"{h}/b.jpg"], "upload_id": [h]}),
        photo_keys_query="SELECT s3_key FROM photos",
        database_url=None,
    ),
    "send-test-otp": lambda h: notify.send_test_otp("http://127.0.0.1:9/" + h.replace("\n", "%0A"), h),
    "migration-downgrade": lambda h: alembic_steps.migration_downgrade(
        _state(f"/etc/{h}.ini", h + "1", h + "0")
    ),
    "migration-upgrade": lambda h: alembic_steps.migration_upgrade(_state(f"/etc/{h}.ini", h + "1", h + "0")),
}


def test_every_step_name_has_a_builder_here():
    covered = {BUILDERS[k]("x").name for k in BUILDERS}
    assert covered == set(remediation.STEP_NAMES), set(remediation.STEP_NAMES) ^ covered


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_a_planned_command_copies_back_to_exactly_its_argv(builder, hostile):
    check(BUILDERS[builder](hostile), hostile)


def test_the_photo_upload_plan_names_the_bucket_as_one_argument():
    bucket = "uploads;aws s3 rb s3://prod --force"
    step = s3.delete_orphaned_uploads(
        bucket,
        pd.DataFrame({"key": ["a"], "size": [1]}),
        pd.DataFrame(columns=["key", "upload_id"]),
        photo_keys_query="SELECT s3_key FROM photos",
        database_url=None,
    )
    first = split_commands(step.command)[0]
    assert first == [
        "aws",
        "s3api",
        "delete-objects",
        "--bucket",
        bucket,
        "--delete",
        "file://orphans-batch-N.json",
    ]


@pytest.mark.parametrize("note", ["x\nrm -rf /", "x\r\ny", "a\u2028b", "c\x00d"])
def test_a_note_cannot_start_a_new_line(note):
    line = shell_line(["echo", "ok"], note)
    assert split_commands(line) == [["echo", "ok"]] and "\n" not in line and "\r" not in line


def test_the_how_to_apply_line_is_quoted_too():
    step = ecs.force_new_deployment("c", "s")
    outcome = remediation.StepOutcome(
        step, remediation.Action(step.name, "planned", step.command, ""), runbook="api-down"
    )
    text = outcome._how_to_apply()
    cmd = text.split("Headless, with an evidence report: ", 1)[1]
    assert split_commands(cmd) == [
        ["propflow-ops", "run", "api-down", "--apply", "force-new-deployment", "--reason", "TEXT"]
    ]
