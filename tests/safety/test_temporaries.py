"""4 (continued). A run that dies leaves no secret under the output folder.

The raw executed notebook (papermill's, with the injected ``ws_token``) lives only in a private folder
(``$TMPDIR/propflow-ops-<uid>/run-<pid>-*``, mode 0700), never under the output folder; it is deleted on
every exit path: SIGTERM and SIGHUP take the Ctrl-C clean-up path (exit 128+signal, one line). SIGKILL cannot
be caught: what it leaves under the output folder holds nothing (an empty hidden ``.tmp-*``), and the next
run sweeps both that and the private leftovers of the dead pid.

A small notebook that sleeps in a cell stands in for a runbook (the runner is what is under test).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nbtools import write_notebook
from runs import ctrl_c_works

TOKEN = "ws-canary-7f3c9a1be5d24c8e"  # the injected parameter that must never reach the output folder
SLEEPY = "import time\ntime.sleep(120)"


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    nb = tmp_path / "nb"
    write_notebook(
        nb / "01_api_down.ipynb",
        "api-down",
        SLEEPY,
        "ev.save()",
        extra_params='ws_token: str = "probe"  # a token\n',
    )
    fast = tmp_path / "nb-fast"
    write_notebook(
        fast / "01_api_down.ipynb",
        "api-down",
        "ev.save()",
        extra_params='ws_token: str = "probe"  # a token\n',
    )
    private = tmp_path / "tmpdir"
    private.mkdir()
    return {"nb": nb, "fast": fast, "out": tmp_path / "out", "tmpdir": private}


def _env(s: dict[str, Path], nb: str = "nb") -> dict[str, str]:
    return {
        **os.environ,
        "PROPFLOW_NOTEBOOKS_DIR": str(s[nb]),
        "PROPFLOW_OUTPUT_DIR": str(s["out"]),
        "TMPDIR": str(s["tmpdir"]),
    }


def _start(s: dict[str, Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propflow_ops.cli",
            "run",
            "api-down",
            "--incident",
            "DIES",
            "-p",
            "ws_token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(s),
        preexec_fn=ctrl_c_works,
    )


def _children(pid: int) -> list[int]:
    kids = []
    for st in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(st.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(st.parent.name))
    return kids


def _private_runs(s: dict[str, Path]) -> list[Path]:
    return sorted(s["tmpdir"].glob("propflow-ops-*/run-*"))


def _holding_token(root: Path) -> list[str]:
    found = []
    for p in root.rglob("*") if root.exists() else []:
        if p.is_file() and TOKEN in p.read_text(encoding="utf-8", errors="replace"):
            found.append(str(p))
    return found


def _wait_mid_run(proc: subprocess.Popen[bytes], s: dict[str, Path]) -> tuple[Path, list[int]]:
    """Until the raw notebook (with the token) is saved in the private folder, the kernel in its sleep."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, "the run ended early: " + proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got going"
        runs = _private_runs(s)
        raw = runs[0] / "report.ipynb" if runs else None
        if raw is not None and raw.exists() and TOKEN in raw.read_text(errors="replace"):
            kernels = [
                k for k in _children(proc.pid) if b"ipykernel" in Path(f"/proc/{k}/cmdline").read_bytes()
            ]
            if kernels:
                return runs[0], kernels
        assert _holding_token(s["out"]) == [], "the raw notebook is under the output folder mid-run"
        time.sleep(0.05)


# The runner SIGKILLs its kernel before it exits; on a busy machine the kernel may need a moment to be torn
# down. A kernel the runner left alone sleeps on (SLEEPY) and is still there when this wait ends.
KERNEL_GONE_S = 10.0


