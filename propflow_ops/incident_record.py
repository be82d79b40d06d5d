"""The incident record: one append-only log of events per incident, beside its runs (CONTRACT.md section 4).

``<output-dir>/<incident-id>/incident.jsonl``, one JSON object per line, never rewritten. Every event has
``event`` (its kind), ``at`` (when it happened, ISO 8601 UTC), ``recorded_at`` (when it was written) and
``by`` (the operator: AWS caller ARN, local user, host; see :mod:`propflow_ops.operator`). Kinds:

- ``opened``: ``severity``, ``started_at``, ``via`` (``run api-down``, ``incident open``), ``title``;
- ``override``: a later run or command gave ``field`` (``severity`` / ``started_at``) another ``value``
  than the record's ``previous``; from then on the record uses the new value;
- ``run``: ``runbook``, ``run`` (folder name), ``status``, ``mode`` (headless, fleet, interactive);
- ``ack``, ``resolve``, ``note`` (``text``);
- ``escalation``: ``step`` (key), ``action``, ``channel``, ``status`` (sent / failed), ``error``, ``due_at``;
- ``notify``: a PagerDuty ``action`` (``acknowledge`` / ``resolve``) sent to a ``channel``, ``status``, ``error``;
- ``operator``: the full identity (with the STS ARN) of a run whose earlier events were written before STS
  answered (``aws_arn: "pending"``); it completes them;
- any other kind (the change-control issue's ``action`` events) is kept and shown as it is.

Concurrent writers on one machine: every change happens under an exclusive ``flock`` on the file, and each
event is one ``os.write`` of one line to a file opened ``O_APPEND`` (then fsynced), so two runs that start
an incident at the same moment agree on one ``opened`` event and no line is torn. Readers skip a torn last
line (a writer killed mid-write) and say so.

The storage is behind :class:`IncidentStore` (``events`` and an exclusive ``session``); :func:`store_for`
picks the local folder or, for ``s3://bucket/prefix``, :class:`S3Store`: one object per event under
``<prefix>/<incident>/events/<recorded-at>-<uuid>.json`` (an append never touches another writer's object;
reading lists them in key order, which is time order), and the exclusive session is a lock object created
with a conditional put (``If-None-Match: *``) instead of the file lock, so two workers on two machines agree
on one ``opened`` event and send an escalation step once. A lock older than :data:`LOCK_STALE_S` belongs to
a holder that died and is taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from propflow_ops.findings import iso, utcnow
from propflow_ops.incident import SEVERITIES, BadInput, recorded_time
from propflow_ops.operator import label

RECORD = "incident.jsonl"
SCHEMA = "propflow-ops.incident/1"


class Session(Protocol):
    """An exclusive hold on one incident's record: the events so far, and a way to add one."""

    events: list[dict[str, Any]]

    def append(self, event: dict[str, Any]) -> dict[str, Any]: ...


class IncidentStore(Protocol):
    def events(self, incident_id: str) -> list[dict[str, Any]]: ...

    def session(self, incident_id: str) -> contextlib.AbstractContextManager[Session]: ...

    def where(self, incident_id: str) -> str: ...


@dataclass
class _LocalSession:
    fd: int
    events: list[dict[str, Any]]

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode("utf-8")
        written = os.write(self.fd, line)  # O_APPEND: one write, at the end, whoever else writes
        if written != len(line):
            raise OSError(f"short write to the incident record ({written} of {len(line)} bytes)")
        os.fsync(self.fd)
        self.events.append(event)
        return event


class LocalStore:
    """The record in ``<root>/<incident-id>/incident.jsonl``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, incident_id: str) -> Path:
        return self.root / incident_id / RECORD

    def where(self, incident_id: str) -> str:
        return str(self.path(incident_id))

    def events(self, incident_id: str) -> list[dict[str, Any]]:
        try:
            return parse_lines(self.path(incident_id).read_bytes())
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def session(self, incident_id: str) -> Iterator[_LocalSession]:
        path = self.path(incident_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BadInput(f"cannot open the incident record {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(path, "rb") as fh:
                events = parse_lines(fh.read())
            yield _LocalSession(fd, events)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def parse_lines(raw: bytes) -> list[dict[str, Any]]:
    """Every complete JSON line; a torn or foreign line is skipped (kept as a ``corrupt`` marker)."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            out.append({"event": "corrupt", "line": n})
            continue
        if isinstance(event, dict) and "event" in event:
            out.append(event)
        else:
            out.append({"event": "corrupt", "line": n})
    return out


LOCK = "events.lock"
LOCK_STALE_S = 60.0
LOCK_WAIT_S = 30.0


