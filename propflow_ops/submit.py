"""``propflow-ops submit SLUG [run options]``: ask the fleet (inside the VPC) to run a runbook.

The request goes on the fleet's queue (``--queue`` / ``$PROPFLOW_FLEET_QUEUE_URL``) as a run request with a
fresh request id; a worker runs it, publishes the evidence to the shared S3 store and writes its answer as
``_requests/<id>.json`` there (created once). ``submit`` polls for that answer until ``--timeout`` and then
prints what ``run`` prints (the summary, the failing findings, the evidence location) with ``run``'s exit codes
(0 ok, 1 problems, 2 bad input, 3 error; 3 too when no worker answered in time, saying so).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from propflow_ops import alarms as alarms_mod
from propflow_ops import store as store_mod
from propflow_ops.incident import BadInput

POLL_S = 1.0


def request_body(request_id: str, slug: str, options: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "propflow": alarms_mod.REQUEST_SCHEMA,
            "request_id": request_id,
            "slug": slug,
            "options": {k: v for k, v in options.items() if v not in (None, [], "")},
        }
    )


def submit_main(
    slug: str,
    options: Mapping[str, Any],
    queue_url: str | None,
    output_dir: str | None,
    timeout_s: float,
    print_result: Any,
) -> int:
    from propflow_ops.runbooks import RUNBOOKS

    if slug not in RUNBOOKS:
        raise BadInput(f"unknown runbook {slug!r}; known: {', '.join(RUNBOOKS)}")
    queue_url = queue_url or os.environ.get("PROPFLOW_FLEET_QUEUE_URL") or ""
    if not queue_url:
        raise BadInput("name the fleet's queue: --queue URL (or PROPFLOW_FLEET_QUEUE_URL)")
    loc = store_mod.location(store_mod.fleet_output(output_dir) or None)
    if not isinstance(loc, store_mod.S3Url):
        raise BadInput(
            "submit needs the fleet's s3:// evidence store (--output-dir, PROPFLOW_FLEET_OUTPUT_DIR or "
            "PROPFLOW_OUTPUT_DIR), "
            f"not the local folder {loc}"
        )
    if not 1 <= timeout_s <= 24 * 3600:
        raise BadInput("--timeout must be between 1 and 86400 seconds")
    request_id = uuid.uuid4().hex
    try:
        store_mod.plumbing_client("sqs").send_message(
            QueueUrl=queue_url, MessageBody=request_body(request_id, slug, options)
        )
    except Exception as exc:  # noqa: BLE001 - the queue is not reachable: one line, exit 3
        print(
            f"propflow-ops: error: cannot put the request on {queue_url}: {store_mod._one_line(exc)}",
            file=sys.stderr,
        )
        return 3
    print(
        f"propflow-ops: submitted {slug} as request {request_id}; waiting for a worker...",
        file=sys.stderr,
        flush=True,
    )
    blobs = store_mod.Blobs(loc)
    deadline = time.monotonic() + timeout_s
    reply: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            reply = blobs.get(f"_requests/{request_id}.json")
        except Exception as exc:  # noqa: BLE001 - a store hiccup: try again until the deadline
            print(
                f"propflow-ops: warning: reading the answer failed: {store_mod._one_line(exc)}",
                file=sys.stderr,
            )
        if reply is not None:
            break
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    if reply is None:
        print(
            f"propflow-ops: error: no worker answered request {request_id} within {timeout_s:g} s; it stays on "
            f"the queue and its evidence will appear under {loc}",
            file=sys.stderr,
        )
        return 3
    code = int(reply.get("exit_code", 3))
    if code == 2:
        print(f"propflow-ops: error: {reply.get('error')}", file=sys.stderr)
        return 2
    evidence = {"findings": reply.get("findings") or [], **(reply.get("evidence") or {})}
    print_result(slug, str(reply.get("status")), reply.get("error"), evidence, reply.get("folder"))
    return code


def options_from(args: Any, apply: Sequence[str]) -> dict[str, Any]:
    return {
        "incident": args.incident,
        "severity": args.severity,
        "started_at": args.started_at,
        "window": args.window,
        "apply": list(apply),
        "params": [[n, v] for n, v in args.params],
        "html": not args.no_html,
        "budget": args.budget,
        # change control: the worker has no terminal, so --apply against a real target needs --yes
        "reason": args.reason,
        "yes": args.yes or None,
        "no_snapshot": args.no_snapshot or None,
        "force": args.force or None,
    }
