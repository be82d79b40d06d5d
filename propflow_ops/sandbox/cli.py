"""``propflow-ops sandbox``: run the simulated PropFlow world in the foreground."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .scenarios import SCENARIOS, UnknownScenarioError, validate


def list_scenarios() -> None:
    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<{width}}  {scenario.description}")


def sandbox_main(scenarios: list[str], list_only: bool = False, log_dialect: str | None = None) -> int:
    """Print ``export NAME=VALUE`` lines, then ``READY``; run until SIGINT/SIGTERM; stop cleanly."""
    if list_only:
        list_scenarios()
        return 0
    try:
        names = validate(scenarios)
    except UnknownScenarioError as exc:
        print(f"propflow-ops sandbox: {exc}", file=sys.stderr)
        return 2
    from .logs import DEFAULT_DIALECT, UnknownDialectError, validate_dialect

    try:
        dialect = validate_dialect(log_dialect or DEFAULT_DIALECT)
    except UnknownDialectError as exc:
        print(f"propflow-ops sandbox: {exc}", file=sys.stderr)
        return 2

    from .core import Sandbox

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(names, log_dialect=dialect)
    try:
        sandbox.start()
        for name, value in sandbox.env.items():
            print(f"export {name}={shlex.quote(value)}")
        print("READY", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m propflow_ops.sandbox", description=__doc__)
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        help="fault to inject (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--log-dialect", default=None, metavar="NAME",
                        help="dialect of the API's log lines: propflow (default), python-json, text")
    args = parser.parse_args(argv)
    return sandbox_main(args.scenario, args.list, args.log_dialect)
