"""Where run folders are published and read back, chosen by the output directory's scheme.

As papermill picks an I/O handler by scheme, ``--output-dir`` / ``$PROPFLOW_OUTPUT_DIR`` picks a *target*:
a local folder (:class:`LocalTarget`: the hidden ``.tmp-`` staging folder renamed into place) or
``s3://bucket/prefix`` (:class:`S3Target`). Everything above them (the runner, the incident record, the review,
the worker) is the same code for both.

The S3 layout is the local one: ``<prefix>/<incident>/<stamp>-<slug>/report.ipynb|report.html|evidence.json|
SHA256SUMS`` and the incident record's events under ``<prefix>/<incident>/events/`` (see
:class:`propflow_ops.incident_record.S3Store`). A run is uploaded under its final keys with ``SHA256SUMS``
written last: a reader treats a folder without it as incomplete (a writer died mid-upload) and skips it.
Nothing is ever overwritten: every object is put with ``If-None-Match: *`` (S3 conditional writes), and the
first put claims the folder name; a clash takes the next suffix (``-2``, ``-3``), as the local rename does.
Every object is server-side encrypted: SSE-KMS with ``$PROPFLOW_S3_KMS_KEY_ID`` when set, else SSE-S3 (AES256).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from propflow_ops.incident import BadInput

if TYPE_CHECKING:
    from propflow_ops import incident_record as ir

SCHEME = "s3://"
KMS_ENV = "PROPFLOW_S3_KMS_KEY_ID"
SUMS = "SHA256SUMS"
EVENTS = "events"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._=+-]+$")


def is_s3(value: object) -> bool:
    return isinstance(value, (str, S3Url)) and str(value).startswith(SCHEME)


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/prefix``: a folder in a bucket. ``url / "name"`` is the folder below it."""

    bucket: str
    prefix: str = ""

    def __truediv__(self, part: str) -> S3Url:
        return S3Url(self.bucket, f"{self.prefix}/{part}" if self.prefix else part)

    @property
    def name(self) -> str:
        return self.prefix.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Url:
        return S3Url(self.bucket, self.prefix.rsplit("/", 1)[0] if "/" in self.prefix else "")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"


def parse_s3(url: str) -> S3Url:
    """``s3://bucket[/prefix]`` or BadInput (one line)."""
    rest = url[len(SCHEME) :] if url.startswith(SCHEME) else ""
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise BadInput(f"not an S3 bucket name in the output directory {url!r}")
    parts = [p for p in prefix.split("/") if p]
    for p in parts:
        if not _PREFIX_PART.match(p) or p in (".", ".."):
            raise BadInput(
                f"the S3 prefix of the output directory {url!r} may hold letters, digits and . _ = + - "
                "between slashes only"
            )
    return S3Url(bucket, "/".join(parts))


#: SQS's longest long poll (``WaitTimeSeconds``), which the worker's receive uses by default.
LONGEST_POLL_S = 20
_plumbing: dict[tuple[str, str | None, str | None], Any] = {}
_plumbing_lock = threading.Lock()


def plumbing_client(service: str) -> Any:
    """A boto3 client for the fleet's own plumbing (the store, the queue): the runbooks' timeouts and bounded
    attempts (:mod:`propflow_ops.sources.aws`), but not watched by :mod:`propflow_ops.reach`, whose breaker
    is per run: in a long-lived worker one timed-out call would otherwise fail every later one."""
    import boto3
    from botocore.config import Config

    from propflow_ops.sources import aws

    key = (service, aws.region_name(), aws.endpoint())
    with _plumbing_lock:
        found = _plumbing.get(key)
        if found is None:
            # SQS long polls (the worker's receive waits up to 20 s): the read timeout and deadline outlast them
            config = aws._CONFIG.merge(Config(read_timeout=aws.READ_TIMEOUT_S + LONGEST_POLL_S))
            made = boto3.session.Session().client(service, region_name=key[1], config=config)  # type: ignore[call-overload]
            found = aws.bound_attempts(made, aws.ATTEMPT_DEADLINE_S + LONGEST_POLL_S)
            _plumbing[key] = found
        return found


