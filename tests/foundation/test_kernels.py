"""Warm kernels: several runs in one kernel must each look like a run in a fresh kernel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nbtools import write_notebook

from propflow_ops.kernels import KernelPool
from propflow_ops.run.folder import verify_sums
from propflow_ops.runner import RunRequest, run

pytestmark = pytest.mark.xdist_group("kernels")

LEAKY = "leaked_from_first_run = 42\nimport os\nos.environ['PROPFLOW_LEAK'] = 'x'"
PROBE = (
    "import os\nfrom propflow_ops.findings import Finding\n"
    "ev.add(Finding.ok('NO_LEAK', 'clean', str(['leaked_from_first_run' in globals(), os.environ.get('RUN_TAG')])))"
)


@pytest.fixture
def nbdir(tmp_path, monkeypatch):
    write_notebook(tmp_path / "nb" / "01_api_down.ipynb", "api-down", LEAKY, PROBE, "ev.save()")
    write_notebook(tmp_path / "nb" / "02_db_connection.ipynb", "db-connection", PROBE, "ev.save()")
    write_notebook(
        tmp_path / "nb" / "03_api_latency.ipynb", "api-latency", "raise RuntimeError('boom')", "ev.save()"
    )
    monkeypatch.setenv("PROPFLOW_NOTEBOOKS_DIR", str(tmp_path / "nb"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return tmp_path


def request(slug: str, tmp_path: Path, tag: str) -> RunRequest:
    return RunRequest(
        slug=slug,
        incident="INC-WARM",
        output_dir=str(tmp_path / "out"),
        html=True,
        progress=False,
        env={"RUN_TAG": tag},
        budget_s=120,
    )


def probe(result) -> str:
    return next(f["detail"] for f in result.evidence["findings"] if f["code"] == "NO_LEAK")


def test_runs_in_one_warm_kernel_look_fresh_and_a_failed_run_spoils_it(nbdir):
    pids = []

    def job(req):
        def go(kernel):
            pids.append(kernel.pid() if kernel else None)
            return run(req, kernel=kernel)

        return go

    with KernelPool(1) as pool:
        first = pool.submit(job(request("api-down", nbdir, "one"))).result()
        second = pool.submit(job(request("db-connection", nbdir, "two"))).result()
        broken = pool.submit(job(request("api-latency", nbdir, "three"))).result()
        after = pool.submit(job(request("db-connection", nbdir, "four"))).result()

    assert probe(first) == "[True, 'one']"
    assert probe(second) == "[False, 'two']", "the first run's names or environment leaked into the second"
    assert probe(after) == "[False, 'four']"
    assert pids[0] == pids[1] == pids[2] is not None, "the warm kernel was not reused"
    assert pids[3] not in (None, pids[2]), "a kernel whose run raised was reused"
    assert broken.exit_code == 3 and "boom" in (broken.error or "")
    for result in (first, second, after):
        assert result.exit_code == 0, result.error
        nb = json.loads((result.path / "report.ipynb").read_text())
        counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), counts
        assert set(verify_sums(result.path).values()) == {"ok"}
        assert "execution_count = 1" not in (result.path / "report.ipynb").read_text()  # no preamble in it
    assert first.path != second.path and first.evidence["run"]["duration_s"] > 0


def test_two_workers_run_at_the_same_time_into_separate_folders(nbdir):
    with KernelPool(2) as pool:
        futures = [
            pool.submit(lambda k, s=s, t=t: run(request(s, nbdir, t), kernel=k))
            for s, t in (("db-connection", "a"), ("db-connection", "b"), ("api-down", "c"))
        ]
        results = [f.result() for f in futures]
    assert [probe(r) for r in results] == ["[False, 'a']", "[False, 'b']", "[True, 'c']"]
    assert len({r.path for r in results}) == 3


def test_warm_runs_do_not_pile_up_open_kernel_clients(nbdir):
    """papermill leaves its client's channels open when handed a kernel manager (about 14 descriptors a
    run); the warm kernel closes them before the next run."""
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def go(tag):
        return lambda kernel: (run(request("db-connection", nbdir, tag), kernel=kernel), open_fds())

    with KernelPool(1) as pool:
        counts = [pool.submit(go(f"r{i}")).result() for i in range(4)]
    assert all(result.exit_code == 0 for result, _ in counts)
    fds = [n for _, n in counts]
    # the first run's own client is still open when it is counted; later runs close the one before
    assert fds[3] - fds[1] < 5, f"open file descriptors after each warm run: {fds}"


ENV_LEAKY = (
    "import os\nos.environ['PROPFLOW_LEAK'] = 'x'\ndel os.environ['STARTED_WITH']\n"
    "os.write(2, b'written to the kernel process stderr')"
)
ENV_PROBE = (
    "import os\nfrom propflow_ops.findings import Finding\n"
    "ev.add(Finding.ok('NO_LEAK', 'clean', str([os.environ.get(k) for k in "
    "('PROPFLOW_LEAK', 'STARTED_WITH', 'RUN_TAG')])))"
)


def test_each_run_starts_from_the_kernels_own_environment_and_its_output_goes_to_a_file(
    tmp_path, monkeypatch
):
    """What a run sets or removes in os.environ does not reach the next run in the same kernel; the pool's
    ``env`` is what each kernel starts with, ``output`` collects what the kernel process writes itself."""
    import os

    write_notebook(tmp_path / "nb" / "01_api_down.ipynb", "api-down", ENV_LEAKY, ENV_PROBE, "ev.save()")
    write_notebook(tmp_path / "nb" / "02_db_connection.ipynb", "db-connection", ENV_PROBE, "ev.save()")
    monkeypatch.setenv("PROPFLOW_NOTEBOOKS_DIR", str(tmp_path / "nb"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    start_env = {**os.environ, "STARTED_WITH": "pool"}
    with KernelPool(1, env=start_env, output=tmp_path / "kernels") as pool:
        first = pool.submit(lambda k: run(request("api-down", tmp_path, "one"), kernel=k)).result()
        second = pool.submit(lambda k: run(request("db-connection", tmp_path, "two"), kernel=k)).result()
    assert first.exit_code == 0 and second.exit_code == 0, (first.error, second.error)
    assert probe(first) == "['x', None, 'one']"
    assert probe(second) == "[None, 'pool', 'two']", "the first run's environment changes reached the second"
    logs = list((tmp_path / "kernels").glob("*.log"))
    assert len(logs) == 1 and "written to the kernel process stderr" in logs[0].read_text()


_RESET_PROBE = """
import gc, json
from IPython.core.interactiveshell import InteractiveShell
from propflow_ops.kernels import reset_namespace

shell = InteractiveShell()
shell.run_cell("leaked_from_first_run = 42")
before = "leaked_from_first_run" in shell.user_ns
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
reset_namespace(shell)
gc.callbacks.clear()
print(json.dumps({"before": before, "after": "leaked_from_first_run" in shell.user_ns, "full": len(full),
                  "put_back": gc.collect.__module__ if hasattr(gc.collect, "__module__") else "?"}))
"""


def test_the_reset_before_a_warm_run_empties_the_namespace_without_full_collections():
    """``%reset -f`` made two full garbage collections before every warm run (about 0.3 s each in a kernel
    that has imported the runbooks' libraries): the reset still empties the namespace, without them. (In a
    process of its own: an IPython shell takes over ``sys.modules["__main__"]`` of the process it is made in.)"""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _RESET_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] and not got["after"], got
    assert got["full"] == 0, f"the reset made {got['full']} full garbage collection(s)"
    assert got["put_back"] == "gc", got  # gc.collect is the real one again
