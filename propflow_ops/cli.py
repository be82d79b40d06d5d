"""The ``propflow-ops`` command (CONTRACT.md section 1)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from propflow_ops.incident import BadInput
from propflow_ops.runbooks import RUNBOOKS


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--sandbox-database-url``/``--sandbox-redis-url``: servers *for the sandbox*, never a target."""
    parser.add_argument(
        "--sandbox-database-url",
        metavar="URL",
        default=None,
        help="PostgreSQL server for the sandbox instead of the embedded one: it creates and "
        "drops its own database there (env PROPFLOW_SANDBOX_DATABASE_URL)",
    )
    parser.add_argument(
        "--sandbox-redis-url",
        metavar="URL",
        default=None,
        help="Redis server for the sandbox instead of the embedded one: an empty db number "
        "that it claims (env PROPFLOW_SANDBOX_REDIS_URL)",
    )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="propflow-ops", description="PropFlow's incident runbooks as executable notebooks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="runbooks: slug, title, default severity, symptoms")

    r = sub.add_parser("run", help="run one runbook headlessly and write an evidence report")
    _run_options(r)
    _config_options(r)

    sb = sub.add_parser(
        "submit", help="ask the fleet (inside the VPC) to run a runbook; wait for its evidence"
    )
    _run_options(sb)
    sb.add_argument("--queue", metavar="URL", help="the fleet's SQS queue (env PROPFLOW_FLEET_QUEUE_URL)")
    sb.add_argument(
        "--timeout",
        type=float,
        default=900,
        metavar="SECONDS",
        help="how long to wait for a worker's answer (default 900)",
    )

    w = sub.add_parser("worker", help="serve the fleet's queue: alarms and run requests into evidence")
    w.add_argument("--queue", metavar="URL", help="the SQS queue (env PROPFLOW_FLEET_QUEUE_URL)")
    w.add_argument(
        "--output-dir",
        metavar="S3URL",
        help="the evidence store, s3://bucket/prefix (env PROPFLOW_OUTPUT_DIR)",
    )
    w.add_argument("--concurrency", type=int, default=1, metavar="N", help="runbooks at once (default 1)")
    w.add_argument("--wait", type=int, default=20, metavar="SECONDS", help="long-poll wait (default 20)")
    w.add_argument(
        "--escalate-every",
        type=float,
        default=30,
        metavar="SECONDS",
        help="how often the escalation timer runs (default 30)",
    )
    w.add_argument(
        "--max-messages", type=int, default=0, metavar="N", help="stop after N messages (default: never)"
    )
    _config_options(w)

    lk = sub.add_parser("lock", help="the team-wide change lock: list, break")
    lsub = lk.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ll = lsub.add_parser("list", help="who holds which resource, since when")
    ll.add_argument("--json", action="store_true")
    lb = lsub.add_parser("break", help="free a resource whose change is dead (recorded in its incident)")
    lb.add_argument("resource")
    lb.add_argument("--reason", metavar="TEXT", required=True)
    for parser in lsub.choices.values():
        parser.add_argument("--output-dir", metavar="DIR")
        _config_options(parser)

    s = sub.add_parser("sandbox", help="start the simulated PropFlow world in the foreground")
    s.add_argument("--scenario", action="append", default=[], metavar="NAME")
    s.add_argument("--list", action="store_true", help="list the scenarios")
    s.add_argument(
        "--log-dialect",
        default=None,
        metavar="NAME",
        help="dialect of the API's log lines: propflow (default), python-json, text",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="also start N fleet workers on the sandbox's queue and S3 evidence store",
    )
    s.add_argument(
        "--alarm",
        action="append",
        default=[],
        metavar="NAME",
        help="with --workers: publish this CloudWatch alarm (ALARM) to the sandbox's alarm topic",
    )
    add_server_options(s)

    d = sub.add_parser("demo", help="sandbox + triage + the runbooks it recommends + the review")
    d.add_argument("--scenario", action="append", default=[], metavar="NAME")
    d.add_argument("--output-dir", metavar="DIR")
    add_server_options(d)

    v = sub.add_parser("review", help="post-incident review over all runs of an incident")
    v.add_argument("incident_id")
    v.add_argument("--output-dir", metavar="DIR")
    v.add_argument("--no-html", action="store_true")
    _config_options(v)

    inc = sub.add_parser("incident", help="the incident record: open, show, ack, resolve, note")
    isub = inc.add_subparsers(dest="action", required=True, parser_class=_Parser)
    o = isub.add_parser("open", help="open an incident (a run with --incident opens it too)")
    o.add_argument("incident_id")
    o.add_argument("--severity", metavar="P0..P3", default="P1")
    o.add_argument("--started-at", metavar="ISO8601", help="when it began (default now)")
    o.add_argument("--title", default="", metavar="TEXT")
    sh = isub.add_parser("show", help="the record: clock, acks, notes, escalations, operators")
    sh.add_argument("incident_id")
    sh.add_argument("--json", action="store_true", help="print the state as JSON")
    for action, text in (
        ("ack", "acknowledge: the response time is measured to this"),
        ("resolve", "resolve: the RTO is measured to this; escalation stops"),
    ):
        a = isub.add_parser(action, help=text)
        a.add_argument("incident_id")
        a.add_argument("--at", metavar="ISO8601", help="when it happened (default now)")
        a.add_argument("--note", default="", metavar="TEXT")
    n = isub.add_parser("note", help="add a free-text note to the timeline")
    n.add_argument("incident_id")
    n.add_argument("text")
    n.add_argument("--at", metavar="ISO8601", help="when it happened (default now)")
    for parser in isub.choices.values():
        parser.add_argument("--output-dir", metavar="DIR")
        _config_options(parser)

    e = sub.add_parser("escalate", help="send the escalation steps that are due, once each")
    e.add_argument("incident_id")
    e.add_argument("--now", metavar="ISO8601", help="the clock to judge 'due' by (default now)")
    e.add_argument("--output-dir", metavar="DIR")
    _config_options(e)

    lab = sub.add_parser("lab", help="open the runbooks in JupyterLab")
    lab.add_argument("slug", nargs="?")
    lab.add_argument("--sandbox", action="store_true", help="start the sandbox first and point at it")
    lab.add_argument("--scenario", action="append", default=[], metavar="NAME")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument(
        "--incident",
        metavar="ID",
        help="work on copies in this incident's folder (default: an "
        "ad-hoc incident, as run); saving publishes its runs",
    )
    lab.add_argument("--severity", metavar="P0..P3")
    lab.add_argument("--started-at", metavar="ISO8601")
    lab.add_argument("--output-dir", metavar="DIR")
    add_server_options(lab)
    _config_options(lab)
    return p