def s3_client() -> Any:
    """The store's S3 client (see :func:`plumbing_client`; ``AWS_ENDPOINT_URL`` honoured)."""
    return plumbing_client("s3")


def sse_arguments(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    key = env.get(KMS_ENV, "")
    if key:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
    return {"ServerSideEncryption": "AES256"}


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def _one_line(exc: BaseException) -> str:
    from propflow_ops.redact import redact_text

    return " ".join(redact_text(str(exc) or type(exc).__name__).split())[:300]


class Exists(Exception):
    """A conditional put found the key taken."""


def put_new(
    client: Any, bucket: str, key: str, body: bytes, *, content_type: str = "application/octet-stream"
) -> str:
    """Create ``key`` (encrypted) or raise :class:`Exists`; never overwrites. Returns the new object's ETag."""
    try:
        made = client.put_object(
            Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType=content_type, **sse_arguments()
        )
        return str(made.get("ETag") or "")
    except Exception as exc:
        if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
            raise Exists(key) from None
        raise


def list_keys(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under ``prefix`` (paginated), in key order."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        page = client.list_objects_v2(**kw)
        out += page.get("Contents", [])
        if not page.get("IsTruncated"):
            return sorted(out, key=lambda o: o["Key"])
        token = page.get("NextContinuationToken")


def get_bytes(client: Any, bucket: str, key: str) -> bytes:
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def exists(url: S3Url, client: Any = None) -> bool:
    """Whether the object exists (False also when the store cannot say)."""
    try:
        (client or s3_client()).head_object(Bucket=url.bucket, Key=url.prefix)
        return True
    except Exception:  # noqa: BLE001 - missing or unreadable: not there for the caller
        return False


_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".ipynb": "application/x-ipynb+json",
}


def content_type(name: str) -> str:
    return _TYPES.get(Path(name).suffix, "application/octet-stream")


# ---------------------------------------------------------------- reading runs back


@dataclass
class RunFolder:
    incident: str
    name: str
    complete: bool
    files: list[str]


def list_runs(url: S3Url, incident: str, client: Any = None) -> list[RunFolder]:
    """The incident's run folders in the store (complete or not), in name order."""
    client = client or s3_client()
    base = url.key(incident) + "/"
    folders: dict[str, list[str]] = {}
    for obj in list_keys(client, url.bucket, base):
        rest = obj["Key"][len(base) :]
        folder, sep, name = rest.partition("/")
        if not sep or folder == EVENTS or folder.startswith(".") or "/" in name or not name:
            continue
        folders.setdefault(folder, []).append(name)
    return [RunFolder(incident, f, SUMS in names, sorted(names)) for f, names in sorted(folders.items())]


def list_incidents(url: S3Url, client: Any = None) -> list[str]:
    client = client or s3_client()
    out: list[str] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {
            "Bucket": url.bucket,
            "Prefix": url.key() + "/" if url.prefix else "",
            "Delimiter": "/",
        }
        if token:
            kw["ContinuationToken"] = token
        page = client.list_objects_v2(**kw)
        out += [p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return sorted(out)
        token = page.get("NextContinuationToken")


def mirror(url: S3Url, incident: str, dest: Path, client: Any = None) -> dict[str, Any]:
    """Copy the incident's complete runs (bytes as stored: the review verifies them against their own
    SHA256SUMS) and its record (as ``incident.jsonl``) into ``dest/<incident>/``. Incomplete folders (no
    SHA256SUMS: a writer that died, or one still uploading) are left out and counted."""
    from propflow_ops import incident_record as ir

    client = client or s3_client()
    folder = dest / incident
    folder.mkdir(parents=True, exist_ok=True)
    runs = list_runs(url, incident, client)
    incomplete = [r.name for r in runs if not r.complete]
    for r in runs:
        if not r.complete:
            continue
        out = folder / r.name
        out.mkdir(exist_ok=True)
        for name in r.files:
            (out / name).write_bytes(get_bytes(client, url.bucket, url.key(incident, r.name, name)))
    events = ir.S3Store(url, client).events(incident)
    if events:
        import json

        (folder / ir.RECORD).write_text(
            "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in events), encoding="utf-8"
        )
    return {"runs": sum(r.complete for r in runs), "incomplete": incomplete, "events": len(events)}


# ---------------------------------------------------------------- publishing one run


class LocalTarget:
    """A local output folder: staging ``.tmp-`` folder beside the final place, renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self._created: list[Path] = []
        self._staging: Path | None = None
        self._parent = root
        self._name = ""

    def sweep(self) -> None:
        from propflow_ops.run.temporaries import sweep_temporaries

        sweep_temporaries(self.root)

    def records(self) -> ir.IncidentStore:
        from propflow_ops import incident_record as ir

        return ir.LocalStore(self.root)

    def open(self, incident: str, name: str) -> None:
        """Create the incident folder and the staging folder now: a read-only or full disk is found before
        the run, not after."""
        from propflow_ops.run.folder import disk_error, make_parent
        from propflow_ops.run.temporaries import host_tag

        self._parent, self._name = self.root / incident, name
        self._created = make_parent(self._parent)
        staging = self._parent / f".tmp-{name}-{host_tag()}-{os.getpid()}-{threading.get_ident()}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise disk_error(self._parent, exc) from None
        self._staging = staging

    def publish(self, files: Mapping[str, bytes], names: Sequence[str]) -> Path:
        from propflow_ops.run.folder import disk_error, publish, write_staging

        assert self._staging is not None
        try:
            write_staging(self._staging, files, list(names))
            final = publish(self._staging, self._parent, self._name)
        except OSError as exc:
            raise disk_error(self._parent, exc) from None
        self._staging = None
        return final

    def abort(self) -> None:
        from propflow_ops.run.folder import remove_empty

        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        remove_empty(self._created)


class S3Target:
    """``s3://bucket/prefix``: objects under their final keys, SHA256SUMS last, conditional and encrypted."""

    def __init__(self, url: S3Url, client: Any = None) -> None:
        self.root = url
        self.url = str(url)
        self._client = client
        self._incident = ""
        self._name = ""
        self._put: list[str] = []

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def sweep(self) -> None:
        from propflow_ops.run.temporaries import sweep_temporaries

        sweep_temporaries(None)  # this machine's private temporaries; the store has no staging to sweep

    def records(self) -> ir.IncidentStore:
        from propflow_ops import incident_record as ir

        return ir.S3Store(self.root, self.client)

    def open(self, incident: str, name: str) -> None:
        """Check now that the bucket answers, so an unreachable store is said before the run, not after."""
        from propflow_ops.run.folder import PublishError

        self._incident, self._name = incident, name
        try:
            self.client.head_bucket(Bucket=self.root.bucket)
        except Exception as exc:  # noqa: BLE001 - any failure: one line, exit 3, before the run
            raise PublishError(f"cannot write the report under {self.url}: {_one_line(exc)}") from None

    def publish(self, files: Mapping[str, bytes], names: Sequence[str]) -> S3Url:
        """Claim the folder name with the first conditional put (a taken name gets the next suffix), put
        the other files, then SHA256SUMS: the folder is complete from that moment, and never before."""
        from propflow_ops.run.folder import PublishError

        order = [n for n in names if n in files] + [n for n in files if n not in names]
        sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in names if n in files).encode()
        base = self.root / self._incident
        try:
            for n in range(1, 1000):
                folder = base / (self._name if n == 1 else f"{self._name}-{n}")
                try:
                    put_new(
                        self.client,
                        folder.bucket,
                        folder.key(order[0]),
                        files[order[0]],
                        content_type=content_type(order[0]),
                    )
                except Exists:
                    continue
                self._put = [folder.key(order[0])]
                for name in order[1:]:
                    put_new(
                        self.client,
                        folder.bucket,
                        folder.key(name),
                        files[name],
                        content_type=content_type(name),
                    )
                    self._put.append(folder.key(name))
                put_new(
                    self.client,
                    folder.bucket,
                    folder.key(SUMS),
                    sums,
                    content_type="text/plain; charset=utf-8",
                )
                self._put = []
                return folder
        except Exists as exc:
            raise PublishError(f"cannot write the report under {self.url}: {exc} exists already") from None
        except Exception as exc:  # noqa: BLE001 - the store failed mid-upload: one line, exit 3
            raise PublishError(f"cannot write the report under {self.url}: {_one_line(exc)}") from None
        raise PublishError(f"could not find a free run folder name for {self._name} under {base}")

    def abort(self) -> None:
        """A publish that failed half-way: remove what it put (best effort; without SHA256SUMS the folder
        is incomplete to every reader anyway)."""
        for key in self._put:
            try:
                self.client.delete_object(Bucket=self.root.bucket, Key=key)
            except Exception:  # noqa: BLE001 - best effort, see above
                pass
        self._put = []


Target = LocalTarget | S3Target


def location(output_dir: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | S3Url:
    """``--output-dir``, else ``$PROPFLOW_OUTPUT_DIR``, else ``./outputs``: a local folder (absolute) or an S3 URL."""
    from propflow_ops.inputs import check_text, resolve_output_dir

    env = os.environ if env is None else env
    raw = os.fspath(output_dir) if output_dir else (env.get("PROPFLOW_OUTPUT_DIR") or "")
    if raw.startswith(SCHEME):
        check_text("the output folder", raw)
        return parse_s3(raw)
    return resolve_output_dir(output_dir, env)


def fleet_output(output_dir: str | None, env: Mapping[str, str] | None = None) -> str:
    """The fleet's store for ``worker`` and ``submit``: ``--output-dir``, else ``$PROPFLOW_OUTPUT_DIR`` when it is
    an ``s3://`` store, else ``$PROPFLOW_FLEET_OUTPUT_DIR`` (the sandbox exports it), else the local output dir."""
    env = os.environ if env is None else env
    local = env.get("PROPFLOW_OUTPUT_DIR") or ""
    return output_dir or (local if is_s3(local) else "") or env.get("PROPFLOW_FLEET_OUTPUT_DIR") or local


def target(output_dir: str | os.PathLike[str] | None) -> Target:
    loc = location(output_dir)
    return S3Target(loc) if isinstance(loc, S3Url) else LocalTarget(loc)


# ---------------------------------------------------------------- small coordination objects


class Blobs:
    """Small JSON objects beside the runs (``_alarms/``, ``_claims/``, ``_requests/``), each created once and
    never overwritten: a conditional put in S3, a hard link (fails on an existing name) on a local disk.
    This is how workers on several machines agree on an incident per alarm, a runbook per incident, and
    hand a run's result back to ``submit``: no server of ours, only the store."""

    def __init__(self, loc: Path | S3Url, client: Any = None) -> None:
        self.loc = loc
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def create(self, key: str, data: Mapping[str, Any]) -> bool:
        """Create ``key`` with ``data``; False when it exists already."""
        import json

        body = json.dumps(data, sort_keys=True, default=str).encode("utf-8")
        if isinstance(self.loc, S3Url):
            try:
                put_new(
                    self.client, self.loc.bucket, self.loc.key(key), body, content_type="application/json"
                )
                return True
            except Exists:
                return False
        path = self.loc / key
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".tmp-blob-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic, and refuses an existing name
                return True
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp)

    def get(self, key: str) -> dict[str, Any] | None:
        import json

        try:
            if isinstance(self.loc, S3Url):
                raw = get_bytes(self.client, self.loc.bucket, self.loc.key(key))
            else:
                raw = (self.loc / key).read_bytes()
        except FileNotFoundError:
            return None
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (relative to the store's root), sorted."""
        if isinstance(self.loc, S3Url):
            base = self.loc.key() + "/" if self.loc.prefix else ""
            return [o["Key"][len(base) :] for o in list_keys(self.client, self.loc.bucket, base + prefix)]
        root = self.loc
        folder = root / prefix.rsplit("/", 1)[0] if "/" in prefix else root
        if not folder.is_dir():
            return []
        out = [
            str(p.relative_to(root)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        ]
        return sorted(k for k in out if k.startswith(prefix))
