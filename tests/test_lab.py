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
FAKE_JUPYTER = r"""
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
"""


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
        return {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            "AWS_ACCESS_KEY_ID": "testing",
            "PROPFLOW_API_URL": "http://127.0.0.1:2",
            "PROPFLOW_SANDBOX": "1",
        }

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
    assert (
        lab.lab_url(8890, "01_api_down.ipynb", "abc123")
        == "http://127.0.0.1:8890/lab/tree/01_api_down.ipynb?token=abc123"
    )
    assert lab.lab_url(8890, None, "abc123") == "http://127.0.0.1:8890/lab?token=abc123"


def test_jupyter_command() -> None:
    root = REPO / "notebooks"
    cmd = lab.jupyter_command(root, 8899, python="/py", allow_root=False, app_settings=Path("/s"))
    assert cmd[:3] == ["/py", "-m", "jupyterlab"]
    for arg in (
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=8899",
        "--ServerApp.port_retries=0",
        "--LabApp.app_settings_dir=/s",
    ):
        assert arg in cmd
    assert "--allow-root" not in cmd
    assert not [a for a in cmd if "token" in a.lower()], "the token must not be on the command line"
    assert "--allow-root" in lab.jupyter_command(root, 8899, allow_root=True)


def test_lab_env_sandbox_wins_and_production_aws_settings_are_dropped() -> None:
    base = {
        "PATH": "/bin",
        "AWS_PROFILE": "prod",
        "AWS_SESSION_TOKEN": "tok",
        "AWS_ENDPOINT_URL_S3": "https://s3",
        "AWS_ENDPOINT_URL": "https://prod",
        "PROPFLOW_API_URL": "https://api.propflow.com",
    }
    env = lab.lab_env(base, "T0K", FakeSandbox([]).env)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["PROPFLOW_API_URL"] == "http://127.0.0.1:2"
    assert env["JUPYTER_TOKEN"] == "T0K" and env["PATH"] == "/bin"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        assert name not in env
    every_kind = {
        "PGHOSTADDR": "10.0.0.5",
        "DATABASE_URL": "postgresql://prod",
        "REDIS_URL": "redis://prod",
        "TWILIO_AUTH_TOKEN": "real",
        "AWS_CONFIG_FILE": "/home/me/.aws/config",
        "HTTPS_PROXY": "http://p",
        "PROPFLOW_ALEMBIC_CONFIG": "/srv/alembic.ini",
    }
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


def test_app_settings_autosave_on_because_every_save_is_masked(tmp_path: Path) -> None:
    lab.write_app_settings(tmp_path / "s")
    overrides = json.loads((tmp_path / "s" / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["autosave"] is True
    cmd = lab.jupyter_command(tmp_path, 8899, python="/py", allow_root=False)
    assert "--ContentsManager.pre_save_hook=propflow_ops.interactive.pre_save_hook" in cmd
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_target_summary_names_the_target_without_secrets() -> None:
    assert lab.target_summary({}, ["api-oom"]) == "target: SANDBOX (scenarios: api-oom)"
    line = lab.target_summary({"AWS_PROFILE": "prod", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}, None)
    assert "AWS_PROFILE=prod" in line and "s3cr3t" not in line


# --- bad input: one line, exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lab", "no-such-runbook"], "unknown runbook 'no-such-runbook'"),
        (["lab", "api-down", "--scenario", "api-oom"], "--scenario needs --sandbox"),
        (
            ["lab", "api-down", "--sandbox", "--scenario", "no-such-scenario"],
            "unknown scenario 'no-such-scenario'",
        ),
        (["lab", "api-down", "--incident", "../INC-1"], "incident"),
        (["lab", "api-down", "--sandbox", "--env", "prod"], "--config/--env cannot be used with --sandbox"),
        (["lab", "api-down", "--severity", "P7"], "P7"),
    ],
)
def test_bad_input_exits_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if "--sandbox" in argv:  # the scenarios are read after the check that JupyterLab is installed
        pytest.importorskip("jupyterlab", reason="the lab extra is not installed")
    monkeypatch.setattr(lab, "make_sandbox", lambda names: pytest.fail("no sandbox on bad input"))
    monkeypatch.setattr(lab, "jupyter_command", lambda *a, **k: pytest.fail("no JupyterLab on bad input"))
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path / "out"))
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists(), "nothing written on bad input"


