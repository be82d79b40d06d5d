"""``propflow-ops lab``: the runbooks in JupyterLab, as working copies of one incident, pointed at the current
environment or at the sandbox.

    propflow-ops lab api-down --incident INC-7         # current environment (production if that is where it points)
    propflow-ops lab api-down --sandbox --scenario api-oom

JupyterLab runs as a child process on 127.0.0.1 with a fresh token. Its root is the incident's working copies
(``<output-dir>/<incident>/.lab/<user>``, see :mod:`propflow_ops.interactive`), never the repository's ``notebooks/``;
every save is masked by the server before it is written; ``ev.save()`` publishes an interactive run. Its
kernels inherit this process's environment (merged with the sandbox's when ``--sandbox`` is given, and with
the team configuration's environment), plus the incident and the output folder. The URL (token included) is
printed on stdout once JupyterLab answers. Ctrl-C or SIGTERM stops JupyterLab (and its kernels) and then the
sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from urllib.parse import quote

from propflow_ops.runbooks import RUNBOOKS, notebooks_dir

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
SAVE_HOOK = "propflow_ops.interactive.pre_save_hook"
STOP_TIMEOUT_S = 8.0
LAB_OVERRIDES: dict[str, dict[str, Any]] = {
    # Autosave on: JupyterLab's root is the incident's working copies, and every save is masked on the
    # server (propflow_ops.interactive.pre_save_hook) before it reaches the disk.
    "@jupyterlab/docmanager-extension:plugin": {"autosave": True},
    # No "official Jupyter news?" toast over the runbook (and no call out to fetch it).
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


class LabError(Exception):
    """Bad input or an environment that cannot run JupyterLab: one line, exit 2."""


class SandboxLike(Protocol):
    def start(self) -> Any: ...

    @property
    def env(self) -> dict[str, str]: ...

    def stop(self) -> None: ...


def resolve_notebook(slug: str | None, root: Path) -> str | None:
    """The notebook to open: a runbook slug (``api-down``) or a notebook file name in ``root``."""
    if not slug:
        return None
    if slug in RUNBOOKS:
        name = RUNBOOKS[slug].notebook
    elif slug.endswith(".ipynb") and "/" not in slug:
        name = slug
    else:
        raise LabError(f"unknown runbook {slug!r}; choose one of: {', '.join(RUNBOOKS)}")
    if not (root / name).is_file():
        raise LabError(f"runbook {slug!r}: notebook {name} is not in {root}")
    return name


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Jupyter binds (tornado sets SO_REUSEADDR): a listener makes it taken, TIME_WAIT does not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int, host: str = HOST) -> int:
    """``preferred`` if nothing listens there, else a port the kernel hands out."""
    if 0 < preferred < 65536 and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def lab_url(port: int, notebook: str | None, token: str, host: str = HOST) -> str:
    path = f"lab/tree/{quote(notebook)}" if notebook else "lab"
    return f"http://{host}:{port}/{path}?token={token}"


def write_app_settings(directory: Path) -> Path:
    """A JupyterLab app-settings directory: the installed one's files plus our ``overrides.json``.

    JupyterLab only ever sees the incident's working copies (never ``notebooks/``), and the server masks
    every save, so autosave stays on: a closed tab loses at most the last interval, and never leaves an
    unmasked secret on disk. A user's own settings still win over these defaults.
    """
    directory.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {}
    try:
        from jupyterlab.commands import get_app_dir

        installed = Path(get_app_dir()) / "settings"
    except Exception:  # noqa: BLE001 - no installed settings: ours alone
        installed = Path()
    if installed != Path() and installed.is_dir():
        for item in installed.iterdir():
            if item.is_file():
                shutil.copy2(item, directory / item.name)
        with contextlib.suppress(OSError, ValueError):
            overrides = json.loads((installed / "overrides.json").read_text(encoding="utf-8"))
    for plugin, values in LAB_OVERRIDES.items():
        overrides[plugin] = {**overrides.get(plugin, {}), **values}
    (directory / "overrides.json").write_text(json.dumps(overrides, indent=2) + "\n", encoding="utf-8")
    return directory


def jupyter_command(
    root: Path,
    port: int,
    *,
    python: str | None = None,
    allow_root: bool | None = None,
    app_settings: Path | None = None,
) -> list[str]:
    """The JupyterLab command line. The token goes in the environment (JUPYTER_TOKEN), not in ``ps``."""
    if allow_root is None:
        allow_root = hasattr(os, "geteuid") and os.geteuid() == 0
    cmd = [
        python or sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the URL we print must be the one it serves
        # An incident machine may have no internet, and the lab should not phone home anyway.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if app_settings is not None:
        cmd.append(f"--LabApp.app_settings_dir={app_settings}")
    # Every save (File > Save, autosave) is masked before it is written: no unmasked secret on disk.
    cmd.append(f"--ContentsManager.pre_save_hook={SAVE_HOOK}")
    if allow_root:
        cmd.append("--allow-root")
    return cmd


def lab_env(
    base: Mapping[str, str], token: str, sandbox_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment JupyterLab and its kernels get: with the sandbox, ``base`` without any target
    variable (:mod:`propflow_ops.sandbox.isolation`) and then the sandbox's own."""
    env = dict(base)
    if sandbox_env is not None:
        from propflow_ops.sandbox.isolation import pointed_at

        env = pointed_at(sandbox_env, base)
    env["JUPYTER_TOKEN"] = token
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def target_summary(env: Mapping[str, str], scenarios: Sequence[str] | None) -> str:
    """One line saying where the kernels will point (names only, no secret)."""
    if scenarios is not None:
        return f"target: SANDBOX (scenarios: {', '.join(scenarios) or 'healthy'})"
    parts = [
        f"{name}={env[name]}"
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
        if env.get(name)
    ]
    where = ", ".join(parts) or "boto3's default chain"
    return (
        f"target: the current environment ({where}); each runbook's banner shows the AWS account,"
        " red when it is not the sandbox"
    )


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    token: str,
    stop: threading.Event,
    timeout_s: float = READY_TIMEOUT_S,
) -> bool:
    """True once JupyterLab answers /api/status; False if it exited, timed out or we were stopped."""
    deadline = time.monotonic() + timeout_s
    req = urllib.request.Request(
        f"http://{HOST}:{port}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline and not stop.is_set():
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:  # loopback, our own server
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.25)
    return False


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM (Jupyter shuts its kernels down), then SIGKILL the process group if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, starting: threading.Event | None = None) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``; while ``starting`` is set (the sandbox starting) the first one also
    raises KeyboardInterrupt, so that the start is cut short. Later signals are ignored: the stop that
    follows is bounded and must not be cut short (it would leave processes behind)."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        stop.set()
        if starting is not None and starting.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # pragma: no cover - CLI runs in main
        yield
        return
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_sandbox(
    scenarios: Sequence[str], *, database_url: str | None = None, redis_url: str | None = None
) -> SandboxLike:
    from propflow_ops.sandbox import Sandbox

    return Sandbox(scenarios, database_url=database_url, redis_url=redis_url)


