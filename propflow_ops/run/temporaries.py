"""A run's private temporaries (``$TMPDIR/propflow-ops-<uid>/run-<pid>-<host>-...``, mode 0700) and the
sweep of what dead runs left (private folders, ``.tmp-*`` staging folders under the output folder)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from propflow_ops.run.folder import PublishError

PRIVATE_PREFIX = "propflow-ops-"
STALE_AFTER_S = 25 * 3600  # longer than the longest budget: a temporary this old belongs to no live run
# .tmp-<stamp>-<slug>-<host>-<pid>-<thread> (older versions: without <host>)
_STAGING = re.compile(r"^\.tmp-.*?(?:-(?P<host>[0-9a-f]{8}))?-(?P<pid>\d+)-(?P<tid>\d+)$")
_PRIVATE = re.compile(r"^run-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-")


def host_tag() -> str:
    """Eight hex digits naming this machine (and container): a pid means something only on its own host."""
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def private_root() -> Path:
    """``$TMPDIR/propflow-ops-<uid>``: ours alone (mode 0700, not a symlink, owned by us)."""
    root = Path(tempfile.gettempdir()) / f"{PRIVATE_PREFIX}{os.getuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(root)
    import stat as stat_mod

    if not stat_mod.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PublishError(f"{root} is not a private directory of this user; remove it")
    if stat_mod.S_IMODE(st.st_mode) != 0o700:
        os.chmod(root, 0o700)
    return root


def private_workdir() -> Path:
    """A fresh private folder (0700) for one run's raw notebook and evidence: named after our pid."""
    return Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-{host_tag()}-", dir=private_root()))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, pid: int | None) -> bool:
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    return pid is not None and pid != os.getpid() and not _pid_alive(pid)


def sweep_temporaries(root: Path | None = None) -> list[Path]:
    """Remove what dead runs left: private folders whose owning pid is dead, and ``.tmp-*`` folders under
    the output folder (``root`` and its incident folders) whose pid is dead or that are older than a day.
    A live run's temporaries are kept. Returns what was removed."""
    removed: list[Path] = []
    candidates: list[tuple[Path, int | None]] = []  # pid None: judged by age alone (another host's, unnamed)
    host = host_tag()
    with _suppress_os():
        base = Path(tempfile.gettempdir()) / f"{PRIVATE_PREFIX}{os.getuid()}"
        if base.is_dir() and not base.is_symlink():
            for p in base.iterdir():
                m = _PRIVATE.match(p.name)
                ours = m is not None and m.group("host") == host
                candidates.append((p, int(m.group("pid")) if m and ours else None))
    if root is not None:
        with _suppress_os():
            dirs = (
                [root] + [d for d in root.iterdir() if d.is_dir() and not d.is_symlink()]
                if root.is_dir()
                else []
            )
            for d in dirs:
                with _suppress_os():
                    for p in d.glob(".tmp-*"):
                        m = _STAGING.match(p.name)
                        ours = m is not None and m.group("host") in (None, host)
                        candidates.append((p, int(m.group("pid")) if m and ours else None))
    for path, pid in candidates:
        if _stale(path, pid):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with _suppress_os():
                    path.unlink()
            if not path.exists():
                removed.append(path)
    return removed


class _suppress_os:  # noqa: N801 - a tiny context manager, used like contextlib.suppress(OSError)
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)
