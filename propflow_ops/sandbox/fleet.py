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


@dataclass
class Fleet:
    bucket: str = BUCKET
    output_dir: str = f"s3://{BUCKET}/{PREFIX}"
    topic_arn: str = ""
    queue_url: str = ""
    dlq_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"PROPFLOW_FLEET_QUEUE_URL": self.queue_url, "PROPFLOW_FLEET_OUTPUT_DIR": self.output_dir,
                "PROPFLOW_FLEET_TOPIC_ARN": self.topic_arn}


def seed(aws: Any, fleet: Fleet) -> Fleet:
    s3, sns, sqs = aws.client("s3"), aws.client("sns"), aws.client("sqs")
    s3.create_bucket(Bucket=fleet.bucket)
    s3.put_bucket_encryption(Bucket=fleet.bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    fleet.dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=fleet.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    fleet.queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={
        "VisibilityTimeout": str(VISIBILITY_S),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=fleet.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    fleet.topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    sns.subscribe(TopicArn=fleet.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return fleet
