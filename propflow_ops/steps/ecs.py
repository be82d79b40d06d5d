"""ECS remediation steps: force a new deployment, roll back the task definition, scale the service.

Each builder returns a :class:`~propflow_ops.remediation.Step` whose ``command``
is the exact ``aws`` CLI equivalent; ``execute`` makes the same call through
boto3 (only when the run's ``apply`` names the step, see ``run_step``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from propflow_ops.change import verify
from propflow_ops.checks.ecs import previous_revision
from propflow_ops.remediation import Step, plan_commands, shell_line
from propflow_ops.sources import aws
from propflow_ops.sources import ecs as ecs_source


def _short(arn: Any) -> str:
    return str(arn or "").rsplit("/", 1)[-1]


def _summary(resp: dict[str, Any]) -> dict[str, Any]:
    svc = resp.get("service") or {}
    primary: dict[str, Any] = next(
        (d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {}
    )
    return {
        "service": svc.get("serviceName"),
        "task_definition": _short(svc.get("taskDefinition")),
        "desired_count": svc.get("desiredCount"),
        "deployment": primary.get("id"),
    }


def _service_before(cluster: str, service: str) -> Callable[[], dict[str, Any]]:
    """The service's task definition and desired count just before a change: what its undo goes back to."""

    def read() -> dict[str, Any]:
        svc = (
            aws.client("ecs").describe_services(cluster=cluster, services=[service]).get("services") or [{}]
        )[0]
        if not svc:
            raise LookupError(f"service {service} not found in cluster {cluster}")
        return {
            "task_definition": _short(svc.get("taskDefinition")),
            "desired_count": svc.get("desiredCount"),
        }

    return read


def _health_url() -> str:
    from propflow_ops.checks.api import health_url
    from propflow_ops.notebook import api_url

    return str(health_url(api_url()))


def _verify(cluster: str, service: str, key: str | None) -> Callable[[Any, dict[str, Any]], Any]:
    def make(result: Any, before: dict[str, Any]) -> Any:
        wanted = (result or {}).get("task_definition") if key == "result" else before.get("task_definition")
        return verify.ecs_service(cluster, service, task_definition=wanted, health_url=_health_url())

    return make


def _update_argv(cluster: str, service: str, *extra: str) -> list[str]:
    return ["aws", "ecs", "update-service", "--cluster", cluster, "--service", service, *extra]


def _update(cluster: str, service: str, *extra: str) -> str:
    return shell_line(_update_argv(cluster, service, *extra))


def force_new_deployment(cluster: str, service: str) -> Step:
    """Restart every task of the service on its current task definition (rolling, as ECS deploys)."""

    def execute() -> dict[str, Any]:
        resp = aws.client("ecs").update_service(cluster=cluster, service=service, forceNewDeployment=True)
        return _summary(resp)

    command, argv = plan_commands((_update_argv(cluster, service, "--force-new-deployment"), ""))
    return Step(
        name="force-new-deployment",
        what=f"Start a new deployment of {service} in {cluster} on the same task definition: ECS replaces "
        "every task (rolling, keeping the minimum healthy percent).",
        command=command,
        argv=argv,
        execute=execute,
        risk="Tasks restart; in-flight requests and WebSocket connections on old tasks are dropped. "
        "Does not help if the task definition itself is broken (roll back instead).",
        resource=f"ecs:{cluster}/{service}",
        before=_service_before(cluster, service),
        verify=_verify(cluster, service, "before"),
        undo=lambda result, before, _p: {
            "detail": f"nothing to undo: the tasks restarted on the same task definition "
            f"{before.get('task_definition')}; if the new tasks are worse, roll back",
            "step": "rollback",
        },
    )


def rollback_target(
    cluster: str,
    service: str,
    family: str,
    revision: int | None = None,
) -> tuple[str | None, str | None, str]:
    """(current task definition, target ``family:rev``, why-not text). Fetches from ECS."""
    ecs = aws.client("ecs")
    services = ecs.describe_services(cluster=cluster, services=[service]).get("services") or []
    if not services:
        return None, None, f"service {service} not found in cluster {cluster}"
    current = _short(services[0].get("taskDefinition"))
    arns = ecs_source.task_definition_revisions(family, client=ecs)
    target = previous_revision(current, arns, revision or None)
    if target is None:
        why = (
            f"revision {revision} of {family} is not ACTIVE"
            if revision
            else f"no ACTIVE revision of {family} below the current {current}"
        )
        return current, None, why
    if target == current:
        return current, None, f"the service already runs {target}"
    return current, target, ""