@dataclass
class _S3Session:
    store: S3Store
    incident_id: str
    events: list[dict[str, Any]]

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        self.store.put_event(self.incident_id, event)
        self.events.append(event)
        return event


class S3Store:
    """The record as one object per event under ``<prefix>/<incident>/events/`` (see the module text)."""

    def __init__(self, url: Any, client: Any = None) -> None:
        from propflow_ops.store import S3Url, parse_s3

        self.url: S3Url = url if isinstance(url, S3Url) else parse_s3(str(url))
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from propflow_ops.store import s3_client

            self._client = s3_client()
        return self._client

    def prefix(self, incident_id: str) -> str:
        return self.url.key(incident_id, "events") + "/"

    def where(self, incident_id: str) -> str:
        return f"s3://{self.url.bucket}/{self.prefix(incident_id)}"

    def events(self, incident_id: str) -> list[dict[str, Any]]:
        from propflow_ops.store import get_bytes, list_keys

        out: list[dict[str, Any]] = []
        with _as_oserror(self.where(incident_id)):
            for obj in list_keys(self.client, self.url.bucket, self.prefix(incident_id)):
                if not obj["Key"].endswith(".json"):
                    continue
                out += parse_lines(get_bytes(self.client, self.url.bucket, obj["Key"]))
        return out

    def put_event(self, incident_id: str, event: dict[str, Any]) -> None:
        from propflow_ops.store import put_new

        stamp = utcnow().strftime("%Y%m%dT%H%M%S.%fZ")
        key = f"{self.prefix(incident_id)}{stamp}-{uuid.uuid4().hex}.json"
        with _as_oserror(self.where(incident_id)):
            put_new(
                self.client,
                self.url.bucket,
                key,
                json.dumps(event, sort_keys=True, default=str).encode(),
                content_type="application/json",
            )

    @contextlib.contextmanager
    def session(self, incident_id: str) -> Iterator[_S3Session]:
        from propflow_ops.store import Exists, put_new

        lock = self.url.key(incident_id, LOCK)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.05
        while True:
            try:
                with _as_oserror(self.where(incident_id)):
                    etag = put_new(
                        self.client, self.url.bucket, lock, token.encode(), content_type="text/plain"
                    )
                break
            except Exists:
                self._break_stale(lock)
                if time.monotonic() > deadline:
                    raise OSError(
                        f"the incident record {self.where(incident_id)} stayed locked for {LOCK_WAIT_S:g} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield _S3Session(self, incident_id, self.events(incident_id))
        finally:
            # Only our own lock: a session that outlived LOCK_STALE_S may have been taken over, and the lock
            # now there is another writer's (a conditional delete, If-Match our ETag, leaves it alone).
            with contextlib.suppress(Exception):
                self._delete_if(lock, etag)

    def _delete_if(self, key: str, etag: str) -> None:
        """Delete ``key`` if it is still the object with ``etag``."""
        from propflow_ops.store import error_code

        bucket = self.url.bucket
        try:
            self.client.delete_object(Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))
        except Exception as exc:
            if not etag or error_code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
            # a store without conditional deletes (NotImplemented): look, then delete (a narrow window)
            if self.client.head_object(Bucket=bucket, Key=key).get("ETag") == etag:
                self.client.delete_object(Bucket=bucket, Key=key)

    def _break_stale(self, lock: str) -> None:
        """Delete the lock if it is stale, and only the stale one seen: two writers that both find it stale
        must not delete the lock the first of them then took (If-Match the stale object's ETag)."""
        try:
            head = self.client.head_object(Bucket=self.url.bucket, Key=lock)
        except Exception:  # noqa: BLE001 - gone meanwhile: the next put takes it
            return
        age = (utcnow() - head["LastModified"]).total_seconds()
        if age > LOCK_STALE_S:
            with contextlib.suppress(Exception):
                self._delete_if(lock, str(head.get("ETag") or ""))


