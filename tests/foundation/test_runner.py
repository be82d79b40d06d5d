"""The runner and the command line, end to end through the real ``propflow-ops`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nbtools import write_notebook

from propflow_ops.run.folder import verify_sums

FAIL_CELL = (
    'from propflow_ops.findings import Finding\nev.add(Finding.fail("API_HEALTH_FAILING", "health 503"))'
)


def cli(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PROPFLOW_NOTEBOOKS_DIR": str(tmp_path / "nb"),
        "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out"),
    }
    return subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def run_dirs(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(p for p in out.glob("*/*") if p.is_dir()) if out.exists() else []


def evidence(folder: Path) -> dict:
    return json.loads((folder / "evidence.json").read_text())


@pytest.fixture
def nbdir(tmp_path):
    write_notebook(
        tmp_path / "nb" / "01_api_down.ipynb",
        "api-down",
        FAIL_CELL,
        "ev.save()",
        extra_params='ws_token: str = "t-123"  # a token\nthreshold_pct: float = 90.0  # a threshold\n',
    )
    return tmp_path


def test_a_run_writes_the_whole_folder_and_exits_1_on_fail(nbdir):
    r = cli(nbdir, "run", "api-down", "--incident", "INC-7", "--no-html")
    assert r.returncode == 1, r.stderr
    folder = Path(r.stdout.strip().splitlines()[-1])
    assert folder.parent.name == "INC-7" and folder.name.endswith("-api-down")
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "evidence.json", "report.ipynb"]
    ev = evidence(folder)
    assert ev["status"] == "problems" and ev["findings"][0]["code"] == "API_HEALTH_FAILING"
    assert ev["incident"]["severity"] == "P0"
    assert verify_sums(folder) == {"report.ipynb": "ok", "evidence.json": "ok"}


def test_a_raising_notebook_still_leaves_a_report_with_status_error(tmp_path):
    write_notebook(
        tmp_path / "nb" / "01_api_down.ipynb",
        "api-down",
        FAIL_CELL,
        "raise RuntimeError('boom')",
        "ev.save()",
    )
    r = cli(tmp_path, "run", "api-down", "--incident", "INC-8")
    assert r.returncode == 3
    folder = Path(r.stdout.strip().splitlines()[-1])
    assert {"report.ipynb", "report.html", "evidence.json", "SHA256SUMS"} <= {
        p.name for p in folder.iterdir()
    }
    ev = evidence(folder)
    assert ev["status"] == "error" and "RuntimeError" in ev["error"]
    assert [f["code"] for f in ev["findings"]] == ["API_HEALTH_FAILING"]  # found before the crash: kept
    html = (folder / "report.html").read_text()
    assert html.index("API_HEALTH_FAILING") < html.index("RuntimeError")  # findings first


def test_a_hanging_notebook_is_stopped_at_its_budget(tmp_path):
    write_notebook(
        tmp_path / "nb" / "01_api_down.ipynb",
        "api-down",
        "print('before the hang')",
        "import time\ntime.sleep(600)",
    )
    r = cli(tmp_path, "run", "api-down", "--budget", "6", "--no-html")
    assert r.returncode == 3
    folder = Path(r.stdout.strip().splitlines()[-1])
    ev = evidence(folder)
    assert ev["status"] == "error" and "budget" in ev["error"]
    # the report is saved when the run ends (not after every cell): the cells that ran before the kill are in it
    report = json.loads((folder / "report.ipynb").read_text())
    printed = [o.get("text", "") for c in report["cells"] for o in c.get("outputs", [])]
    assert any("before the hang" in "".join(t) for t in printed), printed


def test_the_report_notebook_is_written_when_the_run_ends_not_after_every_cell(tmp_path, monkeypatch):
    """papermill saved the whole growing notebook after every cell's start and end (about 2 writes per cell,
    each validated and copied): most of a warm run's time outside its kernel (issue 19)."""
    import papermill.engines
    import papermill.execute

    from propflow_ops.run.execute import execute
    from propflow_ops.run.request import RunRequest
    from propflow_ops.runbooks import Runbook

    cells = [f"x{i} = {i}\nprint(x{i})" for i in range(20)]
    path = write_notebook(tmp_path / "nb" / "01_api_down.ipynb", "api-down", *cells)
    writes: list[str] = []
    for module in (papermill.engines, papermill.execute):
        real = module.write_ipynb
        monkeypatch.setattr(
            module,
            "write_ipynb",
            lambda nb, out, _real=real, **kw: (writes.append(out), _real(nb, out, **kw)),
        )
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.setenv("PROPFLOW_NOTEBOOKS_DIR", str(path.parent))
    rb = Runbook(slug="api-down", notebook=path.name, title="t", severity="P0", symptoms="")
    req = RunRequest(slug="api-down", env={}, budget_s=120)
    assert execute(rb, {"incident_id": "INC-W"}, workdir, req) is None
    report = json.loads((workdir / "report.ipynb").read_text())
    assert sum(bool(c.get("outputs")) for c in report["cells"]) >= 20  # every cell's output is in it
    assert len(writes) <= 4, writes  # at the start, at the end (papermill writes that twice); was 45 here