def _still_running(pids: list[int], within: float) -> list[int]:
    """The processes of ``pids`` still running (zombies count as gone) once ``within`` seconds have passed
    or as soon as none is."""

    def running() -> list[int]:
        out = []
        for pid in pids:
            with contextlib.suppress(OSError, IndexError):
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(pid)
        return out

    deadline = time.monotonic() + within
    while (left := running()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_kernels(kernels: list[int]) -> None:
    for pid in kernels:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_raw_notebook_is_private_and_never_under_the_output_folder(setup):
    proc = _start(setup)
    kernels: list[int] = []
    try:
        private, kernels = _wait_mid_run(proc, setup)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
        assert not private.is_relative_to(setup["out"])
        assert _holding_token(setup["out"]) == []
    finally:
        proc.kill()
        proc.wait()
        _kill_kernels(kernels)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_terminated_run_deletes_its_raw_notebook_and_leaves_nothing(setup, sig):
    proc = _start(setup)
    kernels: list[int] = []
    try:
        private, kernels = _wait_mid_run(proc, setup)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    alive = _still_running(kernels, KERNEL_GONE_S)
    _kill_kernels(kernels)
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), (proc.returncode, err[-1500:])
    assert b"Traceback" not in err, err[-2000:]
    assert not private.exists(), "the raw notebook survived the signal"
    assert _private_runs(setup) == []
    # the incident record (incident.jsonl) is the incident's, complete when the run opened it: not a run
    left = (
        sorted(
            str(p)
            for p in setup["out"].rglob("*")
            if p.name != "incident.jsonl" and not (p / "incident.jsonl").exists()
        )
        if setup["out"].exists()
        else []
    )
    assert left == [], f"left under the output folder: {left}"
    assert alive == [], f"the kernel outlived the runner: {alive}"


def test_after_a_sigkill_nothing_unmasked_is_under_the_output_folder_and_the_next_run_sweeps(setup):
    proc = _start(setup)
    kernels: list[int] = []
    try:
        private, kernels = _wait_mid_run(proc, setup)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_kernels(kernels)
    assert _holding_token(setup["out"]) == [], "a SIGKILL left a secret under the output folder"
    finals = [
        p
        for p in (setup["out"] / "DIES").iterdir()
        if not p.name.startswith(".tmp-") and p.name != "incident.jsonl"
    ]  # the record is the incident's
    assert finals == []
    assert private.exists()  # SIGKILL cannot be caught: the private leftover waits for the next run
    # an old-style leftover: a raw notebook in a .tmp-* folder of a dead pid (what the old runner left)
    dead_pid = _dead_pid()
    old = setup["out"] / "OLD" / f".tmp-20261127T000000Z-api-down-{dead_pid}-1"
    old.mkdir(parents=True)
    (old / "report.ipynb").write_text(TOKEN)
    r = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "run", "api-down", "--incident", "NEXT"],
        capture_output=True,
        text=True,
        env=_env(setup, "fast"),
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert not private.exists(), "the next run did not sweep the dead run's private folder"
    assert _private_runs(setup) == []
    assert list(setup["out"].rglob(".tmp-*")) == [], list(setup["out"].rglob(".tmp-*"))
    assert _holding_token(setup["out"]) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweeping_keeps_a_live_runs_temporaries(tmp_path, monkeypatch):
    from propflow_ops.run.temporaries import sweep_temporaries

    monkeypatch.setenv("TMPDIR", str(tmp_path / "t"))
    (tmp_path / "t").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    from propflow_ops.run.temporaries import private_workdir

    mine = private_workdir()
    live = tmp_path / "out" / "INC" / f".tmp-x-api-down-{os.getpid()}-1"
    dead = tmp_path / "out" / "INC" / f".tmp-x-api-down-{_dead_pid()}-1"
    stray = tmp_path / "out" / ".tmp-unknown"
    for d in (live, dead, stray):
        d.mkdir(parents=True)
    removed = sweep_temporaries(tmp_path / "out")
    assert mine.exists() and live.exists() and stray.exists()  # ours, and one too young to judge
    assert not dead.exists() and removed == [dead]
    old = time.time() - 26 * 3600
    os.utime(stray, (old, old))
    sweep_temporaries(tmp_path / "out")
    assert not stray.exists()


def test_review_sweeps_what_a_dead_run_left(tmp_path, monkeypatch, capsys):
    import tempfile

    from propflow_ops import cli

    monkeypatch.setenv("TMPDIR", str(tmp_path / "t"))
    (tmp_path / "t").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    stale = tmp_path / "out" / "INC-9" / f".tmp-20261127T000000Z-api-down-{_dead_pid()}-1"
    stale.mkdir(parents=True)
    (stale / "report.ipynb").write_text(TOKEN)
    code = cli.main(["review", "INC-9", "--output-dir", str(tmp_path / "out")])
    capsys.readouterr()
    assert code == 2  # nothing to review, yet the leftover is gone
    assert not stale.exists()