@contextlib.contextmanager
def _as_oserror(where: str) -> Iterator[None]:
    """A store that does not answer (or refuses) is an OSError, as a local disk's failure is."""
    from propflow_ops.store import Exists, _one_line

    try:
        yield
    except (Exists, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - botocore's errors: one line
        raise OSError(f"the incident record {where}: {_one_line(exc)}") from None


def store_for(output_dir: str | os.PathLike[str] | None) -> IncidentStore:
    """The store under an output directory (``--output-dir``, ``$PROPFLOW_OUTPUT_DIR``, ``./outputs``)."""
    from propflow_ops.store import S3Url, location

    root = location(output_dir)
    if isinstance(root, S3Url):
        return S3Store(root)
    return LocalStore(root)


def runs_folder(store: IncidentStore, incident_id: str) -> tuple[Path, str]:
    """(a local folder holding the incident's runs, where the evidence is for people): the incident folder
    itself, or for the S3 store a private copy of its complete runs."""
    if isinstance(store, S3Store):
        from propflow_ops.run.temporaries import private_workdir
        from propflow_ops.store import mirror

        dest = private_workdir()
        mirror(store.url, incident_id, dest, store.client)
        return dest / incident_id, str(store.url / incident_id)
    folder = Path(store.where(incident_id)).parent
    return folder, str(folder)


# ---------------------------------------------------------------- the state the events add up to


@dataclass
class IncidentState:
    id: str
    exists: bool = False
    severity: str = ""
    started_at: datetime | None = None
    title: str = ""
    opened_at: datetime | None = None
    opened_by: dict[str, Any] = field(default_factory=dict)
    opened_via: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: dict[str, Any] = field(default_factory=dict)
    resolved_at: datetime | None = None
    resolved_by: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    corrupt_lines: int = 0

    def sent(self, step_key: str, channel: str) -> bool:
        return any(
            e.get("step") == step_key and e.get("channel") == channel and e.get("status") == "sent"
            for e in self.escalations
        )

    def notified(self, kind: str, channel: str) -> bool:
        return any(
            e.get("action") == kind and e.get("channel") == channel and e.get("status") == "sent"
            for e in self.notifications
        )

    def operators(self) -> list[str]:
        """Everyone who acted, in order of first action (labels)."""
        seen: dict[str, None] = {}
        for e in self.events:
            if e.get("by"):
                seen.setdefault(label(e["by"]), None)
        return list(seen)

    def summary(self) -> dict[str, Any]:
        """The record as evidence.json's ``incident.record`` (and ``incident show --json``)."""
        return {
            "opened_at": iso(self.opened_at),
            "opened_by": label(self.opened_by) if self.opened_by else None,
            "opened_via": self.opened_via,
            "title": self.title or None,
            "severity": self.severity,
            "started_at": iso(self.started_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_by": label(self.acknowledged_by) if self.acknowledged_at else None,
            "resolved_at": iso(self.resolved_at),
            "resolved_by": label(self.resolved_by) if self.resolved_at else None,
            "escalations_sent": [
                {"step": e.get("action"), "channel": e.get("channel"), "at": e.get("at")}
                for e in self.escalations
                if e.get("status") == "sent"
            ],
            "escalations_failed": [
                {
                    "step": e.get("action"),
                    "channel": e.get("channel"),
                    "at": e.get("at"),
                    "error": e.get("error"),
                }
                for e in self.escalations
                if e.get("status") == "failed"
            ],
            "overrides": [
                {
                    "field": o.get("field"),
                    "value": o.get("value"),
                    "previous": o.get("previous"),
                    "by": label(o.get("by")),
                    "at": o.get("at"),
                    "via": o.get("via"),
                }
                for o in self.overrides
            ],
            "notes": len(self.notes),
            "operators": self.operators(),
        }


PENDING = "pending"


def _resolve_pending(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run opens an incident before its STS answer is in (``aws_arn: pending``, so the kernel need not wait);
    its later ``operator`` event carries the full identity, which replaces the pending one of the same user and
    host in the events before it."""
    out = [dict(e) for e in events]
    for i, e in enumerate(out):
        if e.get("event") != "operator" or not isinstance(e.get("by"), dict):
            continue
        who = e["by"]
        for earlier in out[:i]:
            by = earlier.get("by")
            if (
                isinstance(by, dict)
                and by.get("aws_arn") == PENDING
                and by.get("user") == who.get("user")
                and by.get("host") == who.get("host")
            ):
                earlier["by"] = dict(who)
    return out


def fold(incident_id: str, events: list[dict[str, Any]]) -> IncidentState:
    """The incident's state from its events, in the order they were written."""
    events = _resolve_pending(events)
    st = IncidentState(id=incident_id, events=[e for e in events if e.get("event") != "operator"])
    for e in events:
        kind = e.get("event")
        if kind == "opened" and not st.exists:
            st.exists = True
            st.severity = str(e.get("severity") or "")
            st.started_at = recorded_time(e.get("started_at"))
            st.title = str(e.get("title") or "")
            st.opened_at = recorded_time(e.get("at"))
            st.opened_by = dict(e.get("by") or {})
            st.opened_via = str(e.get("via") or "")
        elif kind == "override":
            st.overrides.append(e)
            if e.get("field") == "severity" and e.get("value") in SEVERITIES:
                st.severity = str(e["value"])
            elif e.get("field") == "started_at" and recorded_time(e.get("value")):
                st.started_at = recorded_time(e.get("value"))
        elif kind == "ack" and st.acknowledged_at is None:
            st.acknowledged_at, st.acknowledged_by = recorded_time(e.get("at")), dict(e.get("by") or {})
        elif kind == "resolve" and st.resolved_at is None:
            st.resolved_at, st.resolved_by = recorded_time(e.get("at")), dict(e.get("by") or {})
        elif kind == "note":
            st.notes.append(e)
        elif kind == "run":
            st.runs.append(e)
        elif kind == "escalation":
            st.escalations.append(e)
        elif kind == "notify":
            st.notifications.append(e)
        elif kind == "corrupt":
            st.corrupt_lines += 1
    return st


def load(store: IncidentStore, incident_id: str) -> IncidentState:
    return fold(incident_id, store.events(incident_id))


def event(kind: str, by: Mapping[str, Any], at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "schema": SCHEMA,
        "event": kind,
        "at": iso(at or now),
        "recorded_at": iso(now),
        "by": dict(by),
        **fields,
    }


# ---------------------------------------------------------------- what people do


def open_or_join(
    store: IncidentStore,
    incident_id: str,
    *,
    severity: str,
    started_at: datetime,
    severity_given: bool,
    started_given: bool,
    by: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    via: str,
    title: str = "",
) -> tuple[IncidentState, list[dict[str, Any]]]:
    """Open the incident with these values, or join it: the record's values win unless given explicitly,
    in which case the difference is recorded as an ``override``. Returns the state and the events written.

    ``by`` may be a callable: it is called only when an event is written (a run that joins an open incident
    does not wait for the STS answer)."""

    def by_value() -> dict[str, Any]:
        return dict(by() if callable(by) else by)

    with store.session(incident_id) as s:
        st = fold(incident_id, s.events)
        written: list[dict[str, Any]] = []
        if not st.exists:
            written.append(
                s.append(
                    event(
                        "opened",
                        by_value(),
                        severity=severity,
                        started_at=iso(started_at),
                        via=via,
                        title=title,
                    )
                )
            )
        else:
            if severity_given and severity != st.severity:
                written.append(
                    s.append(
                        event(
                            "override",
                            by_value(),
                            field="severity",
                            value=severity,
                            previous=st.severity,
                            via=via,
                        )
                    )
                )
            if started_given and st.started_at is not None and started_at != st.started_at:
                written.append(
                    s.append(
                        event(
                            "override",
                            by_value(),
                            field="started_at",
                            value=iso(started_at),
                            previous=iso(st.started_at),
                            via=via,
                        )
                    )
                )
        return fold(incident_id, s.events), written


def require(store: IncidentStore, incident_id: str) -> IncidentState:
    st = load(store, incident_id)
    if not st.exists:
        raise BadInput(
            f"incident {incident_id} has no record at {store.where(incident_id)}: open it with "
            f"`propflow-ops incident open {incident_id}` or run a runbook with --incident {incident_id}"
        )
    return st


def record(
    store: IncidentStore,
    incident_id: str,
    kind: str,
    by: Mapping[str, Any],
    at: datetime | None = None,
    **fields: Any,
) -> tuple[IncidentState, dict[str, Any] | None, str]:
    """ack / resolve / note on an open incident. Returns (state after, event written or None, message)."""
    with store.session(incident_id) as s:
        st = fold(incident_id, s.events)
        if not st.exists:
            raise BadInput(
                f"incident {incident_id} has no record at {store.where(incident_id)}: open it first "
                f"(`propflow-ops incident open {incident_id}`, or a run with --incident {incident_id})"
            )
        when = at or utcnow()
        if st.started_at and when < st.started_at and kind in ("ack", "resolve"):
            raise BadInput(f"--at {iso(when)} is before the incident started ({iso(st.started_at)})")
        if kind == "ack" and st.acknowledged_at is not None:
            return (
                st,
                None,
                (f"already acknowledged by {label(st.acknowledged_by)} at {iso(st.acknowledged_at)}"),
            )
        if kind == "resolve" and st.resolved_at is not None:
            return st, None, f"already resolved by {label(st.resolved_by)} at {iso(st.resolved_at)}"
        if kind == "ack" and st.resolved_at is not None:
            return st, None, f"already resolved at {iso(st.resolved_at)}; nothing to acknowledge"
        written = s.append(event(kind, by, when, **fields))
        return fold(incident_id, s.events), written, f"{kind} recorded at {written['at']} by {label(by)}"