def _run_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("slug")
    r.add_argument("--incident", metavar="ID")
    r.add_argument("--severity", metavar="P0..P3")
    r.add_argument("--started-at", metavar="ISO8601")
    r.add_argument("--window", type=int, metavar="MINUTES")
    r.add_argument("--apply", action="append", default=[], metavar="STEP")
    r.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), dest="params")
    r.add_argument("--output-dir", metavar="DIR")
    r.add_argument("--no-html", action="store_true")
    r.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time budget for the whole run (default 300)",
    )
    r.add_argument(
        "--reason", metavar="TEXT", help="why the --apply steps are applied (required with --apply; recorded)"
    )
    r.add_argument(
        "--yes",
        action="store_true",
        help="confirm --apply against a target that is not the sandbox without typing the step name",
    )
    r.add_argument(
        "--no-snapshot",
        action="store_true",
        help="apply a database step without a snapshot (the database is not on RDS, or you have a backup)",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="apply a step a failing finding refuses (e.g. "
        "migration-downgrade while MIGRATION_OBJECT_EXISTS fails)",
    )


def _config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="team configuration (default $PROPFLOW_CONFIG, else ./propflow-ops.toml if present)",
    )
    p.add_argument("--env", metavar="NAME", dest="config_env", help="environment of the configuration file")


def config_env(args: argparse.Namespace) -> dict[str, str]:
    """--config / --env as the environment variables the runner and the kernel read (options win)."""
    from propflow_ops import config as config_mod

    out: dict[str, str] = {}
    if getattr(args, "config", None):
        path = config_mod.config_path(args.config)
        out[config_mod.CONFIG_ENV] = str(path)
    if getattr(args, "config_env", None):
        out[config_mod.ENV_NAME_ENV] = args.config_env
    if out:  # validate now: a bad file or environment is one line and exit 2 before anything runs
        config_mod.load(None, None, {**os.environ, **out})
    return out


def lock_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment with the chosen configuration environment's settings (its lock table, AWS endpoint)."""
    from propflow_ops import config as config_mod

    env = {**os.environ, **config_env(args)}
    cfg = config_mod.load(None, None, env)
    return {**env, **config_mod.environment_overlay(cfg, env, secrets=False)}


