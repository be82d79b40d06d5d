"""The ``propflow-ops`` command (CONTRACT.md section 1)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from propflow_ops.incident import BadInput
from propflow_ops.runbooks import RUNBOOKS


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="propflow-ops", description="PropFlow's incident runbooks as executable notebooks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="runbooks: slug, title, default severity, symptoms")

    r = sub.add_parser("run", help="run one runbook headlessly and write an evidence report")
    r.add_argument("slug")
    r.add_argument("--incident", metavar="ID")
    r.add_argument("--severity", metavar="P0..P3")
    r.add_argument("--started-at", metavar="ISO8601")
    r.add_argument("--window", type=int, metavar="MINUTES")
    r.add_argument("--apply", action="append", default=[], metavar="STEP")
    r.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), dest="params")
    r.add_argument("--output-dir", metavar="DIR")
    r.add_argument("--no-html", action="store_true")
    r.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="time budget for the whole run (default 300)")

    s = sub.add_parser("sandbox", help="start the simulated PropFlow world in the foreground")
    s.add_argument("--scenario", action="append", default=[], metavar="NAME")
    s.add_argument("--list", action="store_true", help="list the scenarios")
    s.add_argument("--log-dialect", default=None, metavar="NAME",
                   help="dialect of the API's log lines: propflow (default), python-json, text")

    d = sub.add_parser("demo", help="sandbox + triage + the runbooks it recommends + the review")
    d.add_argument("--scenario", action="append", default=[], metavar="NAME")
    d.add_argument("--output-dir", metavar="DIR")

    v = sub.add_parser("review", help="post-incident review over all runs of an incident")
    v.add_argument("incident_id")
    v.add_argument("--output-dir", metavar="DIR")
    v.add_argument("--no-html", action="store_true")

    lab = sub.add_parser("lab", help="open the runbooks in JupyterLab")
    lab.add_argument("slug", nargs="?")
    lab.add_argument("--sandbox", action="store_true", help="start the sandbox first and point at it")
    lab.add_argument("--scenario", action="append", default=[], metavar="NAME")
    lab.add_argument("--port", type=int, default=8888)
    return p


def cmd_list() -> int:
    width = max(len(s) for s in RUNBOOKS)
    for rb in RUNBOOKS.values():
        print(f"{rb.slug:{width}}  {rb.severity}  {rb.title}: {rb.symptoms}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from propflow_ops.runner import DEFAULT_BUDGET_S, RunRequest, run

    req = RunRequest(
        slug=args.slug,
        incident=args.incident,
        severity=args.severity,
        started_at=args.started_at,
        window=args.window,
        apply=[a for item in args.apply for a in item.split(",") if a.strip()],
        params=[(n, v) for n, v in args.params],
        output_dir=args.output_dir,
        html=not args.no_html,
        budget_s=args.budget if args.budget is not None else DEFAULT_BUDGET_S,
        announce=True,
    )
    result = run(req)
    counts: dict[str, int] = {}
    for f in result.evidence.get("findings", []):
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no findings"
    print(f"{req.slug}: {result.status} ({summary})" + (f"; {result.error}" if result.error else ""))
    for f in result.evidence.get("findings", []):
        if f["status"] in ("fail", "error"):
            print(f"  {f['status'].upper():5} {f['code']}: {f['title']}")
    print(result.path)
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "sandbox":
            from propflow_ops.sandbox.cli import sandbox_main

            return sandbox_main(args.scenario, args.list, args.log_dialect)
        if args.command == "demo":
            from propflow_ops.demo import demo_main

            return demo_main(args.scenario, args.output_dir)
        if args.command == "review":
            from propflow_ops.review import review_main

            return review_main(args.incident_id, args.output_dir, html=not args.no_html)
        if args.command == "lab":
            from propflow_ops.lab import lab_main

            return lab_main(args.slug, sandbox=args.sandbox, scenarios=args.scenario, port=args.port)
    except BadInput as exc:
        print(f"propflow-ops: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("propflow-ops: interrupted", file=sys.stderr)
        return 130
    return 2


# Commands that own no server (the sandbox's may rely on atexit hooks to stop theirs).
_QUICK_EXIT = ("list", "run", "review")


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