def rollback(
    cluster: str,
    service: str,
    family: str,
    revision: int | None = None,
    *,
    revisions: Iterable[str] | None = None,
    current: str | None = None,
) -> Step:
    """Point the service back at the previous ACTIVE revision of ``family`` (or ``family:revision``).

    ``current`` and ``revisions`` may be passed in (tests, or a notebook that already fetched them);
    otherwise they are fetched now, so the plan names the exact revision.
    """
    why = ""
    target: str | None = None
    try:
        if revisions is not None and current is not None:
            current = _short(current)
            target = previous_revision(current, revisions, revision or None)
            why = "" if target and target != current else f"no ACTIVE revision of {family} to roll back to"
            target = target if not why else None
        else:
            current, target, why = rollback_target(cluster, service, family, revision)
    except Exception as exc:  # noqa: BLE001 - a plan that cannot be computed says why, it does not crash
        why = f"cannot determine the previous revision: {aws.aws_error_text(exc)}"
    shown = target or f"{family}:<previous-revision>"

    def execute() -> dict[str, Any]:
        assert target is not None
        resp = aws.client("ecs").update_service(cluster=cluster, service=service, taskDefinition=target)
        out = _summary(resp)
        out["rolled_back_from"] = current
        return out

    def undo(result: Any, before: dict[str, Any], _p: dict[str, Any]) -> dict[str, Any]:
        prev = str(before.get("task_definition") or current or "")
        rev = prev.rsplit(":", 1)[-1]
        return {
            "detail": f"point {service} back at {prev} (desired count {before.get('desired_count')})",
            "step": "rollback",
            "command": _update(
                cluster,
                service,
                "--task-definition",
                prev,
                "--desired-count",
                str(before.get("desired_count")),
            ),
            "apply": f"propflow-ops run api-down --apply rollback -p rollback_revision {rev} --reason TEXT",
        }

    command, argv = plan_commands((_update_argv(cluster, service, "--task-definition", shown), ""))
    return Step(
        name="rollback",
        what=f"Roll {service} back from {current or 'its current task definition'} to {shown} "
        "(a new deployment of the older revision).",
        command=command,
        argv=argv,
        execute=execute,
        risk="The older image must still be compatible with the database schema (check the migration runbook "
        "if the newer release ran migrations).",
        preview="Revisions considered: "
        + shell_line(
            [
                "aws",
                "ecs",
                "list-task-definitions",
                "--family-prefix",
                family,
                "--status",
                "ACTIVE",
                "--sort",
                "DESC",
            ],
            "the runbook document's --family option does not exist",
        ),
        precondition=why,
        resource=f"ecs:{cluster}/{service}",
        before=_service_before(cluster, service),
        verify=_verify(cluster, service, "result"),
        undo=undo,
    )


def scale_service(cluster: str, service: str, count: int) -> Step:
    """Set the service's desired task count."""

    def execute() -> dict[str, Any]:
        resp = aws.client("ecs").update_service(cluster=cluster, service=service, desiredCount=int(count))
        return _summary(resp)

    command, argv = plan_commands(
        (
            [
                "aws",
                "ecs",
                "update-service",
                "--cluster",
                cluster,
                "--service",
                service,
                "--desired-count",
                str(count),
            ],
            "",
        )
    )
    return Step(
        name="scale-service",
        what=f"Set the desired count of {service} in {cluster} to {count} tasks.",
        command=command,
        argv=argv,
        execute=execute,
        risk="More tasks mean more database connections (each task has its own pool): check connections "
        "against max_connections first.",
        precondition="" if int(count) >= 1 else f"target count must be at least 1, got {count}",
        resource=f"ecs:{cluster}/{service}",
        before=_service_before(cluster, service),
        verify=_verify(cluster, service, "before"),
        undo=lambda result, before, _p: {
            "detail": f"scale {service} back to {before.get('desired_count')} tasks",
            "step": "scale-service",
            "command": _update(cluster, service, "--desired-count", str(before.get("desired_count"))),
            "apply": f"propflow-ops run api-latency --apply scale-service -p scale_to {before.get('desired_count')} "
            "--reason TEXT",
        },
    )
