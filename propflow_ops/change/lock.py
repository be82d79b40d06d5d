"""The team-wide change lock: at most one change to a resource at a time.

A resource is what a step changes: ``ecs:<cluster>/<service>``, ``rds:<instance>``, ``s3:<bucket>``,
``alembic:<database>`` (the migration head). A lock names its owner (operator label), step, incident, when
it was taken and when it expires (a holder that crashed frees it after :data:`DEFAULT_TTL_S`, or someone
runs ``propflow-ops lock break``).

Two backends, one interface (:class:`Locks`):

- :class:`DynamoLocks` when a table is configured (``lock_table`` of the environment in propflow-ops.toml,
  or ``$PROPFLOW_LOCK_TABLE``): a conditional ``PutItem`` (``attribute_not_exists(resource) OR
  expires_at < now``), the way Terraform locks its state. Release deletes the item only if it still holds
  our token. Partition key ``resource`` (string); the sandbox creates the table in moto.
- :class:`FileLocks` otherwise (a team of one): a JSON file per resource in ``$PROPFLOW_LOCK_DIR`` (default
  ``~/.local/state/propflow-ops/locks``), check-and-set under an ``fcntl`` lock on a guard file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from propflow_ops.findings import iso

TABLE_ENV = "PROPFLOW_LOCK_TABLE"
DIR_ENV = "PROPFLOW_LOCK_DIR"
DEFAULT_TTL_S = 30 * 60
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class Holder:
    resource: str
    owner: str
    step: str
    incident: str
    since: str
    expires: str
    token: str = ""

    def text(self) -> str:
        return (
            f"{self.resource} is locked by {self.owner} since {self.since} ({self.step}, incident "
            f"{self.incident}; expires {self.expires})"
        )

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("token")
        return out


class LockBusy(Exception):
    def __init__(self, holder: Holder) -> None:
        super().__init__(holder.text())
        self.holder = holder


class Locks(Protocol):
    where: str

    def acquire(
        self, resource: str, owner: str, step: str, incident: str, ttl_s: float = DEFAULT_TTL_S
    ) -> Holder: ...

    def release(self, holder: Holder) -> bool: ...

    def list(self) -> list[Holder]: ...

    def break_(self, resource: str) -> Holder | None: ...


def _new(resource: str, owner: str, step: str, incident: str, ttl_s: float) -> tuple[Holder, float]:
    now = time.time()
    expires = now + ttl_s
    return Holder(
        resource,
        owner,
        step,
        incident,
        iso(datetime.fromtimestamp(now, UTC)) or "",
        iso(datetime.fromtimestamp(expires, UTC)) or "",
        secrets.token_hex(16),
    ), expires


class DynamoLocks:
    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.where = f"DynamoDB table {table}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from propflow_ops.sources import aws

            self._client = aws.client("dynamodb")
        return self._client

    def acquire(
        self, resource: str, owner: str, step: str, incident: str, ttl_s: float = DEFAULT_TTL_S
    ) -> Holder:
        holder, expires = _new(resource, owner, step, incident, ttl_s)
        item = {
            "resource": {"S": resource},
            "owner": {"S": owner},
            "step": {"S": step},
            "incident": {"S": incident},
            "since": {"S": holder.since},
            "expires": {"S": holder.expires},
            "token": {"S": holder.token},
            "expires_at": {"N": str(int(expires))},
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#r) OR expires_at < :now",
                ExpressionAttributeNames={"#r": "resource"},
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            current = self._get(resource)
            raise LockBusy(current or Holder(resource, "unknown", "?", "?", "?", "?")) from None
        return holder

    def _get(self, resource: str) -> Holder | None:
        item = self.client.get_item(
            TableName=self.table, Key={"resource": {"S": resource}}, ConsistentRead=True
        ).get("Item")
        return _from_item(item) if item else None

    def release(self, holder: Holder) -> bool:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"resource": {"S": holder.resource}},
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": holder.token}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False  # broken or expired and taken by someone else: theirs now
        return True

    def list(self) -> list[Holder]:
        out: list[Holder] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            out.extend(_from_item(i) for i in page.get("Items") or [])
            if not page.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(out, key=lambda h: h.resource)

    def break_(self, resource: str) -> Holder | None:
        old = self.client.delete_item(
            TableName=self.table, Key={"resource": {"S": resource}}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return _from_item(old) if old else None


def _from_item(item: Mapping[str, Any]) -> Holder:
    def s(key: str) -> str:
        return str((item.get(key) or {}).get("S") or "")

    return Holder(s("resource"), s("owner"), s("step"), s("incident"), s("since"), s("expires"), s("token"))


class FileLocks:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.where = f"lock files in {self.dir}"

    def _path(self, resource: str) -> Path:
        return self.dir / (_SAFE.sub("_", resource) + ".json")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".guard", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self, path: Path) -> tuple[Holder, float] | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return Holder(**{k: str(raw.get(k) or "") for k in Holder.__dataclass_fields__}), float(
                raw["expires_at"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def acquire(
        self, resource: str, owner: str, step: str, incident: str, ttl_s: float = DEFAULT_TTL_S
    ) -> Holder:
        with self._guard():
            path = self._path(resource)
            current = self._read(path)
            if current is not None and current[1] >= time.time():
                raise LockBusy(current[0])
            holder, expires = _new(resource, owner, step, incident, ttl_s)
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps({**asdict(holder), "expires_at": expires}), encoding="utf-8")
            os.replace(tmp, path)
            return holder

    def release(self, holder: Holder) -> bool:
        with self._guard():
            path = self._path(holder.resource)
            current = self._read(path)
            if current is None or current[0].token != holder.token:
                return False
            path.unlink(missing_ok=True)
            return True

    def list(self) -> list[Holder]:
        if not self.dir.is_dir():
            return []
        with self._guard():
            found = [self._read(p) for p in sorted(self.dir.glob("*.json"))]
        return [h for h, _ in (f for f in found if f is not None)]

    def break_(self, resource: str) -> Holder | None:
        with self._guard():
            path = self._path(resource)
            current = self._read(path)
            path.unlink(missing_ok=True)
            return current[0] if current else None


def locks_for(env: Mapping[str, str] | None = None) -> Locks:
    """DynamoDB when a table is configured, else the local lock files."""
    env = os.environ if env is None else env
    table = env.get(TABLE_ENV)
    if table:
        return DynamoLocks(table)
    directory = env.get(DIR_ENV) or str(Path.home() / ".local" / "state" / "propflow-ops" / "locks")
    return FileLocks(directory)


def create_table(client: Any, table: str) -> None:
    """The lock table: partition key ``resource`` (string), on demand. The sandbox creates it in moto; a team
    creates it once (``aws dynamodb create-table --table-name T --attribute-definitions
    AttributeName=resource,AttributeType=S --key-schema AttributeName=resource,KeyType=HASH --billing-mode
    PAY_PER_REQUEST``)."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "resource", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "resource", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