# --- lifecycle, with a stand-in for JupyterLab ---------------------------------------------------


@pytest.fixture
def fake_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pytest.importorskip("jupyterlab", reason="the lab extra is not installed (lab_main refuses to start)")
    script = tmp_path / "fake_jupyter.py"
    script.write_text(FAKE_JUPYTER)
    env_file = tmp_path / "jupyter-env.json"

    def command(root: Path, port: int, **kw: Any) -> list[str]:
        (tmp_path / "jupyter-root").write_text(str(root))
        return [sys.executable, str(script), str(port), str(env_file)]

    monkeypatch.setattr(lab, "jupyter_command", command)
    monkeypatch.setattr(lab, "make_sandbox", FakeSandbox)
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path / "out"))
    FakeSandbox.instances.clear()
    yield env_file


# The line lab_main prints once JupyterLab answers (after it, lab_main only waits for a stop).
URL_LINE = re.compile(r"^http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=\w+$", re.M)
SERVING_S = 120.0  # the most a serving lab is waited for before it is stopped anyway (and the test fails)


def _printed_so_far() -> str:
    """What this process printed so far (capsys's buffer), without taking it away from the test."""
    getvalue = getattr(sys.stdout, "getvalue", None)
    return getvalue() if callable(getvalue) else ""


def _sigterm_self_when(ready: Path) -> threading.Thread:
    """SIGTERM to this process once the fake JupyterLab has written ``ready`` and lab_main has printed its URL
    (it is serving): a stop that lands before the URL is printed would be a different test. On a busy
    machine that can take a while; after SERVING_S the stop is sent anyway, so the test fails instead of
    hanging."""

    def later() -> None:
        deadline = time.monotonic() + SERVING_S
        while not (ready.exists() and URL_LINE.search(_printed_so_far())) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Only once lab_main has its handler in place (it installs it before starting anything).
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


