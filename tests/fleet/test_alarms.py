"""The alarm messages and the [alarms] rules (fast: no sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from propflow_ops import alarms, config, inputs

AT = datetime(2026, 11, 27, 3, 12, 5, tzinfo=UTC)


def envelope(message: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Subject": "ALARM",
            "Message": message,
        }
    )


def test_an_sns_envelope_of_a_cloudwatch_alarm_is_parsed():
    a = alarms.parse(envelope(alarms.alarm_json("propflow-api-5xx", "ALARM", AT, metric="M", namespace="N")))
    assert isinstance(a, alarms.Alarm)
    assert (a.name, a.state, a.at, a.metric, a.namespace, a.message_id) == (
        "propflow-api-5xx",
        "ALARM",
        AT,
        "M",
        "N",
        "sns-1",
    )
    raw = alarms.parse(alarms.alarm_json("x-alarm", "OK", AT))  # raw delivery
    assert isinstance(raw, alarms.Alarm) and raw.state == "OK" and raw.message_id == ""


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1]",
        envelope("nope"),
        envelope("[]"),
        json.dumps({"a": 1}),
        json.dumps({"AlarmName": "x", "NewStateValue": "MAYBE", "StateChangeTime": "x"}),
        json.dumps({"AlarmName": "x", "NewStateValue": "ALARM", "StateChangeTime": "soon"}),
        json.dumps({"propflow": "run-request/1", "request_id": "../x", "slug": "triage"}),
    ],
)
def test_anything_else_is_a_bad_message(body):
    with pytest.raises(alarms.BadMessage):
        alarms.parse(body)


def rules(text: str) -> dict:
    import tomllib

    return config.parse(tomllib.loads(text)).alarms


def test_rules_match_by_glob_pattern_metric_and_namespace_in_file_order():
    r = rules("""
[alarms.db]
metric = "CPUUtilization"
namespace = "AWS/RDS"
runbooks = ["db-connection"]
[alarms.api]
name = "propflow-api-*"
runbooks = ["triage", "api-down"]
severity = "P0"
""")
    api = alarms.Alarm("propflow-api-5xx", "ALARM", AT)
    rds = alarms.Alarm("anything", "ALARM", AT, metric="CPUUtilization", namespace="AWS/RDS")
    other = alarms.Alarm("anything", "ALARM", AT, metric="CPUUtilization", namespace="AWS/EC2")
    assert alarms.match(r, api) == alarms.Rule("api", ("triage", "api-down"), "P0")
    assert alarms.match(r, rds) == alarms.Rule("db", ("db-connection",), "P0")  # the runbook's own severity
    assert alarms.match(r, other) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[alarms.a]\nrunbooks = ['triage']",
            "alarms.a: give at least one of name, pattern, metric, namespace",
        ),
        ("[alarms.a]\nname = 'x'", "alarms.a.runbooks: name at least one runbook"),
        ("[alarms.a]\nname = 3\nrunbooks = ['triage']", "alarms.a.name"),
        ("[alarms.a]\nname = 'x'\nrunbooks = ['triage']\nwhen = 'x'", "alarms.a"),
    ],
)
def test_bad_rules_are_one_clear_line(text, message):
    import tomllib

    with pytest.raises(config.ConfigError, match=message.replace(".", r"\.")):
        config.parse(tomllib.loads(text))


def test_the_incident_id_is_stable_valid_and_bounded():
    long = alarms.Alarm("a" * 200 + " weird/name", "ALARM", AT)
    for a in (alarms.Alarm("propflow-api-5xx", "ALARM", AT), long, alarms.Alarm("////", "ALARM", AT)):
        inc = alarms.incident_id_for(a)
        assert inputs.INCIDENT_ID.fullmatch(inc) and inc == alarms.incident_id_for(a)
    assert (
        alarms.incident_id_for(alarms.Alarm("propflow-api-5xx", "ALARM", AT))
        == "ALARM-propflow-api-5xx-20261127T031205Z"
    )


def test_the_fleet_store_prefers_an_s3_output_dir_then_the_fleet_variable():
    from propflow_ops.store import fleet_output

    fleet = {"PROPFLOW_FLEET_OUTPUT_DIR": "s3://fleet-bucket/runs"}
    assert fleet_output("s3://given-bucket/x", fleet) == "s3://given-bucket/x"
    assert fleet_output(None, {**fleet, "PROPFLOW_OUTPUT_DIR": "s3://team-bucket/r"}) == "s3://team-bucket/r"
    assert fleet_output(None, {**fleet, "PROPFLOW_OUTPUT_DIR": "/tmp/local"}) == "s3://fleet-bucket/runs"
    assert fleet_output(None, {"PROPFLOW_OUTPUT_DIR": "/tmp/local"}) == "/tmp/local"
