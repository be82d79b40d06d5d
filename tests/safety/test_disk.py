"""7. A full or read-only disk is an answer, not a crash: one line on stderr, exit 3, no traceback, nothing
half-written under the output folder, no temporary left (neither the private one nor a ``.tmp-*``).

Real small filesystems: a 200 KB tmpfs, and a tmpfs remounted read-only (mode 0555 does not stop root).
Mounting needs root (or CAP_SYS_ADMIN): without it the tests skip and say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nbtools import write_notebook

BIG_OUTPUT = "print('x' * 400_000)"  # a report bigger than the 200 KB filesystem
FAIL = 'from propflow_ops.findings import Finding\nev.add(Finding.fail("API_HEALTH_FAILING", "health 503"))'


def _mount(target: Path, *options: str) -> None:
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(("size=200k", *options)), "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "small"
    target.mkdir()
    _mount(target)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _remount_ro(target: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    with pytest.raises(OSError):
        (target / "probe").write_text("x")


def _run(
    tmp_path: Path, output: Path, *cells: str, incident: str = "DISK-1"
) -> subprocess.CompletedProcess[str]:
    nb = tmp_path / "nb"
    write_notebook(
        nb / "01_api_down.ipynb",
        "api-down",
        *cells,
        "ev.save()",
        extra_params='ws_token: str = "t-123"  # a token\n',
    )
    private = tmp_path / "private-tmp"
    private.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PROPFLOW_NOTEBOOKS_DIR": str(nb),
        "PROPFLOW_OUTPUT_DIR": str(output),
        "TMPDIR": str(private),
    }
    return subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "run", "api-down", "--incident", incident],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


def _incident_own(p: Path) -> bool:
    """The incident's record and its folder: written when a run opens the incident, whole in itself."""
    return p.name == "incident.jsonl" or (p / "incident.jsonl").exists()


def _assert_answered(
    r: subprocess.CompletedProcess[str], output: Path, tmp_path: Path, keep: set[str]
) -> None:
    assert r.returncode == 3, f"exit {r.returncode}; stdout {r.stdout!r}; stderr {r.stderr[-2000:]!r}"
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and ("space" in errors[0] or "Read-only" in errors[0]), r.stderr
    assert r.stdout == "", r.stdout
    # the incident record (incident.jsonl) is the incident's, complete when the run opened it: not half a run
    left = sorted(str(p.relative_to(output)) for p in output.rglob("*") if not _incident_own(p))
    keep = {k for k in keep if not _incident_own(output / k)}
    assert set(left) == keep, f"left under the output folder: {left}"
    private = tmp_path / "private-tmp"
    runs = [p for p in private.rglob("run-*")] if private.exists() else []
    assert runs == [], f"private temporaries left: {runs}"


def test_a_full_disk_gives_one_line_and_exit_3(small_fs, tmp_path):
    r = _run(tmp_path, small_fs, FAIL, BIG_OUTPUT)
    _assert_answered(r, small_fs, tmp_path, keep=set())


def test_a_disk_that_fills_up_beside_an_existing_run_keeps_that_run(small_fs, tmp_path):
    first = _run(tmp_path, small_fs, FAIL)
    assert first.returncode == 1, first.stderr
    folder = Path(first.stdout.strip().splitlines()[-1])
    before = {str(p.relative_to(small_fs)) for p in small_fs.rglob("*")}
    r = _run(tmp_path, small_fs, FAIL, BIG_OUTPUT)
    _assert_answered(r, small_fs, tmp_path, keep=before)
    assert (folder / "SHA256SUMS").exists()


def test_a_read_only_output_folder_gives_one_line_and_exit_3(small_fs, tmp_path):
    _remount_ro(small_fs)
    r = _run(tmp_path, small_fs, FAIL)
    _assert_answered(r, small_fs, tmp_path, keep=set())


def test_a_read_only_incident_folder_gives_one_line_and_exit_3(small_fs, tmp_path):
    (small_fs / "DISK-1").mkdir()
    _remount_ro(small_fs)
    r = _run(tmp_path, small_fs, FAIL)
    _assert_answered(r, small_fs, tmp_path, keep={"DISK-1"})


def test_a_full_temporary_disk_still_ends_in_an_answer(small_fs, tmp_path):
    """The private temporaries ($TMPDIR) on the full disk: the report is published with status error
    (the raw notebook could not be saved whole), or the run is refused in one line; never a traceback."""
    nb = tmp_path / "nb"
    write_notebook(nb / "01_api_down.ipynb", "api-down", FAIL, BIG_OUTPUT, "ev.save()")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PROPFLOW_NOTEBOOKS_DIR": str(nb),
        "PROPFLOW_OUTPUT_DIR": str(out),
        "TMPDIR": str(small_fs),
    }
    r = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "run", "api-down", "--incident", "TMPFULL"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert list(small_fs.rglob("run-*")) == [], "the private temporary was not removed"
    assert list(out.rglob(".tmp-*")) == [] if out.exists() else True
