"""5. Evidence integrity: complete files or none, never an overwrite, SHA256SUMS verifies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from runs import ctrl_c_works

from propflow_ops.run.folder import verify_sums

from .harness import WORLDS, present_slugs

SLUGS = present_slugs()
FIRST = "api-down" if "api-down" in SLUGS else SLUGS[0]
EXPECTED = {"report.ipynb", "report.html", "evidence.json", "SHA256SUMS"}


@pytest.mark.slow
@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("slug", SLUGS)
def test_every_run_folder_is_complete_and_its_sums_verify(worlds, world, slug):
    run = worlds[world].runs[slug]
    assert run.folder is not None, run.explain()
    names = {p.name for p in run.folder.iterdir()}
    assert EXPECTED <= names, f"{run.label}: missing {EXPECTED - names}"
    sums = verify_sums(run.folder)
    assert set(sums.values()) == {"ok"}, f"{run.label}: {sums}"
    assert names - {"SHA256SUMS"} <= set(sums), (
        f"{run.label}: files SHA256SUMS does not cover: {names - {'SHA256SUMS'} - set(sums)}"
    )
    nbformat.validate(nbformat.read(str(run.folder / "report.ipynb"), as_version=4))
    ev = json.loads((run.folder / "evidence.json").read_text())
    assert ev["schema"] == "propflow-ops.evidence/1" and ev["runbook"] == slug
    assert ev["status"] in ("ok", "problems", "error")
    assert run.code == {"ok": 0, "problems": 1}.get(ev["status"], 3), run.explain()


@pytest.mark.slow
@pytest.mark.parametrize("world", list(WORLDS))
def test_no_temporary_folder_is_left_behind(worlds, world):
    left = [str(p) for p in worlds[world].output.rglob(".tmp-*")]
    assert left == []


@pytest.mark.slow
def test_two_runs_started_together_both_survive(worlds):
    twins = worlds["healthy"].twins
    if not twins:
        pytest.skip("api-down does not exist yet")
    assert all(t.folder is not None for t in twins), [t.explain() for t in twins]
    a, b = (t.folder for t in twins)
    assert a != b and a.is_dir() and b.is_dir()
    assert a.parent == b.parent
    for folder in (a, b):
        assert EXPECTED <= {p.name for p in folder.iterdir()}
        assert set(verify_sums(folder).values()) == {"ok"}
    if a.name[:16] == b.name[:16]:  # the same second: one of them carries a suffix
        assert sorted([a.name, b.name])[1].endswith("-2") or a.name != b.name


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_runner_stopped_mid_run_leaves_no_folder_under_a_final_name(world, tmp_path, sig):
    sb = world()
    private = (
        tmp_path / "private-tmp"
    )  # the runner's private temporaries (TMPDIR), not under the output folder
    private.mkdir()
    env = {**os.environ, **sb.env, "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out"), "TMPDIR": str(private)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "propflow_ops.cli", "run", FIRST, "--incident", "STOPPED"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=ctrl_c_works,
    )
    incident = tmp_path / "out" / "STOPPED"
    kernels: list[int] = []
    out = err = b""
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (
                "the run ended before it could be stopped: " + proc.stderr.read().decode()
            )
            assert time.monotonic() < deadline, "the kernel never started"
            kernels = [k for k in _children(proc.pid) if "ipykernel" in _cmdline(k)]
            raw = list(private.glob("propflow-ops-*/run-*/report.ipynb"))
            if kernels and raw:
                break
            time.sleep(0.05)
        os.kill(proc.pid, sig)  # mid-run: the kernel is executing cells
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in kernels:  # the orphaned kernel of a killed runner is ours to end
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # the incident record (incident.jsonl) is the incident's, written when the run opened it: not a run folder
    entries = (
        sorted(p.name for p in incident.iterdir() if p.name != "incident.jsonl") if incident.exists() else []
    )
    final = [n for n in entries if not n.startswith(".tmp-")]
    assert final == [], (
        f"a folder under a final name after {sig.name}: {final}; exit {proc.returncode}; "
        f"stdout {out[-300:]!r}; stderr {err[-1500:]!r}"
    )
    if sig != signal.SIGKILL:  # Ctrl-C and SIGTERM take the same clean-up path
        assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig), (proc.returncode, err[-1500:])
        assert entries == [], f"an interrupted run cleans up its temporary folder: {entries}"
        assert list(private.glob("propflow-ops-*/run-*")) == [], "the raw notebook survived"
