"""ECS after a change: the sandbox's service converges (or does not) the way ECS would.

moto answers ``update_service`` (a new task definition, ``forceNewDeployment``, a desired count) by
editing the service in place and never rolls anything out: the PRIMARY deployment keeps its state, a
failed one stays FAILED beside the old ACTIVE one, and a verifier waiting for COMPLETED waits forever.
:class:`Rollout` is the missing scheduler. A thread watches the service in moto's backend; when an
update changes it, the change starts as ECS starts one (a new PRIMARY deployment IN_PROGRESS with no
task running yet, the old one ACTIVE and still serving) and, :data:`SETTLE_S` later, ends as
:class:`EcsModel` says the world lets it end:

- the target revision is in ``failing`` (its tasks exit at start: api-bad-deploy's 1.16.0): the
  deployment FAILED (circuit breaker), no task of it running, the old deployment still serving;
- ``oom`` (one task keeps being OOM-killed: api-oom), whatever the revision: the deployment stays
  IN_PROGRESS with one task fewer than desired running;
- otherwise: one PRIMARY deployment COMPLETED on the target revision, running == desired, the old
  tasks stopped by the scheduler and new ones running, and the events ECS writes.

The rollout starts inside moto's ``update_service`` (its answer shows the new deployment, as ECS's does);
the thread ends it. Scenarios state the model (``sb.aws.rollout.model``); seeding and scenario injection happen while the
watch is paused (:meth:`Rollout.pause`), and :meth:`Rollout.resume` takes the injected world as the
starting point, so a scenario's own deployments are never "converged". Only this sandbox's moto
backend (in this process) is read and written.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aws import AwsWorld

log = logging.getLogger(__name__)

TICK_S = 0.1  # how often the service is looked at
SETTLE_S = 1.0  # from the update to the end of the rollout (ECS: minutes; here: within the verifier's poll)
CIRCUIT_BREAKER = "ECS deployment circuit breaker: tasks failed to start."


def short(task_definition: Any) -> str:
    """``family:revision`` of a task definition ARN (or of ``family:revision`` itself)."""
    return str(task_definition or "").rsplit("/", 1)[-1]


@dataclass
class EcsModel:
    """What the world does to the service's tasks: which revisions cannot run, whether tasks OOM."""

    failing: set[str] = field(default_factory=set)  # family:revision whose tasks exit at start
    oom: bool = False  # one task of the service keeps being OOM-killed, whatever the revision

    def outcome(self, task_definition: str, desired: int) -> tuple[str, int]:
        """(rolloutState the deployment ends in, tasks of it running) for ``desired`` tasks of a revision."""
        if short(task_definition) in self.failing:
            return "FAILED", 0
        if self.oom and desired > 0:
            return "IN_PROGRESS", desired - 1
        return "COMPLETED", desired


@dataclass
class _Pending:
    due: float  # monotonic time the rollout ends
    deployment_id: str
    task_definition: str
    desired: int
    replace: bool  # a new deployment replaces every task; a scaling keeps those on the revision
    started: list[str] = field(default_factory=list)  # tasks this rollout started (an end retried keeps them)


