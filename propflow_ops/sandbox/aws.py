"""The AWS side of the sandbox: moto's server in this process, seeded as PropFlow production.

Bulk data (log events, S3 objects) and what the AWS APIs cannot set (task exit
codes, stop codes, times, service events, RDS/ElastiCache status) go straight
to moto's backend objects; everything else through boto3 against the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from . import canaries, dataset
from .converge import Rollout
from .logs import LogLine

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER = "propflow"
SERVICE = "propflow-api"
FAMILY = "propflow-api"
LOG_GROUP = "/ecs/propflow-api"
DB_INSTANCE = "propflow-db"
BUCKET = "propflow-uploads"
CACHE_CLUSTER = "propflow-redis"
TASK_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/propflow-ecs-task-role"
REDIS_HOST = "propflow-redis.x1y2z3.0001.use1.cache.amazonaws.com"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/propflow-api"
IMAGE_TAGS = ("1.14.0", "1.14.2", "1.15.0")
UTC = dt.UTC

# CloudWatch metrics seeded one point a minute (namespace, metric, dimensions, unit).
ECS_DIMS = [{"Name": "ClusterName", "Value": CLUSTER}, {"Name": "ServiceName", "Value": SERVICE}]
RDS_DIMS = [{"Name": "DBInstanceIdentifier", "Value": DB_INSTANCE}]
API_DIMS = [{"Name": "Service", "Value": SERVICE}]
METRICS: dict[str, tuple[str, str, list[dict[str, str]], str]] = {
    "ecs_cpu": ("AWS/ECS", "CPUUtilization", ECS_DIMS, "Percent"),
    "ecs_memory": ("AWS/ECS", "MemoryUtilization", ECS_DIMS, "Percent"),
    "rds_cpu": ("AWS/RDS", "CPUUtilization", RDS_DIMS, "Percent"),
    "rds_connections": ("AWS/RDS", "DatabaseConnections", RDS_DIMS, "Count"),
    "api_latency": ("PropFlow/API", "Latency", API_DIMS, "Milliseconds"),
}
# Healthy ranges (low, high) of each metric.
HEALTHY_RANGES: dict[str, tuple[float, float]] = {
    "ecs_cpu": (22.0, 41.0),
    "ecs_memory": (46.0, 61.0),
    "rds_cpu": (12.0, 31.0),
    "rds_connections": (12.0, 26.0),
    "api_latency": (110.0, 230.0),
}

log = logging.getLogger(__name__)


class _KnownMotoFailure(logging.Filter):
    """Drop the traceback moto prints for every CloudWatch percentile query (it cannot serialise the
    missing value and answers HTTP 500, which the runbooks report and work around); keep every other."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()  # werkzeug puts the traceback in the message
        lines = text.rstrip().splitlines()
        if (
            lines
            and lines[-1].startswith("TypeError: float() argument must be")
            and "moto/core/serialize.py" in text
        ):
            return False
        return True


ISOLATED_CONFIG = Path(__file__).with_name("aws-isolated.ini")


def isolated_session() -> boto3.session.Session:
    """A boto3 session that reads no AWS setting from the environment or the user's files: no
    ``AWS_PROFILE``, no ``AWS_CONFIG_FILE``/``~/.aws/config`` (a profile's ``endpoint_url`` or role), no
    shared credentials file. The sandbox's own clients give their endpoint, keys and region explicitly,
    which boto3 prefers over ``AWS_ENDPOINT_URL_<SERVICE>`` and ``AWS_DEFAULT_REGION``."""
    import botocore.session

    core = botocore.session.Session(profile="default")
    core.set_config_variable("config_file", str(ISOLATED_CONFIG))
    core.set_config_variable("credentials_file", os.devnull)
    return boto3.session.Session(botocore_session=core)


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass
class AwsState:
    """What the seed created, for scenarios to refer to."""

    rds_host: str = ""
    task_ids: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    deployment_id: str = ""


def task_environment(rds_host: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"postgresql://propflow:{canaries.CANARY_DB_PASSWORD}@{rds_host}:5432/propflow",
        "REDIS_URL": f"rediss://:{canaries.CANARY_REDIS_PASSWORD}@{REDIS_HOST}:6379/0",
        "TWILIO_ACCOUNT_SID": canaries.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": canaries.CANARY_TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "WHATSAPP_TOKEN": canaries.CANARY_WHATSAPP_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": canaries.WHATSAPP_PHONE_NUMBER_ID,
        "AWS_SECRET_ACCESS_KEY": canaries.CANARY_AWS_SECRET,
        "S3_BUCKET": BUCKET,
        "SECRET_KEY": canaries.CANARY_SECRET_KEY,
        "ENVIRONMENT": "production",
    }


