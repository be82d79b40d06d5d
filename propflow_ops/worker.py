"""``propflow-ops worker --queue URL``: one member of the fleet that turns alarms and run requests into evidence.

The worker long-polls an SQS queue (subscribed to the SNS topic CloudWatch alarms notify; ``submit`` puts run
requests on it too) and handles up to ``--concurrency`` messages at once, each runbook in a warm kernel of a
:class:`~propflow_ops.kernels.KernelPool`. Any number of workers on any number of machines share the queue:

- a message is *hidden* while it is handled: its visibility timeout is extended every third of it while a
  runbook runs, and the message is deleted only once its evidence is published (and people are told);
- a worker killed mid-run never deletes its message: it reappears after the visibility timeout and another
  worker finishes it (the run claims, below, say it belongs to that message, so it is run, not skipped);
- a message that is not an alarm or a run request, or whose handling keeps failing, is never deleted: the
  queue's redrive policy moves it to the dead-letter queue after ``maxReceiveCount`` receives;
- SIGTERM (ECS stopping the task) or Ctrl-C: no new message is taken, the runbooks in hand finish and are
  published, then the worker exits 0. A second signal kills the kernels and exits at once (the messages in
  hand reappear for another worker).

On an ``ALARM`` the worker opens the incident or joins the open one for that alarm (``_alarms/<key>/<n>.json``
in the store: created with a conditional put, a new generation once the incident is resolved), writes the
alarm on the timeline, runs triage and the runbooks the rule names and triage recommends, with the alarm's
``StateChangeTime`` as the incident start, publishes the evidence to the store and notifies the incident's
channels with the summary and where the evidence is. A runbook runs once per incident: ``_claims/<incident>/
<slug>.json`` names the message that owns it, ``<slug>.done.json`` where its evidence is. ``OK`` (and
``INSUFFICIENT_DATA``) is noted on the open incident's timeline. Every ``--escalate-every`` seconds the worker
runs the escalation timer (:func:`propflow_ops.notify.escalate`) for the open alarm incidents.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propflow_ops import alarms as alarms_mod
from propflow_ops import config as config_mod
from propflow_ops import incident_record as ir
from propflow_ops import store as store_mod
from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import BadInput
from propflow_ops.redact import redact_text

log = logging.getLogger("propflow_ops.worker")
MODE = "fleet"
MAX_WAIT_S = store_mod.LONGEST_POLL_S  # SQS's longest long poll (the queue client outlasts it)
NOT_RUN = ("post-incident",)  # a review is asked for explicitly, never by an alarm


@dataclass
class Options:
    queue_url: str
    output_dir: str
    concurrency: int = 1
    wait_s: int = MAX_WAIT_S
    escalate_every_s: float = 30.0
    max_messages: int = 0  # stop after handling this many (0: run until told to stop)
    env: dict[str, str] = field(default_factory=dict)  # --config / --env


@dataclass
class Outcome:
    slug: str
    folder: str
    status: str
    exit_code: int
    recommended: list[str]
    findings: list[dict[str, Any]]
    error: str | None = None
    ran_here: bool = True


def say(text: str) -> None:
    print(f"propflow-ops worker: {redact_text(text)}", file=sys.stderr, flush=True)


def say_in_handler(text: str) -> None:
    """``say`` from a signal handler: one unbuffered write. A handler runs in the main thread between two of
    its steps, possibly while that thread is inside a buffered write to stderr; ``print`` there raises
    "reentrant call" (a traceback and exit 1 instead of a clean stop)."""
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), f"propflow-ops worker: {redact_text(text)}\n".encode())


def _one_line(exc: BaseException) -> str:
    return " ".join(redact_text(str(exc) or type(exc).__name__).split())[:300]


class _Heartbeat:
    """Keeps one message hidden while it is handled: extends its visibility every third of the timeout."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str, visibility_s: int) -> None:
        self.sqs, self.queue_url, self.receipt = sqs, queue_url, receipt
        self.visibility_s = max(2, int(visibility_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="propflow-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.visibility_s / 3):
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=self.receipt, VisibilityTimeout=self.visibility_s
                )
            except Exception as exc:  # noqa: BLE001 - said; the next beat tries again
                say(f"could not extend a message's visibility: {_one_line(exc)}")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


class Worker:
    def __init__(self, opts: Options) -> None:
        from propflow_ops import operator as operator_mod
        from propflow_ops.kernels import KernelPool

        self.opts = opts
        self.env = {**os.environ, **opts.env}
        self.cfg = config_mod.load(None, None, self.env)
        self.loc = store_mod.location(opts.output_dir)
        self.blobs = store_mod.Blobs(self.loc)
        self.records: ir.IncidentStore = ir.store_for(str(self.loc))
        self.sqs = store_mod.plumbing_client("sqs")
        attrs = self.sqs.get_queue_attributes(QueueUrl=opts.queue_url, AttributeNames=["VisibilityTimeout"])
        self.visibility_s = int(attrs["Attributes"].get("VisibilityTimeout", "30"))
        self.by = operator_mod.current(self.env)
        self.by["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        self.pool = KernelPool(max(1, opts.concurrency))
        self.handlers = ThreadPoolExecutor(max(1, opts.concurrency), thread_name_prefix="propflow-message")
        # threads that wait on the kernel pool for one message's runbooks (the pool bounds the concurrency)
        self.run_threads = ThreadPoolExecutor(
            2 * max(1, opts.concurrency), thread_name_prefix="propflow-runbook"
        )
        self.stopping = threading.Event()
        self.handled = 0
        self._last_escalation = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the loop

    def serve(self) -> int:
        inflight: set[Future[None]] = set()
        say(f"polling {self.opts.queue_url} ({self.opts.concurrency} at once; evidence to {self.loc})")
        try:
            while not self.stopping.is_set():
                inflight = {f for f in inflight if not f.done()}
                if self.opts.max_messages and self.handled + len(inflight) >= self.opts.max_messages:
                    if not inflight:
                        break
                    wait_futures(inflight, timeout=0.5, return_when="FIRST_COMPLETED")
                    continue
                free = self.opts.concurrency - len(inflight)
                if free <= 0:
                    wait_futures(inflight, timeout=0.5, return_when="FIRST_COMPLETED")
                    continue
                try:
                    got = self.sqs.receive_message(
                        QueueUrl=self.opts.queue_url,
                        MaxNumberOfMessages=min(10, free),
                        WaitTimeSeconds=max(0, min(MAX_WAIT_S, self.opts.wait_s)),
                        AttributeNames=["ApproximateReceiveCount"],
                    )
                except Exception as exc:  # noqa: BLE001 - the queue did not answer: say so, try again
                    say(f"receiving from the queue failed: {_one_line(exc)}")
                    self.stopping.wait(2)
                    continue
                for m in got.get("Messages", []):
                    inflight.add(self.handlers.submit(self.handle, m))
                self.escalation_tick()
        finally:
            if inflight:
                say(f"stopping: finishing the {len(inflight)} message(s) in hand")
            wait_futures(inflight)
            self.handlers.shutdown(wait=True)
            self.run_threads.shutdown(wait=True)
            self.pool.close()
        say(f"stopped after {self.handled} message(s)")
        return 0

    def stop(self) -> None:
        self.stopping.set()

    def kill(self) -> None:
        """Kill the kernels and leave at once: nothing in hand is published or deleted, so every message in
        hand reappears for another worker after its visibility timeout (its claims name the message)."""
        self.stopping.set()
        self.pool.close(timeout_s=2, kill=True)
        os._exit(128 + signal.SIGTERM)

    # ------------------------------------------------------------ one message

    def handle(self, m: Mapping[str, Any]) -> None:
        receipt, message_id = m["ReceiptHandle"], m["MessageId"]
        try:
            msg = alarms_mod.parse(m.get("Body", ""))
        except alarms_mod.BadMessage as exc:
            count = (m.get("Attributes") or {}).get("ApproximateReceiveCount", "?")
            say(
                f"message {message_id} (receive {count}) is not for us: {exc}; left for the dead-letter queue"
            )
            with contextlib.suppress(
                Exception
            ):  # let it come back at once: the redrive policy counts receives
                self.sqs.change_message_visibility(
                    QueueUrl=self.opts.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
            return
        try:
            with _Heartbeat(self.sqs, self.opts.queue_url, receipt, self.visibility_s):
                if isinstance(msg, alarms_mod.Alarm):
                    self.on_alarm(msg, message_id)
                else:
                    self.on_request(msg)
            self.sqs.delete_message(QueueUrl=self.opts.queue_url, ReceiptHandle=receipt)
            with self._lock:
                self.handled += 1
        except Exception as exc:  # not deleted: it comes back, and after enough tries goes to the DLQ
            say(f"message {message_id} failed and stays on the queue: {_one_line(exc)}")
            log.debug("message %s failed", message_id, exc_info=True)

    # ------------------------------------------------------------ alarms

    def open_incident_for(self, alarm: alarms_mod.Alarm, create: bool = True) -> str | None:
        """The open incident of this alarm; with ``create``, a new one when there is none (or it is resolved)."""
        prefix = f"_alarms/{alarm.key()}/"
        for _ in range(5):
            keys = [k for k in self.blobs.keys(prefix) if k.endswith(".json")]
            generation = 1
            if keys:
                latest = self.blobs.get(keys[-1]) or {}
                incident = str(latest.get("incident") or "")
                if incident and ir.load(self.records, incident).resolved_at is None:
                    return incident
                generation = int(keys[-1].rsplit("/", 1)[-1].split(".")[0]) + 1
            if not create:
                return None
            candidate = alarms_mod.incident_id_for(alarm)
            if self.blobs.create(
                f"{prefix}{generation:06d}.json",
                {"incident": candidate, "alarm": alarm.name, "arn": alarm.arn, "at": iso(alarm.at)},
            ):
                return candidate
        raise RuntimeError(f"could not agree on an incident for alarm {alarm.name}")

    def on_alarm(self, alarm: alarms_mod.Alarm, message_id: str) -> None:
        if alarm.state != "ALARM":
            incident = self.open_incident_for(alarm, create=False)
            if incident is None:
                say(f"{alarms_mod.describe(alarm)}: no open incident; nothing to note")
                return
            self.note_alarm(incident, alarm, message_id, rule=None)
            say(f"{alarms_mod.describe(alarm)}: noted on {incident}")
            return
        rule = alarms_mod.match(self.cfg.alarms, alarm)
        runbooks = rule.runbooks if rule else alarms_mod.DEFAULT_RUNBOOKS
        severity = rule.severity if rule else alarms_mod.DEFAULT_SEVERITY
        incident = self.open_incident_for(alarm)
        assert incident is not None
        with self._record_errors(incident):
            ir.open_or_join(
                self.records,
                incident,
                severity=severity,
                started_at=alarm.at,
                severity_given=False,
                started_given=False,
                by=self.by,
                via=f"alarm {alarm.name}",
                title=f"CloudWatch alarm {alarm.name}",
            )
        self.note_alarm(incident, alarm, message_id, rule=rule)
        say(
            f"{alarms_mod.describe(alarm)}: incident {incident}"
            + (f" (rule {rule.key})" if rule else " (no [alarms] rule matched: triage)")
        )
        state = ir.load(self.records, incident)
        started = str(iso(state.started_at or alarm.at))
        triage = self.run_once(incident, "triage", started, message_id)
        outcomes = [triage] if triage else []
        if triage is not None:
            rest = [
                s
                for s in dict.fromkeys([*runbooks, *triage.recommended])
                if s != "triage" and s not in NOT_RUN
            ]
            futures = [self.run_threads.submit(self.run_once, incident, s, started, message_id) for s in rest]
            outcomes += [o for o in (f.result() for f in futures) if o is not None]
        if any(o.ran_here for o in outcomes):
            self.tell(incident, alarm, outcomes)

    def note_alarm(
        self, incident: str, alarm: alarms_mod.Alarm, message_id: str, rule: alarms_mod.Rule | None
    ) -> None:
        """The alarm on the incident's timeline, once per message (a redelivery does not repeat it)."""
        if not self.blobs.create(f"_claims/{incident}/alarm-{message_id}.json", {"at": iso(utcnow())}):
            return
        text = f"CloudWatch alarm {alarm.name} {alarm.state}" + (f": {alarm.reason}" if alarm.reason else "")
        with self._record_errors(incident), self.records.session(incident) as s:
            s.append(
                ir.event(
                    "note",
                    self.by,
                    alarm.at,
                    text=redact_text(text)[:500],
                    alarm=alarm.name,
                    state=alarm.state,
                    rule=rule.key if rule else None,
                    message=alarm.message_id or message_id,
                )
            )

    @contextlib.contextmanager
    def _record_errors(self, incident: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise RuntimeError(f"the incident record of {incident} could not be written: {exc}") from None

    def run_once(self, incident: str, slug: str, started_at: str, message_id: str) -> Outcome | None:
        """Run ``slug`` for the incident unless another message owns it; None when it does (or it is running)."""
        claim_key, done_key = f"_claims/{incident}/{slug}.json", f"_claims/{incident}/{slug}.done.json"
        done = self.blobs.get(done_key)
        if done is not None:
            return Outcome(
                slug,
                str(done.get("folder")),
                str(done.get("status")),
                int(done.get("exit_code", 3)),
                list(done.get("recommended") or []),
                list(done.get("findings") or []),
                ran_here=False,
            )
        if not self.blobs.create(
            claim_key, {"message": message_id, "worker": self.by["worker"], "at": iso(utcnow())}
        ):
            owner = (self.blobs.get(claim_key) or {}).get("message")
            if owner != message_id:
                return None  # another message runs it (a repeated or duplicated alarm)
            say(f"{slug} for {incident}: taking over the run of message {message_id} (its worker stopped)")
        from propflow_ops.run.request import RunRequest

        req = RunRequest(
            slug=slug,
            incident=incident,
            started_at=started_at,
            output_dir=str(self.loc),
            progress=False,
            env=dict(self.opts.env),
            mode=MODE,
        )
        out = self.execute(req)
        self.blobs.create(
            done_key,
            {
                "folder": out.folder,
                "status": out.status,
                "exit_code": out.exit_code,
                "recommended": out.recommended,
                "findings": out.findings,
                "message": message_id,
                "at": iso(utcnow()),
            },
        )
        say(f"{slug} for {incident}: {out.status} -> {out.folder}")
        return out

    def execute(self, req: Any) -> Outcome:
        """One run in a warm kernel; its evidence published to the store. Bad input is an outcome (exit 2)."""
        from propflow_ops.run.folder import PublishError
        from propflow_ops.runner import run

        def job(kernel: Any) -> Outcome:
            try:
                result = run(req, kernel=kernel)
            except BadInput as exc:
                return Outcome(req.slug, "", "bad-input", 2, [], [], error=_one_line(exc))
            ev = result.evidence
            findings = [
                {"code": f.get("code"), "status": f.get("status"), "title": f.get("title")}
                for f in ev.get("findings", [])
            ]
            return Outcome(
                req.slug,
                str(result.path),
                result.status,
                result.exit_code,
                [str(s) for s in ev.get("recommended_runbooks") or []],
                findings,
                result.error,
            )

        try:
            return self.pool.submit(job).result()
        except PublishError:
            raise  # the store did not take it: the message stays and is tried again

    # ------------------------------------------------------------ telling people

    def tell(self, incident: str, alarm: alarms_mod.Alarm, outcomes: list[Outcome]) -> None:
        from propflow_ops import notify

        configured = self.cfg.notify.configured()
        state = ir.load(self.records, incident)
        where = (
            str(self.loc / incident)
            if isinstance(self.loc, store_mod.S3Url)
            else str(Path(self.loc) / incident)
        )
        subject = f"[{state.severity}] {incident}: CloudWatch alarm {alarm.name}: evidence ready"
        lines = [subject, f"Alarm {alarms_mod.describe(alarm)}."]
        for o in outcomes:
            fails = [f for f in o.findings if f.get("status") == "fail"]
            lines.append(
                f"{o.slug}: {o.status}" + (f" ({len(fails)} fail)" if fails else "") + f": {o.folder}"
            )
            lines += [f"- {f.get('code')}: {f.get('title')}" for f in fails[: notify.MAX_FINDING_LINES]]
        lines.append(f"Evidence: {where}")
        text = redact_text("\n".join(lines))
        details = {
            "incident": incident,
            "alarm": alarm.name,
            "evidence": where,
            "runs": {o.slug: o.status for o in outcomes},
        }
        told = []
        if not configured:
            say(
                f"{incident}: no notification channel configured ([notify] in propflow-ops.toml); evidence at {where}"
            )
        for channel in configured:
            res = notify._send(channel, self.cfg, state, subject, text, details, self.env)
            if res.ok:
                told.append(channel)
            with contextlib.suppress(OSError), self.records.session(incident) as s:
                s.append(
                    ir.event(
                        "notify",
                        self.by,
                        action="evidence",
                        channel=channel,
                        status="sent" if res.ok else "failed",
                        error=None if res.ok else res.detail,
                        evidence=where,
                    )
                )
            if not res.ok:
                say(f"telling {channel} about {incident} failed: {res.detail}")
        if told:
            say(f"{incident}: told {', '.join(told)}: evidence at {where}")

    def escalation_tick(self, force: bool = False) -> None:
        """The escalation timer of every open alarm incident (each step once: the record's lock decides)."""
        from propflow_ops import notify

        now = time.monotonic()
        if not force and now - self._last_escalation < self.opts.escalate_every_s:
            return
        self._last_escalation = now
        try:
            latest: dict[str, str] = {}
            for key in self.blobs.keys("_alarms/"):
                latest[key.rsplit("/", 1)[0]] = key
            for key in latest.values():
                incident = str((self.blobs.get(key) or {}).get("incident") or "")
                if not incident:
                    continue
                for o in notify.escalate(self.records, incident, self.cfg, self.by, env=self.env):
                    if o.status != "skipped":
                        say(f"escalation of {incident}: {o.step} via {o.channel}: {o.status} ({o.detail})")
        except Exception as exc:  # noqa: BLE001 - the timer must not stop the worker; said, tried next tick
            say(f"the escalation timer failed: {_one_line(exc)}")

    # ------------------------------------------------------------ run requests (submit)

    def on_request(self, msg: alarms_mod.RunRequestMessage) -> None:
        from propflow_ops.run.request import DEFAULT_BUDGET_S, RunRequest

        reply_key = f"_requests/{msg.request_id}.json"
        if self.blobs.get(reply_key) is not None:
            return  # answered already (the worker that answered died before deleting the message)
        o = msg.options
        try:
            req = RunRequest(
                slug=msg.slug,
                incident=_opt_str(o, "incident"),
                severity=_opt_str(o, "severity"),
                started_at=_opt_str(o, "started_at"),
                window=_opt_int(o, "window"),
                apply=[str(a) for a in o.get("apply") or []],
                params=[(str(n), str(v)) for n, v in o.get("params") or []],
                output_dir=str(self.loc),
                html=bool(o.get("html", True)),
                budget_s=float(o.get("budget") or DEFAULT_BUDGET_S),
                progress=False,
                env=dict(self.opts.env),
                mode=MODE,
                reason=_opt_str(o, "reason"),
                yes=bool(o.get("yes")),
                no_snapshot=bool(o.get("no_snapshot")),
                force=bool(o.get("force")),
            )
        except (TypeError, ValueError) as exc:
            out = Outcome(msg.slug, "", "bad-input", 2, [], [], error=f"bad run request: {_one_line(exc)}")
        else:
            out = self.execute(req)
        reply = {
            "schema": alarms_mod.REPLY_SCHEMA,
            "request_id": msg.request_id,
            "slug": msg.slug,
            "status": out.status,
            "exit_code": out.exit_code,
            "folder": out.folder,
            "error": out.error,
            "findings": out.findings,
            "worker": self.by["worker"],
            "at": iso(utcnow()),
        }
        if out.folder:
            reply["evidence"] = self._evidence_summary(out.folder)
        self.blobs.create(reply_key, reply)
        say(f"request {msg.request_id} ({msg.slug}): {out.status} -> {out.folder or out.error}")

    def _evidence_summary(self, folder: str) -> dict[str, Any]:
        """What ``submit`` prints besides the findings: the incident's id and the escalation steps due."""
        import json

        try:
            if store_mod.is_s3(folder):
                url = store_mod.parse_s3(folder)
                ev = json.loads(store_mod.get_bytes(self.blobs.client, url.bucket, url.key("evidence.json")))
            else:
                ev = json.loads((Path(folder) / "evidence.json").read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - the summary is a convenience
            return {}
        inc = ev.get("incident") or {}
        return {"incident": {"id": inc.get("id"), "escalation_pending": inc.get("escalation_pending") or []}}


def _opt_str(o: Mapping[str, Any], key: str) -> str | None:
    v = o.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"{key} must be text")
    return v


def _opt_int(o: Mapping[str, Any], key: str) -> int | None:
    v = o.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{key} must be a whole number")
    return v


def worker_main(
    queue_url: str | None,
    output_dir: str | None,
    concurrency: int,
    wait_s: int,
    escalate_every_s: float,
    max_messages: int,
    env: Mapping[str, str],
) -> int:
    """``propflow-ops worker``: serve until SIGTERM / Ctrl-C (or ``--max-messages``)."""
    queue_url = queue_url or os.environ.get("PROPFLOW_FLEET_QUEUE_URL") or ""
    if not queue_url:
        raise BadInput("name the queue: --queue URL (or PROPFLOW_FLEET_QUEUE_URL)")
    if not queue_url.startswith(("https://", "http://")):
        raise BadInput(f"--queue must be an SQS queue URL, not {queue_url!r}")
    if concurrency < 1 or concurrency > 32:
        raise BadInput("--concurrency must be between 1 and 32")
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise BadInput(f"--wait must be between 0 and {MAX_WAIT_S} seconds")
    out = store_mod.fleet_output(output_dir)
    if not store_mod.is_s3(out):
        say("warning: the evidence goes to a local folder; a fleet shares an s3:// store (--output-dir)")
    try:
        worker = Worker(
            Options(queue_url, out, concurrency, wait_s, escalate_every_s, max_messages, dict(env))
        )
    except config_mod.ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the queue or the store does not answer: one line, exit 3
        print(f"propflow-ops: error: cannot start the worker: {_one_line(exc)}", file=sys.stderr)
        return 3
    signals = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            say_in_handler(f"{signal.Signals(signum).name}: stopping after the runbooks in hand")
            worker.stop()
        else:
            say_in_handler("second signal: killing the runbooks in hand (their messages return to the queue)")
            worker.kill()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return worker.serve()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
