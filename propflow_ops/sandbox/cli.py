"""``propflow-ops sandbox``: run the simulated PropFlow world in the foreground."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence

from propflow_ops.cli import add_server_options

from . import isolation
from .scenarios import SCENARIOS, UnknownScenarioError, validate
from .stopping import Stopped, stop_on_signals


def list_scenarios() -> None:
    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<{width}}  {scenario.description}")


def sandbox_main(
    scenarios: list[str],
    list_only: bool = False,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    log_dialect: str | None = None,
    workers: int = 0,
    alarms: Sequence[str] = (),
) -> int:
    """Print ``unset``/``export`` lines, then ``READY``; run until SIGINT/SIGTERM; stop cleanly.

    Target variables inherited from the environment are ignored (named on stderr, and ``unset`` on
    stdout so that a shell that evaluates the output points only at the sandbox)."""
    if list_only:
        list_scenarios()
        return 0
    from .core import Sandbox, SandboxRefused
    from .logs import DEFAULT_DIALECT, UnknownDialectError

    try:
        names = validate(scenarios)
        sandbox = Sandbox(
            names, database_url=database_url, redis_url=redis_url, log_dialect=log_dialect or DEFAULT_DIALECT
        )
    except (UnknownScenarioError, UnknownDialectError, SandboxRefused) as exc:
        print(f"propflow-ops sandbox: {exc}", file=sys.stderr)
        return 2
    ignored = isolation.scrub()  # this process is the sandbox: nothing it starts inherits a target
    isolation.announce(ignored)
    if not 0 <= workers <= 8:
        print("propflow-ops sandbox: --workers must be between 0 and 8", file=sys.stderr)
        return 2
    ready = False
    fleet: list[object] = []
    with stop_on_signals() as guard:
        try:
            sandbox.start()
            # Ready from here: a stop that lands while READY is being printed (the reader may act on the line
            # before this process runs again) is a clean stop of a started sandbox, exit 0.
            ready = True
            if ignored:
                print(f"unset {' '.join(ignored)}")
            for name, value in sandbox.env.items():
                print(f"export {name}={shlex.quote(value)}")
            print("READY", flush=True)
            if workers:
                from . import fleet as fleet_mod

                fleet = fleet_mod.start_workers(sandbox, workers)
                print(
                    f"propflow-ops sandbox: {workers} worker(s) on {sandbox.fleet.queue_url}, evidence to "
                    f"{sandbox.fleet.output_dir}; alarms to {sandbox.fleet.topic_arn}",
                    file=sys.stderr,
                    flush=True,
                )
                for name in alarms:
                    fleet_mod.publish_alarm(sandbox, name)
                    print(
                        f"propflow-ops sandbox: published CloudWatch alarm {name} ALARM",
                        file=sys.stderr,
                        flush=True,
                    )
            while True:
                time.sleep(0.5)
        except Stopped as stop:
            return 0 if ready else stop.exit_code
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback
            print(
                f"propflow-ops sandbox: error: the sandbox did not start: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        finally:
            guard.calm()
            if fleet:
                from . import fleet as fleet_mod

                fleet_mod.stop_workers(fleet)
            sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m propflow_ops.sandbox", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="fault to inject (repeatable); see --list",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--log-dialect",
        default=None,
        metavar="NAME",
        help="dialect of the API's log lines: propflow (default), python-json, text",
    )
    add_server_options(parser)
    args = parser.parse_args(argv)
    return sandbox_main(
        args.scenario,
        args.list,
        database_url=args.sandbox_database_url,
        redis_url=args.sandbox_redis_url,
        log_dialect=args.log_dialect,
    )
