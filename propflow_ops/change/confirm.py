"""The change options of a run, and the confirmation of a step against a target that is not the sandbox.

Headless, the runner hands the kernel its options in one environment variable (:data:`OPTIONS_ENV`, JSON):
``yes``, ``reason``, ``no_snapshot``, ``force`` and, when the engineer sits at a terminal, ``prompt_dir``:
the kernel writes the plan of the step there (``request-<step>.json``) and waits, bounded, for the reply the
runner reads from the terminal (``reply-<step>``). In JupyterLab there is no such variable: the notebook's
parameters ``confirm`` (the step's name) and ``reason`` give the same.

A step is confirmed by ``--yes``, by ``confirm`` naming the step (or the incident id), or by typing the step
name (or the incident id) at the prompt after seeing its plan. Anything else is refused.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

OPTIONS_ENV = "PROPFLOW_CHANGE"
CONFIRM_WAIT_S = (
    90.0  # below the runner's cell timeout (120 s): an unanswered prompt is a refusal, not a hang
)


@dataclass(frozen=True)
class ChangeOptions:
    headless: bool = False
    yes: bool = False
    reason: str = ""
    no_snapshot: bool = False
    force: bool = False
    prompt_dir: str = ""
    record_root: str = ""

    def to_env(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__})


def options(params: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ChangeOptions:
    """The run's options (headless) merged with the notebook's parameters (JupyterLab)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if env.get(OPTIONS_ENV):
        try:
            raw = dict(json.loads(env[OPTIONS_ENV]))
        except (ValueError, TypeError):
            raw = {}
    reason = str(raw.get("reason") or params.get("reason") or "").strip()
    return ChangeOptions(
        headless=bool(raw.get("headless")),
        yes=bool(raw.get("yes")),
        reason=reason,
        no_snapshot=bool(raw.get("no_snapshot") or params.get("no_snapshot")),
        force=bool(raw.get("force") or params.get("force")),
        prompt_dir=str(raw.get("prompt_dir") or ""),
        record_root=str(raw.get("record_root") or ""),
    )


def accepted(answer: str, step: str, incident_id: str) -> bool:
    answer = answer.strip()
    return bool(answer) and answer in (step, incident_id)


def ask_runner(
    prompt_dir: str, step: str, incident_id: str, plan: str, wait_s: float = CONFIRM_WAIT_S
) -> str | None:
    """Kernel side: hand the plan to the runner's terminal and wait for the typed answer (None: no answer)."""
    d = Path(prompt_dir)
    reply = d / f"reply-{step}"
    reply.unlink(missing_ok=True)
    tmp = d / f".request-{step}.tmp"
    tmp.write_text(json.dumps({"step": step, "incident": incident_id, "plan": plan}), encoding="utf-8")
    os.replace(tmp, d / f"request-{step}.json")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if reply.exists():
            return reply.read_text(encoding="utf-8")
        time.sleep(0.1)
    return None


@contextmanager
def terminal_prompts(
    prompt_dir: str | None, tty_in: TextIO | None = None, tty_out: TextIO | None = None
) -> Iterator[None]:
    """Runner side: while the notebook runs, show each plan the kernel hands over and read the answer."""
    if not prompt_dir:
        yield
        return
    d = Path(prompt_dir)
    d.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    tin = tty_in or sys.stdin
    tout = tty_out or sys.stderr

    def serve() -> None:
        while not stop.is_set():
            for req in sorted(d.glob("request-*.json")):
                try:
                    data = json.loads(req.read_text(encoding="utf-8"))
                    req.unlink()
                except (OSError, ValueError):
                    continue
                step, incident = str(data.get("step")), str(data.get("incident"))
                tout.write(
                    f"\n{data.get('plan', '')}\n\nThis target is NOT the sandbox. Type the step name "
                    f"({step}) or the incident id ({incident}) to apply it, anything else to refuse: "
                )
                tout.flush()
                answer = tin.readline()
                tmp = d / f".reply-{step}.tmp"
                tmp.write_text(answer.strip(), encoding="utf-8")
                os.replace(tmp, d / f"reply-{step}")
            stop.wait(0.1)

    worker = threading.Thread(target=serve, name="propflow-confirm", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
