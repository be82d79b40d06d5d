"""What arrives on the fleet's queue, and what the team configuration says to do about an alarm.

Two kinds of message:

- a CloudWatch alarm state change, as SNS delivers it to a subscribed SQS queue: the SNS envelope
  (``Type: Notification``, ``MessageId``, ``Message``) whose ``Message`` is the alarm JSON (``AlarmName``,
  ``NewStateValue``, ``NewStateReason``, ``StateChangeTime``, ``Trigger.MetricName`` / ``Namespace``); a raw
  delivery (no envelope) is accepted too;
- a run request from ``propflow-ops submit`` (``{"propflow": "run-request/1", ...}``).

Anything else is :class:`BadMessage`: the worker leaves it on the queue, and the queue's redrive policy moves
it to the dead-letter queue after its receive count.

``[alarms.NAME]`` rules (see :func:`propflow_ops.config._alarms`) map an alarm to runbooks and a severity;
every key a rule gives must match. An alarm no rule matches still gets ``triage`` (severity P1): an on-call
engineer would rather have a sweep than nothing, and the timeline says no rule matched.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from propflow_ops.findings import iso
from propflow_ops.incident import BadInput, parse_time

REQUEST_SCHEMA = "run-request/1"
REPLY_SCHEMA = "run-reply/1"
DEFAULT_RUNBOOKS = ("triage",)
DEFAULT_SEVERITY = "P1"
STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")


class BadMessage(ValueError):
    """Not a message the worker can act on (it goes to the dead-letter queue by the redrive policy)."""


@dataclass
class Alarm:
    name: str
    state: str
    at: datetime
    reason: str = ""
    metric: str = ""
    namespace: str = ""
    arn: str = ""
    message_id: str = ""  # SNS MessageId (the same for SNS's duplicate deliveries)

    def key(self) -> str:
        """A stable short key of the alarm (its ARN, else its name)."""
        return hashlib.sha256((self.arn or self.name).encode()).hexdigest()[:16]


@dataclass
class RunRequestMessage:
    request_id: str
    slug: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rule:
    key: str
    runbooks: tuple[str, ...]
    severity: str


_CW_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}):?(\d{2})$")


def _time(value: Any) -> datetime:
    text = str(value or "")
    m = _CW_TIME.match(text)
    if m:  # CloudWatch writes 2026-11-27T16:00:00.000+0000
        text = f"{m.group(1)}{m.group(2) or ''}{m.group(3)}:{m.group(4)}"
    try:
        return parse_time(text, name="StateChangeTime")
    except BadInput as exc:
        raise BadMessage(str(exc)) from None


def parse(body: str) -> Alarm | RunRequestMessage:
    """The message's meaning, or BadMessage (one line)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise BadMessage("the message body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadMessage("the message body is not a JSON object")
    message_id = ""
    if doc.get("Type") == "Notification" and "Message" in doc:  # the SNS envelope
        message_id = str(doc.get("MessageId") or "")
        try:
            doc = json.loads(doc["Message"])
        except (TypeError, ValueError):
            raise BadMessage("the SNS notification's Message is not JSON") from None
        if not isinstance(doc, dict):
            raise BadMessage("the SNS notification's Message is not a JSON object")
    if doc.get("propflow") == REQUEST_SCHEMA:
        request_id, slug = doc.get("request_id"), doc.get("slug")
        if not isinstance(request_id, str) or not re.fullmatch(r"[0-9a-f]{32}", request_id):
            raise BadMessage("a run request without a valid request_id")
        if not isinstance(slug, str):
            raise BadMessage("a run request without a runbook slug")
        options = doc.get("options") or {}
        if not isinstance(options, dict):
            raise BadMessage("a run request whose options are not an object")
        return RunRequestMessage(request_id, slug, options)
    if "AlarmName" in doc and "NewStateValue" in doc:
        state = str(doc["NewStateValue"])
        if state not in STATES:
            raise BadMessage(f"unknown alarm state {state[:40]!r}")
        raw_trigger = doc.get("Trigger")
        trigger: dict[str, Any] = raw_trigger if isinstance(raw_trigger, dict) else {}
        name = str(doc["AlarmName"])
        if not name or len(name) > 255:
            raise BadMessage("an alarm without a usable name")
        return Alarm(
            name=name,
            state=state,
            at=_time(doc.get("StateChangeTime")),
            reason=str(doc.get("NewStateReason") or "")[:500],
            metric=str(trigger.get("MetricName") or ""),
            namespace=str(trigger.get("Namespace") or ""),
            arn=str(doc.get("AlarmArn") or ""),
            message_id=message_id,
        )
    raise BadMessage("neither a CloudWatch alarm nor a propflow-ops run request")


def _matches(rule: Mapping[str, Any], alarm: Alarm) -> bool:
    if "name" in rule and not fnmatch.fnmatchcase(alarm.name, str(rule["name"])):
        return False
    if "pattern" in rule and not re.search(str(rule["pattern"]), alarm.name):
        return False
    if "metric" in rule and rule["metric"] != alarm.metric:
        return False
    return not ("namespace" in rule and rule["namespace"] != alarm.namespace)


def match(rules: Mapping[str, Any], alarm: Alarm) -> Rule | None:
    """The first ``[alarms]`` rule (in file order) that matches, or None."""
    from propflow_ops.runbooks import RUNBOOKS

    for key, rule in rules.items():
        if isinstance(rule, Mapping) and _matches(rule, alarm):
            runbooks = tuple(rule.get("runbooks") or DEFAULT_RUNBOOKS)
            severity = str(rule.get("severity") or RUNBOOKS[runbooks[0]].severity)
            return Rule(key, runbooks, severity)
    return None


def incident_id_for(alarm: Alarm) -> str:
    """A new incident's id for this alarm: ``ALARM-<name>-<state change time>`` (an incident id's charset,
    at most 64 characters)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", alarm.name).strip("-._")[:36] or "alarm"
    return f"ALARM-{slug}-{alarm.at.strftime('%Y%m%dT%H%M%SZ')}"


def alarm_json(
    name: str,
    state: str,
    at: datetime,
    *,
    reason: str = "",
    metric: str = "",
    namespace: str = "",
    region: str = "us-east-1",
    account: str = "123456789012",
) -> str:
    """The JSON CloudWatch publishes to SNS on a state change (for the sandbox, the bench and tests)."""
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmDescription": None,
            "AWSAccountId": account,
            "NewStateValue": state,
            "NewStateReason": reason or f"Threshold Crossed ({state})",
            "StateChangeTime": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "Region": "US East (N. Virginia)",
            "AlarmArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "Trigger": {
                "MetricName": metric,
                "Namespace": namespace,
                "StatisticType": "Statistic",
                "Statistic": "AVERAGE",
                "Period": 60,
                "EvaluationPeriods": 1,
                "ComparisonOperator": "GreaterThanThreshold",
                "Threshold": 1.0,
                "Dimensions": [],
            },
        }
    )


def describe(alarm: Alarm) -> str:
    return f"{alarm.name} {alarm.state} at {iso(alarm.at)}" + (f": {alarm.reason}" if alarm.reason else "")