def cmd_list() -> int:
    width = max(len(s) for s in RUNBOOKS)
    for rb in RUNBOOKS.values():
        print(f"{rb.slug:{width}}  {rb.severity}  {rb.title}: {rb.symptoms}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from propflow_ops.run.request import DEFAULT_BUDGET_S
    from propflow_ops.runner import RunRequest, run
    from propflow_ops.store import location

    req = RunRequest(
        slug=args.slug,
        incident=args.incident,
        severity=args.severity,
        started_at=args.started_at,
        window=args.window,
        apply=[a for item in args.apply for a in item.split(",") if a.strip()],
        params=[(n, v) for n, v in args.params],
        output_dir=str(location(args.output_dir))
        if args.output_dir
        else None,  # a folder, or s3://bucket/prefix
        html=not args.no_html,
        budget_s=args.budget if args.budget is not None else DEFAULT_BUDGET_S,
        announce=True,
        env=config_env(args),
        yes=args.yes,
        reason=args.reason,
        no_snapshot=args.no_snapshot,
        force=args.force,
    )
    result = run(req)
    print_result(req.slug, result.status, result.error, result.evidence, result.path)
    return result.exit_code


def print_result(slug: str, status: str, error: str | None, evidence: dict[str, Any], path: object) -> None:
    """What ``run`` (and ``submit``, from the worker's answer) prints: summary, failing findings, the folder."""
    counts: dict[str, int] = {}
    for f in evidence.get("findings", []):
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no findings"
    print(f"{slug}: {status} ({summary})" + (f"; {error}" if error else ""))
    for f in evidence.get("findings", []):
        if f["status"] in ("fail", "error"):
            print(f"  {f['status'].upper():5} {f['code']}: {f['title']}")
    from propflow_ops.change.runs import lines as change_lines

    for line in change_lines(evidence):
        print(line)
    for p in (evidence.get("incident") or {}).get("escalation_pending") or []:
        print(
            f"  ESCALATION DUE, NOT SENT: {p['action']} (due {p['due_at']}): "
            f"propflow-ops escalate {evidence['incident'].get('id')}"
        )
    print(path)


def cmd_submit(args: argparse.Namespace) -> int:
    from propflow_ops.submit import options_from, submit_main

    apply = [a for item in args.apply for a in item.split(",") if a.strip()]
    return submit_main(
        args.slug, options_from(args, apply), args.queue, args.output_dir, args.timeout, print_result
    )


def _one_line(exc: BaseException) -> str:
    from propflow_ops.redact import redact_text

    return " ".join(redact_text(str(exc)).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "submit":
            return cmd_submit(args)
        if args.command == "worker":
            from propflow_ops.worker import worker_main

            return worker_main(
                args.queue,
                args.output_dir,
                args.concurrency,
                args.wait,
                args.escalate_every,
                args.max_messages,
                config_env(args),
            )
        if args.command == "sandbox":
            from propflow_ops.sandbox.cli import sandbox_main

            return sandbox_main(
                args.scenario,
                args.list,
                database_url=args.sandbox_database_url,
                redis_url=args.sandbox_redis_url,
                log_dialect=args.log_dialect,
                workers=args.workers,
                alarms=args.alarm,
            )
        if args.command == "demo":
            from propflow_ops.demo import demo_main

            return demo_main(
                args.scenario,
                args.output_dir,
                database_url=args.sandbox_database_url,
                redis_url=args.sandbox_redis_url,
            )
        if args.command == "review":
            from propflow_ops.inputs import check_incident_id
            from propflow_ops.review.command import review_main
            from propflow_ops.store import location

            check_incident_id(args.incident_id)
            if args.output_dir:
                args.output_dir = str(location(args.output_dir))

            return review_main(args.incident_id, args.output_dir, html=not args.no_html, env=config_env(args))
        if args.command == "incident":
            from propflow_ops.incident_cli import incident_main

            return incident_main(args, config_env(args))
        if args.command == "escalate":
            from propflow_ops.incident_cli import escalate_main

            return escalate_main(args, config_env(args))
        if args.command == "lock":
            from propflow_ops.change.runs import lock_main

            return lock_main(
                args.action,
                getattr(args, "resource", None),
                getattr(args, "reason", None),
                getattr(args, "json", False),
                args.output_dir,
                lock_env(args),
            )
        if args.command == "lab":
            from propflow_ops.lab import LabIncident, lab_main

            if args.sandbox and (args.config or args.config_env):
                raise BadInput(
                    "lab: --config/--env cannot be used with --sandbox (the sandbox writes its own "
                    "configuration)"
                )
            where = LabIncident(
                args.incident, args.output_dir, args.severity, args.started_at, config_env(args)
            )
            return lab_main(
                args.slug,
                sandbox=args.sandbox,
                scenarios=args.scenario,
                port=args.port,
                database_url=args.sandbox_database_url,
                redis_url=args.sandbox_redis_url,
                incident=where,
            )
    except BadInput as exc:
        print(f"propflow-ops: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from propflow_ops.run.execute import Terminated

        if isinstance(exc, Terminated):
            print(f"propflow-ops: terminated ({exc.args[0]})", file=sys.stderr)
            return 128 + exc.signum
        print("propflow-ops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a disk error is an answer; a bug gets its masked traceback
        from propflow_ops.run.folder import PublishError

        if isinstance(exc, PublishError):  # disk full, read-only: an answer, not a crash
            print(f"propflow-ops: error: {_one_line(exc)}", file=sys.stderr)
            return 3
        import traceback

        from propflow_ops.redact import redact_text

        # a bug: its traceback, masked (an exception's text may hold a URL with its password)
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    return 2


# Commands that own no server, and those that stop theirs explicitly before main() returns (sandbox, demo,
# lab): a worker thread still waiting on a killed kernel must not hold up the interpreter's teardown.
_QUICK_EXIT = (
    "list",
    "run",
    "submit",
    "worker",
    "review",
    "incident",
    "escalate",
    "lock",
    "sandbox",
    "demo",
    "lab",
)


def entry() -> int:
    """The console script: :func:`main`; after ``run``, ``review`` and ``list`` it leaves without the
    interpreter's teardown, which takes about 0.5 s in a process that has imported papermill and the kernel
    machinery. Every file is written and closed by then; an unexpected exception still ends the normal
    way, with its traceback."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in _QUICK_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