def healthy_bucket_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowApiTaskObjectAccess",
                "Effect": "Allow",
                "Principal": {"AWS": TASK_ROLE_ARN},
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{BUCKET}/*",
            }
        ],
    }


class AwsWorld:
    """moto's ThreadedMotoServer plus the PropFlow seed."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint = ""
        self.state = AwsState()
        self._clients: dict[str, Any] = {}
        self.cancel = threading.Event()  # set when the sandbox is stopped while it seeds: seeding ends
        self.rollout = Rollout(self)  # ECS's scheduler: the service converges after an update (converge.py)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        from moto.moto_api import state_manager
        from moto.server import ThreadedMotoServer

        # EC2's backend (which RDS touches for its security groups) loads thousands of public AMIs each time
        # it is made, and every reset makes it again; the world has no EC2 instances (py-spy, issue 19)
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        werkzeug_log = logging.getLogger("werkzeug")
        werkzeug_log.setLevel(logging.ERROR)
        if not any(isinstance(f, _KnownMotoFailure) for f in werkzeug_log.filters):
            werkzeug_log.addFilter(_KnownMotoFailure())
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        with contextlib.redirect_stdout(io.StringIO()):
            server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint = f"http://{host}:{port}"
        # describe_tasks must not walk tasks from RUNNING to STOPPED.
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        self.rollout.start()  # paused until the sandbox has seeded and injected (Rollout.resume)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop moto's server, waiting at most ``timeout_s``: a request thread still busy answering (a
        huge FilterLogEvents) is a daemon thread and does not hold the stop up."""
        self.rollout.stop()
        server, self._server = self._server, None
        if server is not None:

            def shut() -> None:
                with contextlib.suppress(Exception):
                    server.stop()

            stopper = threading.Thread(target=shut, name="moto-stop", daemon=True)
            stopper.start()
            stopper.join(timeout_s)
        self._clients.clear()

    def client(self, name: str) -> Any:
        if self.cancel.is_set():
            raise RuntimeError("the sandbox is stopping")
        if name not in self._clients:
            client = isolated_session().client(
                name,  # type: ignore[call-overload]
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1}),
            )
            client.meta.events.register("before-call", self._check_cancel)
            self._clients[name] = client
        return self._clients[name]

    def _check_cancel(self, **_kwargs: Any) -> None:
        if self.cancel.is_set():
            raise RuntimeError("the sandbox is stopping")

    def reset(self) -> None:
        self.rollout.pause()  # the sandbox resumes it once the scenarios are injected
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        self.state = AwsState()

    # --- seed --------------------------------------------------------------------------------

    def seed(self, now: dt.datetime) -> None:
        self._seed_rds()
        self._seed_ecs(now)
        self._seed_s3()
        self.client("elasticache").create_cache_cluster(
            CacheClusterId=CACHE_CLUSTER, Engine="redis", CacheNodeType="cache.t3.small", NumCacheNodes=1
        )
        self.client("logs").create_log_group(logGroupName=LOG_GROUP)
        for task_id in self.state.task_ids:
            self.create_stream(task_id)
        self._seed_metrics(now)

    def _seed_rds(self) -> None:
        resp = self.client("rds").create_db_instance(
            DBInstanceIdentifier=DB_INSTANCE,
            DBInstanceClass="db.t3.medium",
            Engine="postgres",
            EngineVersion="16.3",
            DBName="propflow",
            MasterUsername="propflow",
            MasterUserPassword=canaries.CANARY_DB_PASSWORD,
            AllocatedStorage=100,
            BackupRetentionPeriod=7,
            MultiAZ=True,
        )
        self.state.rds_host = resp["DBInstance"]["Endpoint"]["Address"]

    def register_task_definition(self, image_tag: str, env: dict[str, str]) -> str:
        resp = self.client("ecs").register_task_definition(
            family=FAMILY,
            taskRoleArn=TASK_ROLE_ARN,
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/propflow-ecs-execution-role",
            containerDefinitions=[
                {
                    "name": "api",
                    "image": f"{IMAGE}:{image_tag}",
                    "memory": 1024,
                    "cpu": 512,
                    "essential": True,
                    "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
                    "environment": [{"name": k, "value": v} for k, v in env.items()],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": LOG_GROUP,
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": "ecs",
                        },
                    },
                }
            ],
        )
        return str(resp["taskDefinition"]["taskDefinitionArn"])

    def _seed_ecs(self, now: dt.datetime) -> None:
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        env = task_environment(self.state.rds_host)
        for tag in IMAGE_TAGS:
            taskdef_arn = self.register_task_definition(tag, env)
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition=taskdef_arn,
            desiredCount=2,
            launchType="FARGATE",
        )
        started = now - dt.timedelta(hours=2, minutes=3)
        self.state.task_ids = [self.run_task(taskdef_arn, started) for _ in range(2)]
        self.state.streams = [f"ecs/api/{t}" for t in self.state.task_ids]
        service = self.service()
        self.state.deployment_id = service.deployments[0]["id"]
        self.set_service_counts(running=2, pending=0)
        deployment = service.deployments[0]
        deployment.update(
            createdAt=started,
            updatedAt=started + dt.timedelta(minutes=4),
            rolloutState="COMPLETED",
            rolloutStateReason=f"ECS deployment {self.state.deployment_id} completed.",
        )
        service.events = [
            self.service_event(
                now - dt.timedelta(minutes=m), "(service propflow-api) has reached a steady state."
            )
            for m in (2, 62, 122)
        ] + [
            self.service_event(
                started + dt.timedelta(minutes=4),
                f"(service propflow-api) deployment {self.state.deployment_id} deployment completed.",
            ),
            self.service_event(
                started,
                "(service propflow-api) has started 2 tasks: "
                + " ".join(f"(task {t})" for t in self.state.task_ids)
                + ".",
            ),
        ]

    def run_task(self, taskdef_arn: str, started: dt.datetime) -> str:
        """A RUNNING service task (moto cannot tie tasks to services: list_tasks ignores serviceName)."""
        resp = self.client("ecs").run_task(
            cluster=CLUSTER,
            taskDefinition=taskdef_arn,
            count=1,
            launchType="FARGATE",
            startedBy=f"ecs-svc/{abs(hash(taskdef_arn)) % 10**16:016d}",
            group=f"service:{SERVICE}",
        )
        task_arn = resp["tasks"][0]["taskArn"]
        task = self.task(task_arn)
        task.created_at = started - dt.timedelta(seconds=40)
        task.pull_started_at = started - dt.timedelta(seconds=35)
        task.started_at = started
        task.health_status = "HEALTHY"
        task.connectivity = "CONNECTED"
        for container in task.containers:
            container.last_status = "RUNNING"
            container.health_status = "HEALTHY"
        return str(task.id)

    def _seed_s3(self) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_public_access_block(
            Bucket=BUCKET,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(healthy_bucket_policy()))
        now = utcnow()
        for photo in dataset.photos():
            self.put_object(photo.s3_key, now - dt.timedelta(days=photo.age_days))

    def put_object(self, key: str, last_modified: dt.datetime, body: bytes = b"\xff\xd8\xff\xe0JFIF") -> None:
        from moto.s3.models import s3_backends

        fake_key = s3_backends[ACCOUNT]["aws"].put_object(BUCKET, key, body)
        fake_key.last_modified = last_modified.astimezone(UTC).replace(tzinfo=None)

    def _seed_metrics(self, now: dt.datetime) -> None:
        import random

        rng = random.Random(5)
        for metric, (low, high) in HEALTHY_RANGES.items():
            self.put_series(metric, now, 120, _uniform(rng, low, high))

    # --- helpers used by scenarios -----------------------------------------------------------

    def put_series(self, metric: str, now: dt.datetime, minutes: int, value: Callable[[int], float]) -> None:
        """One datapoint a minute for the last ``minutes`` minutes (``value(minutes_ago)``)."""
        namespace, name, dims, unit = METRICS[metric]
        base = now.replace(second=0, microsecond=0)
        data = [
            {
                "MetricName": name,
                "Dimensions": dims,
                "Unit": unit,
                "Timestamp": base - dt.timedelta(minutes=m),
                "Value": round(value(m), 2),
            }
            for m in range(minutes, -1, -1)
        ]
        cw = self.client("cloudwatch")
        for i in range(0, len(data), 500):
            cw.put_metric_data(Namespace=namespace, MetricData=data[i : i + 500])

    def replace_series(
        self, metric: str, now: dt.datetime, minutes: int, value: Callable[[int], float]
    ) -> None:
        """Drop the seeded datapoints of the last ``minutes`` minutes and put new ones."""
        from moto.cloudwatch.models import cloudwatch_backends

        namespace, name, _dims, _unit = METRICS[metric]
        cutoff = (now.replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes)).astimezone(UTC)
        backend = cloudwatch_backends[ACCOUNT][REGION]
        backend.metric_data = [
            d
            for d in backend.metric_data
            if not (d.namespace == namespace and d.name == name and _aware(d.timestamp) >= cutoff)
        ]
        self.put_series(metric, now, minutes, value)

    def create_stream(self, task_id: str) -> str:
        stream = f"ecs/api/{task_id}"
        self.client("logs").create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        return stream

    def put_logs(self, lines: Iterable[LogLine]) -> None:
        from moto.logs.models import logs_backends

        group = logs_backends[ACCOUNT][REGION].groups[LOG_GROUP]
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for line in sorted(lines, key=lambda x: x.ts):
            by_stream.setdefault(line.stream, []).append(
                {"timestamp": line.timestamp_ms, "message": line.message}
            )
        for stream, events in by_stream.items():
            if stream not in group.streams:
                self.client("logs").create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            group.put_log_events(stream, events)

    def ecs_backend(self) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[ACCOUNT][REGION]

    def service(self) -> Any:
        return self.ecs_backend().services[f"{CLUSTER}:{SERVICE}"]

    def task(self, task_ref: str) -> Any:
        task_id = task_ref.split("/")[-1]
        for arn, task in self.ecs_backend().tasks.get(CLUSTER, {}).items():
            if arn.endswith(task_id):
                return task
        raise KeyError(task_ref)

    def set_service_counts(self, running: int, pending: int) -> None:
        service = self.service()
        service.running_count = running
        service.pending_count = pending
        for deployment in service.deployments[:1]:
            deployment.update(runningCount=running, pendingCount=pending)
        cluster = self.ecs_backend().clusters[CLUSTER]
        cluster.running_tasks_count = running
        cluster.pending_tasks_count = pending
        cluster.active_services_count = 1

    @staticmethod
    def service_event(at: dt.datetime, message: str) -> dict[str, Any]:
        import uuid

        return {"id": str(uuid.uuid4()), "createdAt": at, "message": message}

    def stop_task(
        self,
        task_id: str,
        *,
        reason: str,
        exit_code: int,
        stopped_at: dt.datetime,
        stop_code: str = "EssentialContainerExited",
        container_reason: str | None = None,
    ) -> None:
        task = self.task(task_id)
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        task.stop_code = stop_code
        task.stopping_at = stopped_at - dt.timedelta(seconds=5)
        task.execution_stopped_at = stopped_at - dt.timedelta(seconds=2)
        task.stopped_at = stopped_at
        task.health_status = "UNHEALTHY"
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exit_code = exit_code
            container.exitCode = exit_code
            container.health_status = "UNHEALTHY"
            if container_reason:
                container.reason = container_reason

    def rds_instance(self) -> Any:
        from moto.rds.models import rds_backends

        return rds_backends[ACCOUNT][REGION].databases[DB_INSTANCE]

    def cache_cluster(self) -> Any:
        from moto.elasticache.models import elasticache_backends

        return elasticache_backends[ACCOUNT][REGION].cache_clusters[CACHE_CLUSTER]

    def set_latest_restorable_time(self, when: dt.datetime) -> None:
        """moto computes LatestRestorableTime as now; pin it on this one instance."""
        instance = self.rds_instance()
        base = type(instance)
        pinned = type(
            f"Pinned{base.__name__}", (base,), {"latest_restorable_time": property(lambda _self: when)}
        )
        instance.__class__ = pinned

    def update_service_taskdef(self, taskdef_arn: str) -> None:
        self.client("ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=taskdef_arn)

    def current_environment(self) -> dict[str, str]:
        td = self.client("ecs").describe_task_definition(taskDefinition=self.service().task_definition)
        return {e["name"]: e["value"] for e in td["taskDefinition"]["containerDefinitions"][0]["environment"]}


def _uniform(rng: Any, low: float, high: float) -> Callable[[int], float]:
    return lambda _minutes_ago: float(rng.uniform(low, high))


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def new_deployment_id() -> str:
    import random

    return f"ecs-svc/{random.randrange(10**18, 10**19)}"


def deploy(
    world: AwsWorld,
    taskdef_arn: str,
    at: dt.datetime,
    *,
    rollout: str = "COMPLETED",
    reason: str | None = None,
    running: int = 2,
    failed: int = 0,
) -> str:
    """Move the service to ``taskdef_arn`` the way ECS records it: a new PRIMARY deployment."""
    world.update_service_taskdef(taskdef_arn)
    service = world.service()
    dep_id = new_deployment_id()
    old = [dict(d, status="ACTIVE") for d in service.deployments[:1]] if rollout != "COMPLETED" else []
    service.deployments = [
        {
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": taskdef_arn,
            "desiredCount": service.desired_count,
            "pendingCount": 0,
            "runningCount": running,
            "failedTasks": failed,
            "createdAt": at,
            "updatedAt": at + dt.timedelta(minutes=3),
            "launchType": "FARGATE",
            "platformFamily": "FARGATE",
            "rolloutState": rollout,
            "rolloutStateReason": reason or f"ECS deployment {dep_id} completed.",
        },
        *old,
    ]
    return dep_id
