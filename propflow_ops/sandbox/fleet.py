"""The fleet's AWS parts in the simulated world (re-created after every reset, as moto is wiped):

- the evidence store: bucket ``propflow-evidence`` (runs under ``s3://propflow-evidence/runs``);
- the alarm topic ``propflow-alarms`` (CloudWatch alarms notify it) with the work queue ``propflow-runbooks``
  subscribed (SNS envelope, not raw: the worker reads the alarm JSON from ``Message``); run requests
  (``propflow-ops submit``) go straight onto the queue;
- its dead-letter queue ``propflow-runbooks-dlq``: the redrive policy moves a message there after
  :data:`MAX_RECEIVES` receives that did not delete it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BUCKET = "propflow-evidence"
PREFIX = "runs"
TOPIC = "propflow-alarms"
QUEUE = "propflow-runbooks"
DLQ = "propflow-runbooks-dlq"
MAX_RECEIVES = 3
VISIBILITY_S = 60


ALARM_RULES = """
# The fleet's rules (propflow-ops worker): CloudWatch alarm -> runbooks and severity.
[alarms.api-5xx]
name = "propflow-api-5xx*"
runbooks = ["triage", "api-down"]
severity = "P0"

[alarms.rds-cpu]
metric = "CPUUtilization"
namespace = "AWS/RDS"
runbooks = ["triage", "db-connection"]
severity = "P1"
"""


def add_alarm_rules(config_path: Any) -> None:
    """The sandbox's propflow-ops.toml gets the fleet's ``[alarms]`` rules."""
    if config_path is not None:
        with open(config_path, "a", encoding="utf-8") as fh:
            fh.write(ALARM_RULES)


def start_workers(sandbox: Any, n: int, concurrency: int = 1) -> list[Any]:
    """``n`` worker processes serving the sandbox's queue, evidence to its S3 store (stderr: this one's)."""
    import subprocess
    import sys

    env = {**sandbox.environ(), "PROPFLOW_OUTPUT_DIR": sandbox.fleet.output_dir}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "propflow_ops.cli",
                "worker",
                "--queue",
                sandbox.fleet.queue_url,
                "--concurrency",
                str(concurrency),
                "--wait",
                "2",
                "--escalate-every",
                "15",
            ],
            env=env,
        )
        for _ in range(n)
    ]


def stop_workers(procs: list[Any], timeout_s: float = 150) -> None:
    """SIGTERM each (they finish the runbooks in hand), then wait; kill what outlives ``timeout_s``."""
    import time

    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - TimeoutExpired: it had its chance
            p.kill()
            p.wait(timeout=10)


def publish_alarm(sandbox: Any, name: str, state: str = "ALARM") -> str:
    """Publish a CloudWatch alarm state change to the sandbox's alarm topic, as CloudWatch would."""
    from propflow_ops.alarms import alarm_json
    from propflow_ops.findings import utcnow

    msg = alarm_json(
        name,
        state,
        utcnow().replace(microsecond=0),
        metric="HTTPCode_Target_5XX_Count",
        namespace="AWS/ApplicationELB",
        reason="Threshold Crossed: 1 datapoint [37.0] was greater than 5",
    )
    return str(sandbox.aws.client("sns").publish(TopicArn=sandbox.fleet.topic_arn, Message=msg)["MessageId"])


@dataclass
class Fleet:
    bucket: str = BUCKET
    output_dir: str = f"s3://{BUCKET}/{PREFIX}"
    topic_arn: str = ""
    queue_url: str = ""
    dlq_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            "PROPFLOW_FLEET_QUEUE_URL": self.queue_url,
            "PROPFLOW_FLEET_OUTPUT_DIR": self.output_dir,
            "PROPFLOW_FLEET_TOPIC_ARN": self.topic_arn,
        }


def seed(aws: Any, fleet: Fleet) -> Fleet:
    s3, sns, sqs = aws.client("s3"), aws.client("sns"), aws.client("sqs")
    s3.create_bucket(Bucket=fleet.bucket)
    s3.put_bucket_encryption(
        Bucket=fleet.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    fleet.dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=fleet.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    fleet.queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_S),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=fleet.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    fleet.topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    sns.subscribe(TopicArn=fleet.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return fleet