def _say(message: str) -> None:
    print(f"propflow-ops lab: {message}", flush=True)


@dataclass
class LabIncident:
    """Which incident the lab works for, and where (``--incident``, ``--output-dir``, ``--severity``,
    ``--started-at``, and ``--config``/``--env`` as the environment variables they stand for)."""

    incident: str | None = None
    output_dir: str | None = None
    severity: str | None = None
    started_at: str | None = None
    config_env: dict[str, str] = field(default_factory=dict)


def lab_main(
    slug: str | None,
    *,
    sandbox: bool = False,
    scenarios: Sequence[str] = (),
    port: int = 8888,
    database_url: str | None = None,
    redis_url: str | None = None,
    incident: LabIncident | None = None,
) -> int:
    """Start JupyterLab (and the sandbox), print the URL, run until Ctrl-C/SIGTERM. 0 on a clean stop."""
    from propflow_ops.incident import BadInput

    try:
        return _lab(
            slug,
            sandbox=sandbox,
            scenarios=list(scenarios),
            port=port,
            database_url=database_url,
            redis_url=redis_url,
            incident=incident or LabIncident(),
        )
    except (LabError, BadInput) as exc:
        print(f"propflow-ops lab: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def _lab(
    slug: str | None,
    *,
    sandbox: bool,
    scenarios: list[str],
    port: int,
    database_url: str | None = None,
    redis_url: str | None = None,
    incident: LabIncident,
) -> int:
    from propflow_ops import inputs, interactive

    templates = notebooks_dir()
    if not templates.is_dir():
        raise LabError(f"no notebooks directory at {templates} (set PROPFLOW_NOTEBOOKS_DIR)")
    notebook = resolve_notebook(slug, templates)
    if notebook is not None and slug not in RUNBOOKS:
        slug = next((rb.slug for rb in RUNBOOKS.values() if rb.notebook == notebook), None)
        if slug is None:
            raise LabError(f"{notebook} is not a runbook; choose one of: {', '.join(RUNBOOKS)}")
    if scenarios and not sandbox:
        raise LabError("--scenario needs --sandbox")
    if (database_url or redis_url) and not sandbox:
        raise LabError("--sandbox-database-url and --sandbox-redis-url need --sandbox")
    if incident.config_env and sandbox:
        raise LabError(
            "--config/--env cannot be used with --sandbox (the sandbox writes its own configuration)"
        )
    if incident.incident is not None:
        inputs.check_incident_id(incident.incident)
    output_dir = str(inputs.resolve_output_dir(incident.output_dir)) if incident.output_dir else None
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise LabError("JupyterLab is not installed: pip install 'propflow-ops[lab]'") from None
    if sandbox:
        from propflow_ops.sandbox.scenarios import UnknownScenarioError, validate

        try:
            scenarios = list(validate(scenarios))
        except UnknownScenarioError as exc:
            raise LabError(str(exc)) from None

    stop = threading.Event()
    starting = threading.Event()
    box: SandboxLike | None = None
    proc: subprocess.Popen[bytes] | None = None
    scratch = ""
    with _stop_on_signals(stop, starting):
        try:
            sandbox_env: dict[str, str] | None = None
            if sandbox:
                _say(f"starting the sandbox (scenarios: {', '.join(scenarios) or 'healthy'}) ...")
                try:
                    box = make_sandbox(scenarios, database_url=database_url, redis_url=redis_url)
                except (
                    ValueError
                ) as exc:  # SandboxRefused: a fault that would change a server it does not own
                    raise LabError(str(exc)) from None
                try:
                    starting.set()
                    box.start()
                    starting.clear()
                    sandbox_env = dict(box.env)
                except KeyboardInterrupt:
                    return 0
                except Exception as exc:  # noqa: BLE001 - one line, not a traceback
                    print(
                        f"propflow-ops lab: error: the sandbox did not start: {type(exc).__name__}: {exc}",
                        file=sys.stderr,
                    )
                    return 1
                finally:
                    starting.clear()
            if stop.is_set():
                return 0
            token = secrets.token_hex(24)
            env = {**lab_env(os.environ, token, sandbox_env), **incident.config_env}
            if output_dir:
                env["PROPFLOW_OUTPUT_DIR"] = output_dir
            work = interactive.prepare(
                slug,
                incident.incident,
                env,
                output_dir=output_dir,
                severity=incident.severity,
                started_at=incident.started_at,
            )
            env.update(work.kernel_env)
            root = work.workdir
            scratch = tempfile.mkdtemp(prefix="propflow-lab-")
            app_settings = write_app_settings(Path(scratch) / "app-settings")
            for _attempt in range(3):  # a port can be taken between our check and Jupyter's bind
                chosen = free_port(port)
                if chosen != port and port != 0:
                    _say(f"port {port} is taken; using {chosen}")
                cmd = jupyter_command(root, chosen, app_settings=app_settings)
                proc = subprocess.Popen(
                    cmd, env=env, cwd=root, stdin=subprocess.DEVNULL, start_new_session=True
                )  # our Ctrl-C, not Jupyter's y/n prompt
                if wait_ready(proc, chosen, token, stop):
                    break
                if stop.is_set():
                    return 0
                code = stop_process(proc)
                proc = None
                if port_is_free(chosen):  # it died for another reason than the port
                    print(
                        f"propflow-ops lab: error: JupyterLab did not start (exit {code}): {shlex.join(cmd)}",
                        file=sys.stderr,
                    )
                    return 1
                port = 0
            else:
                print("propflow-ops lab: error: no free port for JupyterLab", file=sys.stderr)
                return 1
            _say(target_summary(env, scenarios if sandbox else None))
            _say(
                f"incident {work.incident} ({'opened now' if work.opened else 'joined'}): working copies in"
                f" {root}; notebooks/ is never opened"
            )
            _say(
                "saves are masked before they reach the disk; ev.save() (each runbook's last cell) publishes"
                f" a run under {work.root / work.incident}"
            )
            _say("Ctrl-C stops JupyterLab" + (" and the sandbox" if sandbox else ""))
            print(lab_url(chosen, notebook, token), flush=True)
            while not stop.wait(0.5):
                if proc.poll() is not None:
                    print(f"propflow-ops lab: JupyterLab exited (status {proc.returncode})", file=sys.stderr)
                    return 0 if proc.returncode == 0 else 1
            _say("stopping ...")
            return 0
        finally:
            if proc is not None:
                stop_process(proc)
            if box is not None:
                box.stop()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