def test_sandbox_lab_prints_url_and_stops_everything_on_sigterm(
    fake_jupyter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    # No --incident: an ad-hoc incident, as run opens; JupyterLab's root is its working copies, not notebooks/.
    incident = env["PROPFLOW_LAB_INCIDENT"]
    assert incident.startswith("ADHOC-") and f"incident {incident} (opened now)" in out
    root = Path((fake_jupyter.parent / "jupyter-root").read_text())
    assert (
        root.parent == Path(env["PROPFLOW_OUTPUT_DIR"]) / incident / ".lab"
        and (root / "01_api_down.ipynb").is_file()
    )
    assert lab.port_is_free(int(url.group(1))), "JupyterLab still listens after the stop"
    assert signal.getsignal(signal.SIGTERM) == handler_before


def test_jupyter_that_dies_stops_the_sandbox_and_exits_1(
    fake_jupyter: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_JUPYTER_EXIT", "3")
    assert lab.lab_main("api-down", sandbox=True, scenarios=[], port=0) == 1
    assert "JupyterLab did not start" in capsys.readouterr().err
    (box,) = FakeSandbox.instances
    assert box.calls == ["start", "stop"]


def test_sandbox_that_fails_to_start_is_one_line_and_exit_1(
    fake_jupyter: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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


def _put(url: str, token: str, model: dict[str, Any]) -> int:
    req = urllib.request.Request(
        url,
        data=json.dumps(model).encode(),
        method="PUT",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback
        return int(resp.status)


def _tree_hash(folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_real_jupyterlab_serves_the_working_copy_masks_every_save_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab", reason="the lab extra is not installed")
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
        "PROPFLOW_OUTPUT_DIR": str(tmp_path / "runs"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }  # STS refused at once: the operator is looked up fast
    templates = _tree_hash(REPO / "notebooks")
    out = tmp_path / "out.txt"
    with out.open("w") as stdout, (tmp_path / "err.txt").open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "propflow_ops.cli",
                "lab",
                "api-down",
                "--port",
                "0",
                "--incident",
                "INC-41",
            ],
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        found = None
        deadline = time.monotonic() + 120
        while found is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
            found = re.search(
                r"^http://127\.0\.0\.1:(\d+)/lab/tree/01_api_down\.ipynb\?token=(\w+)$", out.read_text(), re.M
            )
        assert found, out.read_text() + (tmp_path / "err.txt").read_text()
        base, token = f"http://127.0.0.1:{found.group(1)}", found.group(2)
        assert "target: the current environment" in out.read_text()

        assert _get(f"{base}/api/status")[0] == 403  # no token, no access
        status, body = _get(f"{base}/api/contents/01_api_down.ipynb", token)
        assert status == 200 and json.loads(body)["type"] == "notebook"
        status, body = _get(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", token)
        # Our overrides become the schema's defaults (a user's own setting would still win).
        assert status == 200 and json.loads(body)["schema"]["properties"]["autosave"]["default"] is True
        assert _get(found.group(0))[0] == 200
        # The file browser offers a working copy of every runbook, in the incident's folder.
        listing = json.loads(_get(f"{base}/api/contents/", token)[1])["content"]
        assert len([i for i in listing if i["name"].endswith(".ipynb")]) == 9

        # A save as the browser sends it (autosave or File > Save), with a canary in an output and a source.
        model = json.loads(_get(f"{base}/api/contents/01_api_down.ipynb", token)[1])
        canary = "postgresql://admin:CANARY-h9-s4ve@db.internal:5432/propflow"
        cell = next(
            c
            for c in model["content"]["cells"]
            if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])
        )
        cell["source"] += f"\nprint({canary!r})"
        cell["outputs"] = [
            {"output_type": "stream", "name": "stdout", "text": canary + "\n"},
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"text/html": f"<td>{canary}</td>", "text/plain": canary},
            },
        ]
        assert (
            _put(
                f"{base}/api/contents/01_api_down.ipynb",
                token,
                {"type": "notebook", "format": "json", "content": model["content"]},
            )
            == 200
        )
        (copy,) = (tmp_path / "runs" / "INC-41" / ".lab").glob("*/01_api_down.ipynb")
        on_disk = copy.read_text(encoding="utf-8")
        assert "CANARY-h9-s4ve" not in on_disk and "print(" in on_disk
        assert "CANARY-h9-s4ve" not in "".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in (tmp_path / "runs").rglob("*")
            if p.is_file()
        )
        assert _tree_hash(REPO / "notebooks") == templates, "notebooks/ must never be written"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(60)
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()
    assert lab.port_is_free(int(found.group(1)))


def test_lab_incident_config_and_env_fill_the_working_copy(
    fake_jupyter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from propflow_ops.run.parameters import notebook_parameters

    cfg = tmp_path / "team.toml"
    cfg.write_text(
        '[environments.staging]\naws_region = "eu-west-1"\n[environments.staging.parameters]\n'
        'cluster = "propflow-staging"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("PROPFLOW_CONFIG", raising=False)
    monkeypatch.delenv("PROPFLOW_ENV", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # STS refused at once
    thread = _sigterm_self_when(fake_jupyter)
    code = cli_main(
        [
            "lab",
            "api-down",
            "--incident",
            "INC-61",
            "--config",
            str(cfg),
            "--env",
            "staging",
            "--started-at",
            "2026-11-27T10:00:00Z",
            "--severity",
            "P1",
            "--port",
            "0",
        ]
    )
    thread.join(5)
    assert code == 0, capsys.readouterr().err
    env = json.loads(fake_jupyter.read_text())
    assert env["PROPFLOW_CONFIG"] == str(cfg) and env["PROPFLOW_ENV"] == "staging"
    assert env["AWS_REGION"] == "eu-west-1" and env["PROPFLOW_LAB_INCIDENT"] == "INC-61"
    copy = Path(env["PROPFLOW_LAB_WORKDIR"]) / "01_api_down.ipynb"
    assert copy.parent.parent == Path(env["PROPFLOW_OUTPUT_DIR"]) / "INC-61" / ".lab"
    params = {k: v["default"] for k, v in notebook_parameters(copy).items()}
    assert (params["incident_id"], params["severity"], params["started_at"], params["cluster"]) == (
        "INC-61",
        "P1",
        "2026-11-27T10:00:00Z",
        "propflow-staging",
    )