class Rollout:
    """The reconciler thread of one :class:`~propflow_ops.sandbox.aws.AwsWorld` (see the module)."""

    def __init__(self, world: AwsWorld) -> None:
        self.world = world
        self.model = EcsModel()
        self._lock = threading.RLock()
        self._paused = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[Any, ...] | None = None  # the service as last settled: what an update changes
        self._primary_id = ""  # the PRIMARY deployment's id as last settled (moto overwrites it on force)
        self._pending: _Pending | None = None
        self.converged = 0  # rollouts ended (any outcome), for tests and the curious

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sandbox-ecs-rollout", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def pause(self) -> None:
        """Stop watching (seed, reset, scenario injection): a rollout in flight is dropped, the model cleared."""
        with self._lock:
            self._paused = True
            self._pending = None
            self._seen = None
            self.model = EcsModel()

    def resume(self) -> None:
        """Watch again, from the world as it is now (after a scenario was injected)."""
        with self._lock:
            self._pending = None
            self._seen = None
            try:
                self._settled()
                self._hook()
            except Exception:  # no service (a failed seed): nothing to watch
                log.debug("sandbox rollout: no service to watch", exc_info=True)
            self._paused = False

    def _hook(self) -> None:
        """Start a rollout inside the update_service call itself, as ECS does (its answer already shows the
        new deployment, and no verifier can look before it began): on this sandbox's own ECS backend object
        only (moto's reset makes a new one; :meth:`resume` hooks it again), never on moto's class."""
        backend = self.world.ecs_backend()
        if getattr(backend.update_service, "_sandbox_rollout", None) is self:
            return
        original = backend.update_service

        def update_service(service_properties: dict[str, Any]) -> Any:
            updated = original(service_properties)
            try:
                self.tick()
            except Exception:  # the thread looks again at its next tick
                log.debug("sandbox rollout: tick in update_service failed", exc_info=True)
            return updated

        update_service._sandbox_rollout = self  # type: ignore[attr-defined]
        backend.update_service = update_service

    @property
    def busy(self) -> bool:
        """A rollout has started and not ended yet."""
        with self._lock:
            return self._pending is not None

    # --- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # a reset mid-look, a stopping server: look again next tick
                log.debug("sandbox rollout: tick failed", exc_info=True)

    def tick(self) -> None:
        with self._lock:
            if self._paused or self.world.cancel.is_set():
                return
            svc = self.world.service()
            if self._seen is None:
                self._settled()
                return
            if self._signature(svc) != self._seen:
                self._begin(svc)
            elif self._pending is not None and time.monotonic() >= self._pending.due:
                self._end(svc, self._pending)

    @staticmethod
    def _signature(svc: Any) -> tuple[Any, ...]:
        primary = svc.deployments[0] if svc.deployments else {}
        return (short(svc.task_definition), svc.desired_count, primary.get("id"))

    def _settled(self) -> None:
        svc = self.world.service()
        self._seen = self._signature(svc)
        self._primary_id = str(svc.deployments[0]["id"]) if svc.deployments else ""

    def _begin(self, svc: Any) -> None:
        """An update arrived: start the rollout as ECS does (or re-aim one already under way)."""
        from .aws import new_deployment_id, utcnow

        now = utcnow()
        old_td, old_desired, old_id = self._seen or (None, None, None)
        current = svc.deployments[0] if svc.deployments else {}
        new_deployment = short(svc.task_definition) != old_td or current.get("id") != old_id
        desired = int(svc.desired_count)
        svc.task_definition = self._arn(svc.task_definition)  # ECS answers the ARN, moto what it was given
        if new_deployment:
            # moto overwrote the PRIMARY's id in place on forceNewDeployment: give it back its own
            serving = [dict(d) for d in svc.deployments if int(d.get("runningCount") or 0) > 0]
            if current and serving and serving[0].get("status") == "PRIMARY":
                serving[0]["id"] = self._primary_id or serving[0]["id"]
            dep_id = new_deployment_id()
            primary: dict[str, Any] = {
                "id": dep_id,
                "status": "PRIMARY",
                "taskDefinition": self._arn(svc.task_definition),
                "desiredCount": desired,
                "pendingCount": desired,
                "runningCount": 0,
                "failedTasks": 0,
                "createdAt": now,
                "updatedAt": now,
                "launchType": svc.launch_type or "FARGATE",
                "platformFamily": "FARGATE",
                "rolloutState": "IN_PROGRESS",
                "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
            }
            svc.deployments = [primary, *[dict(d, status="ACTIVE") for d in serving]]
            self._event(svc, now, f"(service {svc.name}) has started a new deployment {dep_id}.")
        else:  # the desired count only: the PRIMARY deployment scales
            primary = svc.deployments[0]
            primary.update(desiredCount=desired, updatedAt=now)
            dep_id = str(primary["id"])
        running = sum(int(d.get("runningCount") or 0) for d in svc.deployments)
        self._counts(svc, running=running, pending=max(0, desired - int(primary.get("runningCount") or 0)))
        self._pending = _Pending(
            time.monotonic() + SETTLE_S, dep_id, short(svc.task_definition), desired, new_deployment
        )
        self._settled()

    def _end(self, svc: Any, pending: _Pending) -> None:
        """The rollout ends as the model says."""
        from .aws import utcnow

        now = utcnow()
        primary = svc.deployments[0]
        state, running = self.model.outcome(pending.task_definition, pending.desired)
        # first what can fail half-way (moto's task table changing under us): the next tick ends it again
        started = self._replace_tasks(svc, pending) if state == "COMPLETED" else []
        self._pending = None
        self.converged += 1
        name = svc.name
        if state == "FAILED":
            primary.update(
                rolloutState="FAILED",
                rolloutStateReason=CIRCUIT_BREAKER,
                runningCount=0,
                pendingCount=0,
                failedTasks=int(primary.get("failedTasks") or 0) + max(1, pending.desired),
                updatedAt=now,
            )
            serving = sum(int(d.get("runningCount") or 0) for d in svc.deployments[1:])
            self._counts(svc, running=serving, pending=0)
            self._event(
                svc,
                now,
                f"(service {name}) (deployment {pending.deployment_id}) deployment failed: "
                "tasks failed to start.",
            )
        elif state == "IN_PROGRESS":  # the old tasks drained; one of the new keeps dying
            primary.update(runningCount=running, pendingCount=pending.desired - running, updatedAt=now)
            svc.deployments = [primary]
            self._counts(svc, running=running, pending=pending.desired - running)
            self._event(svc, now, f"(service {name}) is unable to consistently start tasks successfully.")
        else:
            primary.update(
                rolloutState="COMPLETED",
                rolloutStateReason=f"ECS deployment {pending.deployment_id} completed.",
                runningCount=running,
                pendingCount=0,
                updatedAt=now,
            )
            svc.deployments = [primary]
            self._counts(svc, running=running, pending=0)
            if started:
                self._event(
                    svc,
                    now,
                    f"(service {name}) has started {len(started)} tasks: "
                    + " ".join(f"(task {t})" for t in started)
                    + ".",
                )
            self._event(
                svc, now, f"(service {name}) deployment {pending.deployment_id} deployment completed."
            )
            self._event(svc, now, f"(service {name}) has reached a steady state.")
        self._settled()

    # --- helpers -----------------------------------------------------------------------------

    def _arn(self, task_definition: Any) -> str:
        td = self.world.ecs_backend().describe_task_definition(str(task_definition))
        return str(td.arn)

    def _replace_tasks(self, svc: Any, pending: _Pending) -> list[str]:
        """Stop the service's running tasks (a new deployment: all of them; a scaling: those beyond the
        desired count or not on the revision), start what is missing (the scheduler's replacement);
        returns the started task ids."""
        from .aws import CLUSTER, utcnow

        now = utcnow()
        target = self._arn(svc.task_definition)
        group = f"service:{svc.name}"
        mine = [
            t
            for t in list(self.world.ecs_backend().tasks.get(CLUSTER, {}).values())
            if t.last_status == "RUNNING" and getattr(t, "group", None) == group
        ]
        ours = [t for t in mine if str(t.id) in pending.started]
        keep = (ours if pending.replace else [t for t in mine if t.task_definition_arn == target])[
            : pending.desired
        ]
        for task in mine:
            if task not in keep:
                self.world.stop_task(
                    str(task.id),
                    reason=f"Scaling activity initiated by (deployment {pending.deployment_id})",
                    exit_code=0,
                    stopped_at=now,
                    stop_code="ServiceSchedulerInitiated",
                )
        for _ in range(pending.desired - len(keep)):
            pending.started.append(self.world.run_task(target, now))
        return pending.started

    def _counts(self, svc: Any, *, running: int, pending: int) -> None:
        from .aws import CLUSTER

        svc.running_count, svc.pending_count = running, pending
        cluster = self.world.ecs_backend().clusters[CLUSTER]
        cluster.running_tasks_count, cluster.pending_tasks_count = running, pending

    def _event(self, svc: Any, at: dt.datetime, message: str) -> None:
        svc.events.insert(0, self.world.service_event(at, message))