def test_a_dead_kernel_gives_status_error(tmp_path):
    write_notebook(tmp_path / "nb" / "01_api_down.ipynb", "api-down", "import os\nos._exit(1)")
    r = cli(tmp_path, "run", "api-down", "--no-html")
    assert r.returncode == 3
    ev = evidence(Path(r.stdout.strip().splitlines()[-1]))
    assert ev["status"] == "error" and "Dead" in ev["error"]


def test_two_runs_in_the_same_second_both_survive(nbdir):
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cli(nbdir, "run", "api-down", "--incident", "SAME", "--no-html"))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [1, 1]
    folders = {r.stdout.strip().splitlines()[-1] for r in results}
    assert len(folders) == 2 and all(Path(f).is_dir() for f in folders)


def test_parameters_are_typed_and_masked_in_the_report(nbdir):
    r = cli(
        nbdir,
        "run",
        "api-down",
        "-p",
        "ws_token",
        "canary-wstoken-0042",
        "-p",
        "threshold_pct",
        "75",
        "--no-html",
    )
    assert r.returncode == 1, r.stderr
    folder = Path(r.stdout.strip().splitlines()[-1])
    ev = evidence(folder)
    assert ev["parameters"]["threshold_pct"] == 75.0
    assert ev["parameters"]["ws_token"] == "***"
    assert "canary-wstoken-0042" not in (folder / "report.ipynb").read_text()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "no-such-runbook"], "unknown runbook"),
        (["run", "api-down", "-p", "nope", "1"], "unknown parameter"),
        (["run", "api-down", "-p", "threshold_pct", "lots"], "must be float"),
        (["run", "api-down", "--window", "-5"], "--window"),
        (["run", "api-down", "--window", "ten"], "invalid int"),
        (["run", "api-down", "--incident", "../x"], "incident id"),
        (["run", "api-down", "--severity", "P7"], "severity"),
        (["run", "api-down", "--started-at", "yesterday"], "ISO 8601"),
        (["run", "api-down", "--apply", "drop-database"], "unknown remediation step"),
        (["run", "api-down", "--apply", "send-test-otp"], "unknown remediation step"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(nbdir, args, needle):
    r = cli(nbdir, *args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert run_dirs(nbdir) == []


def test_invalid_target_url_is_bad_input(nbdir, monkeypatch):
    monkeypatch.setenv("PROPFLOW_API_URL", "htp:/nowhere")
    r = cli(nbdir, "run", "api-down")
    assert r.returncode == 2 and "PROPFLOW_API_URL" in r.stderr and run_dirs(nbdir) == []


def test_list_names_every_runbook():
    r = subprocess.run([sys.executable, "-m", "propflow_ops.cli", "list"], capture_output=True, text=True)
    assert r.returncode == 0
    slugs = [line.split()[0] for line in r.stdout.splitlines()]
    assert slugs == [
        "triage",
        "api-down",
        "db-connection",
        "api-latency",
        "photo-upload",
        "websocket",
        "notifications",
        "migration",
        "post-incident",
    ]
