"""After a step: wait (bounded) for the change to take effect, and say what was seen.

A verifier is a probe ``() -> (done, what was seen)`` polled by :func:`wait_until` until it says done or the
deadline (:data:`TIMEOUT_ENV`, default :data:`DEFAULT_TIMEOUT_S`) passes. Every call inside has its own
timeout, so the whole wait is bounded by the deadline plus one call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

TIMEOUT_ENV = "PROPFLOW_VERIFY_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
INTERVAL_S = 2.0

Probe = Callable[[], tuple[bool, str]]


class Settled:
    """A probe of something already decided: the answer a one-shot step got (an HTTP status). Looking again
    cannot change it, so :func:`wait_until` takes its first answer instead of polling until the deadline."""

    def __init__(self, done: bool, seen: str) -> None:
        self.done, self.seen = done, seen

    def __call__(self) -> tuple[bool, str]:
        return self.done, self.seen


@dataclass
class Verification:
    verified: bool
    seen: str
    waited_s: float

    def to_json(self) -> dict[str, Any]:
        return {"verified": self.verified, "seen": self.seen, "waited_s": round(self.waited_s, 1)}


def timeout_s() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return max(0.0, min(value, 100.0))  # inside the runner's 120 s cell timeout


def wait_until(probe: Probe, timeout: float | None = None, interval: float = INTERVAL_S) -> Verification:
    limit = timeout_s() if timeout is None else timeout
    t0 = time.monotonic()
    seen = "not checked"
    while True:
        try:
            done, seen = probe()
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run is "not verified", with why
            done, seen = (
                False,
                f"could not check: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            )
        waited = time.monotonic() - t0
        if done:
            return Verification(True, seen, waited)
        if isinstance(probe, Settled):
            return Verification(False, seen, waited)
        if waited + interval > limit:
            return Verification(False, f"after {waited:.0f} s: {seen}", waited)
        time.sleep(interval)


def ecs_service(
    cluster: str, service: str, *, task_definition: str | None = None, health_url: str | None = None
) -> Probe:
    """ECS deployment COMPLETED and running == desired (on ``task_definition`` when given), then /health 2xx.

    moto keeps the PRIMARY deployment's counts and task definition as they were created; the service's own
    ``taskDefinition``, ``runningCount`` and ``desiredCount`` follow an update, so those are what is compared.
    """

    def probe() -> tuple[bool, str]:
        from propflow_ops.sources import aws

        svc = (
            aws.client("ecs").describe_services(cluster=cluster, services=[service]).get("services") or [{}]
        )[0]
        if not svc:
            return False, f"service {service} not found"
        primary: dict[str, Any] = next(
            (d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {}
        )
        rollout = primary.get("rolloutState") or "COMPLETED"
        current = str(svc.get("taskDefinition") or "").rsplit("/", 1)[-1]
        running, desired = svc.get("runningCount"), svc.get("desiredCount")
        seen = (
            f"deployment {rollout}, {running}/{desired} tasks running on {current}, "
            f"{len(svc.get('deployments') or [])} deployment(s)"
        )
        if task_definition and current != task_definition.rsplit("/", 1)[-1]:
            return False, seen + f" (expected {task_definition})"
        if rollout != "COMPLETED" or running != desired or len(svc.get("deployments") or []) > 1:
            return False, seen
        if health_url:
            from propflow_ops.sources import http

            res = http.probe(health_url, timeout_s=3, retries=0)
            if res.value is None or not res.value.ok:
                return False, seen + f"; /health {res.value.status if res.value else res.error}"
            seen += f"; /health {res.value.status}"
        return True, seen

    return probe


def rds_available(db_instance: str, *, failover: bool = False) -> Probe:
    """The instance is ``available`` (and, for a failover, RDS reports it finished when it says so)."""

    def probe() -> tuple[bool, str]:
        from propflow_ops.sources import aws

        rds = aws.client("rds")
        inst = rds.describe_db_instances(DBInstanceIdentifier=db_instance)["DBInstances"][0]
        status = inst.get("DBInstanceStatus")
        seen = f"{db_instance} {status}"
        if status != "available":
            return False, seen
        if failover:
            try:
                events = (
                    rds.describe_events(
                        SourceIdentifier=db_instance, SourceType="db-instance", Duration=60
                    ).get("Events")
                    or []
                )
                done = [
                    e
                    for e in events
                    if "failover" in str(e.get("Message", "")).lower()
                    and "complete" in str(e.get("Message", "")).lower()
                ]
                seen += (
                    "; failover completed event seen" if done else "; no failover-completed event reported"
                )
            except Exception:  # noqa: BLE001 - events are a detail: availability is the verdict
                seen += "; RDS events not readable here"
        return True, seen

    return probe


def alembic_at(target: str, config_path: str) -> Probe:
    def probe() -> tuple[bool, str]:
        from propflow_ops.sources import alembic as src

        state = src.read_state(config_path)
        if state.value is None:
            return False, f"migration scripts unreadable: {state.error or 'no alembic.ini'}"
        revision = state.value.database
        if revision.value is None:
            return False, f"database revision unreadable: {revision.error or 'not read'}"
        current = ", ".join(revision.value.current) or "base"
        return current == (target or "base"), f"alembic current {current} (target {target or 'base'})"

    return probe


def s3_gone(bucket: str, keys: Iterable[str]) -> Probe:
    wanted = list(keys)

    def probe() -> tuple[bool, str]:
        from propflow_ops.sources import aws

        s3 = aws.client("s3")
        still = []
        for key in wanted:
            try:
                s3.head_object(Bucket=bucket, Key=key)
                still.append(key)
            except Exception as exc:  # 404 is what we want; anything else is re-raised
                code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
                if code not in ("404", "NoSuchKey", "NotFound"):
                    raise
        if still:
            return False, f"{len(still)} of {len(wanted)} deleted keys still present (e.g. {still[0]})"
        return True, f"all {len(wanted)} deleted keys gone from s3://{bucket}"

    return probe
