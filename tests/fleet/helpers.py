"""Workers as subprocesses against the session's sandbox (moto's SNS/SQS/S3), and what they leave in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from propflow_ops import alarms, store


def fleet_config(sandbox: Any, folder: Path) -> Path:
    """A copy of the sandbox's propflow-ops.toml: its [alarms] rules map propflow-api-5xx* to triage and
    api-down (P0) (see propflow_ops.sandbox.fleet.ALARM_RULES)."""
    assert sandbox.notify.config_path is not None
    text = sandbox.notify.config_path.read_text(encoding="utf-8")
    assert '[alarms.api-5xx]\nname = "propflow-api-5xx*"\nruns' not in text  # (shape checked by the worker)
    path = folder / "propflow-ops.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fleet_env(sandbox: Any, config: Path, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        **sandbox.env,
        "PROPFLOW_CONFIG": str(config),
        "PROPFLOW_ENV": "sandbox",
        "PROPFLOW_OUTPUT_DIR": f"{sandbox.fleet.output_dir}/{prefix}",
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).resolve().parents[2])),
    }


def start_worker(
    env: Mapping[str, str], *args: str, log: Path | None = None, new_session: bool = False
) -> subprocess.Popen[str]:
    out = open(log, "w") if log else subprocess.DEVNULL  # the worker's stderr, read after it exits
    return subprocess.Popen(
        [sys.executable, "-m", "propflow_ops.cli", "worker", "--wait", "1", "--escalate-every", "5", *args],
        env=dict(env),
        stdout=out,
        stderr=out,
        text=True,
        start_new_session=new_session,
    )


def publish_alarm(sandbox: Any, name: str, state: str, at: datetime, **kw: Any) -> None:
    sandbox.aws.client("sns").publish(
        TopicArn=sandbox.fleet.topic_arn,
        Message=alarms.alarm_json(name, state, at, **kw),
        Subject=f"ALARM: {name}",
    )


def runs(sandbox: Any, prefix: str) -> dict[str, list[store.RunFolder]]:
    """incident -> its run folders in the store."""
    url = store.parse_s3(f"{sandbox.fleet.output_dir}/{prefix}")
    client = sandbox.aws.client("s3")
    return {
        inc: store.list_runs(url, inc, client)
        for inc in store.list_incidents(url, client)
        if not inc.startswith("_")
    }


def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def queue_depth(sandbox: Any, url: str) -> int:
    attrs = sandbox.aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def evidence(sandbox: Any, prefix: str, incident: str, run: str) -> dict[str, Any]:
    url = store.parse_s3(f"{sandbox.fleet.output_dir}/{prefix}")
    return json.loads(
        store.get_bytes(sandbox.aws.client("s3"), url.bucket, url.key(incident, run, "evidence.json"))
    )


def make_queue(sandbox: Any, name: str, *, visibility_s: int, max_receives: int) -> tuple[str, str, str]:
    """A topic -> queue (-> DLQ by redrive) of the test's own: (topic ARN, queue URL, DLQ URL)."""
    sqs, sns = sandbox.aws.client("sqs"), sandbox.aws.client("sns")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name=f"{name}-alarms")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue, dlq


def publish_to(sandbox: Any, topic: str, name: str, state: str, at: datetime, **kw: Any) -> None:
    sandbox.aws.client("sns").publish(TopicArn=topic, Message=alarms.alarm_json(name, state, at, **kw))


def per_runbook(folders: list[store.RunFolder]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in folders:
        slug = f.name.split("-", 1)[1]
        for n in range(2, 10):  # a suffixed folder (-2) is a second run of the same runbook
            slug = slug.removesuffix(f"-{n}")
        out[slug] = out.get(slug, 0) + 1
    return out
