"""``propflow-ops lab``: the command line it builds, the URL it prints, the sandbox it starts and stops.

The browser-driven test of the whole thing is tests/browser/test_lab.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from propflow_ops import lab
from propflow_ops.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]

# Stands in for JupyterLab: answers /api/status only with the token from JUPYTER_TOKEN, writes
# the environment it was given to a file, and stops on SIGTERM.
FAKE_JUPYTER = r'''
import http.server, json, os, signal, sys
port, env_file = int(sys.argv[1]), sys.argv[2]
token = os.environ["JUPYTER_TOKEN"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/api/status" and self.headers.get("Authorization") == "token " + token
        self.send_response(200 if ok else 403); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", port), H)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with open(env_file + ".tmp", "w") as f:
    json.dump(dict(os.environ), f)
os.replace(env_file + ".tmp", env_file)
if os.environ.get("FAKE_JUPYTER_EXIT"):
    sys.exit(int(os.environ["FAKE_JUPYTER_EXIT"]))
server.serve_forever()
'''


class FakeSandbox:
    instances: list[FakeSandbox] = []

    def __init__(self, scenarios: Any, **_servers: Any) -> None:
        self.scenarios = list(scenarios)
        self.calls: list[str] = []
        FakeSandbox.instances.append(self)

    def start(self) -> FakeSandbox:
        self.calls.append("start")
        return self

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "testing",
                "PROPFLOW_API_URL": "http://127.0.0.1:2", "PROPFLOW_SANDBOX": "1"}

    def stop(self) -> None:
        self.calls.append("stop")


# --- pieces --------------------------------------------------------------------------------------

def test_resolve_notebook_by_slug_or_file_name() -> None:
    root = REPO / "notebooks"
    assert lab.resolve_notebook("api-down", root) == "01_api_down.ipynb"
    assert lab.resolve_notebook("01_api_down.ipynb", root) == "01_api_down.ipynb"
    assert lab.resolve_notebook(None, root) is None
    with pytest.raises(lab.LabError, match="unknown runbook 'nope'"):
        lab.resolve_notebook("nope", root)
    with pytest.raises(lab.LabError, match="unknown runbook"):
        lab.resolve_notebook("../secrets.ipynb", root)


def test_resolve_notebook_missing_file(tmp_path: Path) -> None:
    with pytest.raises(lab.LabError, match="01_api_down.ipynb is not in"):
        lab.resolve_notebook("api-down", tmp_path)


def test_lab_url_opens_the_runbook_with_the_token() -> None:
    assert lab.lab_url(8890, "01_api_down.ipynb", "abc123") == \
        "http://127.0.0.1:8890/lab/tree/01_api_down.ipynb?token=abc123"
    assert lab.lab_url(8890, None, "abc123") == "http://127.0.0.1:8890/lab?token=abc123"


def test_jupyter_command() -> None:
    root = REPO / "notebooks"
    cmd = lab.jupyter_command(root, 8899, python="/py", allow_root=False, app_settings=Path("/s"))
    assert cmd[:3] == ["/py", "-m", "jupyterlab"]
    for arg in ("--no-browser", f"--ServerApp.root_dir={root}", "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port=8899", "--ServerApp.port_retries=0", "--LabApp.app_settings_dir=/s"):
        assert arg in cmd
    assert "--allow-root" not in cmd
    assert not [a for a in cmd if "token" in a.lower()], "the token must not be on the command line"
    assert "--allow-root" in lab.jupyter_command(root, 8899, allow_root=True)


def test_lab_env_sandbox_wins_and_production_aws_settings_are_dropped() -> None:
    base = {"PATH": "/bin", "AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "tok", "AWS_ENDPOINT_URL_S3": "https://s3",
            "AWS_ENDPOINT_URL": "https://prod", "PROPFLOW_API_URL": "https://api.propflow.com"}
    env = lab.lab_env(base, "T0K", FakeSandbox([]).env)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["PROPFLOW_API_URL"] == "http://127.0.0.1:2"
    assert env["JUPYTER_TOKEN"] == "T0K" and env["PATH"] == "/bin"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        assert name not in env
    every_kind = {"PGHOSTADDR": "10.0.0.5", "DATABASE_URL": "postgresql://prod", "REDIS_URL": "redis://prod",
                  "TWILIO_AUTH_TOKEN": "real", "AWS_CONFIG_FILE": "/home/me/.aws/config", "HTTPS_PROXY": "http://p",
                  "PROPFLOW_ALEMBIC_CONFIG": "/srv/alembic.ini"}
    env = lab.lab_env({**base, **every_kind}, "T0K", FakeSandbox([]).env)
    assert not set(every_kind) & set(env), sorted(set(every_kind) & set(env))
    # Without --sandbox the engineer's environment is used as it is.
    plain = lab.lab_env(base, "T0K")
    assert plain["AWS_PROFILE"] == "prod" and plain["AWS_ENDPOINT_URL_S3"] == "https://s3"
    assert base["AWS_PROFILE"] == "prod"  # not mutated


def test_free_port_keeps_a_free_port_and_replaces_a_taken_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        other = lab.free_port(taken)
        assert other != taken and lab.port_is_free(other)
    assert lab.free_port(other) == other


def test_app_settings_turn_autosave_off(tmp_path: Path) -> None:
    lab.write_app_settings(tmp_path / "s")
    overrides = json.loads((tmp_path / "s" / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["autosave"] is False
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_target_summary_names_the_target_without_secrets() -> None:
    assert lab.target_summary({}, ["api-oom"]) == "target: SANDBOX (scenarios: api-oom)"
    line = lab.target_summary({"AWS_PROFILE": "prod", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}, None)
    assert "AWS_PROFILE=prod" in line and "s3cr3t" not in line


# --- bad input: one line, exit 2 -----------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["lab", "no-such-runbook"], "unknown runbook 'no-such-runbook'"),
    (["lab", "api-down", "--scenario", "api-oom"], "--scenario needs --sandbox"),
    (["lab", "api-down", "--sandbox", "--scenario", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
])
def test_bad_input_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if "--sandbox" in argv:  # the scenarios are read after the check that JupyterLab is installed
        pytest.importorskip("jupyterlab", reason="the lab extra is not installed")
    monkeypatch.setattr(lab, "make_sandbox", lambda names: pytest.fail("no sandbox on bad input"))
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# --- lifecycle, with a stand-in for JupyterLab ---------------------------------------------------

@pytest.fixture
def fake_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pytest.importorskip("jupyterlab", reason="the lab extra is not installed (lab_main refuses to start)")
    script = tmp_path / "fake_jupyter.py"
    script.write_text(FAKE_JUPYTER)
    env_file = tmp_path / "jupyter-env.json"
    monkeypatch.setattr(lab, "jupyter_command",
                        lambda root, port, **kw: [sys.executable, str(script), str(port), str(env_file)])
    monkeypatch.setattr(lab, "make_sandbox", FakeSandbox)
    FakeSandbox.instances.clear()
    yield env_file


def _sigterm_self_when(ready: Path) -> threading.Thread:
    def later() -> None:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        # Only once lab_main has its handler in place (it installs it before starting anything).
        if ready.exists() and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


def test_sandbox_lab_prints_url_and_stops_everything_on_sigterm(
        fake_jupyter: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler_before = signal.getsignal(signal.SIGTERM)
    thread = _sigterm_self_when(fake_jupyter)
    code = lab.lab_main("api-down", sandbox=True, scenarios=["api-oom", "api-oom"], port=0)
    thread.join(5)
    assert code == 0
    out = capsys.readouterr().out
    url = re.search(r"^http://127\.0\.0\.1:(\d+)/lab/tree/01_api_down\.ipynb\?token=(\w+)$", out, re.M)
    assert url, out
    assert "target: SANDBOX (scenarios: api-oom)" in out

    (box,) = FakeSandbox.instances
    assert box.scenarios == ["api-oom"] and box.calls == ["start", "stop"]
    env = json.loads(fake_jupyter.read_text())
    assert env["JUPYTER_TOKEN"] == url.group(2) and len(url.group(2)) >= 32
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1" and env["PROPFLOW_SANDBOX"] == "1"
    assert lab.port_is_free(int(url.group(1))), "JupyterLab still listens after the stop"
    assert signal.getsignal(signal.SIGTERM) == handler_before


def test_jupyter_that_dies_stops_the_sandbox_and_exits_1(
        fake_jupyter: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_JUPYTER_EXIT", "3")
    assert lab.lab_main("api-down", sandbox=True, scenarios=[], port=0) == 1
    assert "JupyterLab did not start" in capsys.readouterr().err
    (box,) = FakeSandbox.instances
    assert box.calls == ["start", "stop"]


def test_sandbox_that_fails_to_start_is_one_line_and_exit_1(
        fake_jupyter: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(self: FakeSandbox) -> None:
        self.calls.append("start")
        raise OSError("pgserver: no space left")

    monkeypatch.setattr(FakeSandbox, "start", broken)
    assert lab.lab_main(None, sandbox=True, scenarios=[], port=0) == 1
    err = capsys.readouterr().err.strip()
    assert err == "propflow-ops lab: error: the sandbox did not start: OSError: pgserver: no space left"
    (box,) = FakeSandbox.instances
    assert box.calls == ["start", "stop"]  # whatever it had started is stopped
    assert not fake_jupyter.exists(), "JupyterLab must not start without its sandbox"


# --- the real JupyterLab, no browser -------------------------------------------------------------

def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.mark.slow
def test_real_jupyterlab_serves_the_runbook_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab", reason="the lab extra is not installed")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    out = tmp_path / "out.txt"
    with out.open("w") as stdout, (tmp_path / "err.txt").open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "propflow_ops.cli", "lab", "api-down", "--port", "0"],
                                env=env, stdout=stdout, stderr=stderr, text=True)
    try:
        found = None
        deadline = time.monotonic() + 120
        while found is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
            found = re.search(r"^http://127\.0\.0\.1:(\d+)/lab/tree/01_api_down\.ipynb\?token=(\w+)$",
                              out.read_text(), re.M)
        assert found, out.read_text() + (tmp_path / "err.txt").read_text()
        base, token = f"http://127.0.0.1:{found.group(1)}", found.group(2)
        assert "target: the current environment" in out.read_text()

        assert _get(f"{base}/api/status")[0] == 403  # no token, no access
        status, body = _get(f"{base}/api/contents/01_api_down.ipynb?content=0", token)
        assert status == 200 and json.loads(body)["type"] == "notebook"
        status, body = _get(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", token)
        # Our overrides become the schema's defaults (a user's own setting would still win).
        assert status == 200 and json.loads(body)["schema"]["properties"]["autosave"]["default"] is False
        assert _get(found.group(0))[0] == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(60)
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()
    assert lab.port_is_free(int(found.group(1)))
