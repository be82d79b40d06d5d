"""Time to evidence: every runbook against the healthy sandbox, next to the floor measured in the same run.

    .venv/bin/python bench/bench_runs.py [--repeat 3] [--only api-down,triage] [--skip-demo]

Figures printed (wall seconds, median of --repeat):
- floor: the papermill CLI executing a notebook that holds the runbook's parameters cell and only the
  import lines of the runbook's own notebook (kernel start, imports, papermill's own work);
- lean floor: the same, with papermill started without jsonschema's IRI grammar (about 2 s of import
  that propflow-ops skips too, see propflow_ops/__init__.py): the fairer comparison;
- ours: ``propflow-ops run SLUG`` (report.ipynb, report.html, evidence.json, SHA256SUMS);
- all at once: every runbook for one incident, two at a time (both cores): as nine ``propflow-ops run``
  processes, and in one process through two warm kernels (``propflow_ops.kernels.KernelPool``, the demo's way);
- demo: ``propflow-ops demo`` (sandbox start included);
- peer: the runbook document's manual procedure for Backend API Down, its aws CLI commands run one after
  another against the same endpoint (``aws`` must be on PATH or installed in the venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from propflow_ops.runbooks import RUNBOOKS  # noqa: E402
from propflow_ops.sandbox import Sandbox  # noqa: E402

TARGETS = {"triage": 1.3}
DEFAULT_TARGET = 1.5


def floor_notebook(src: Path, dest: Path) -> Path:
    """The runbook's parameters cell plus only its import lines."""
    nb = nbformat.read(str(src), as_version=4)
    cells = []
    imports: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.metadata.get("tags", []):
            cells.append(cell)
            continue
        imports += [line for line in cell.source.splitlines() if line.startswith(("import ", "from "))]
    cells.append(nbformat.v4.new_code_cell("\n".join(dict.fromkeys(imports))))
    out = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    nbformat.write(out, str(dest))
    return dest


LEAN_PAPERMILL = (
    "import sys; sys.modules['rfc3987_syntax'] = None; from papermill.cli import papermill; "
    "papermill(prog_name='papermill')"
)


def all_warm(slugs: list[str], env: dict[str, str]) -> float:
    """Every runbook for one incident in this process: two warm kernels (started inside the timing)."""
    from propflow_ops.kernels import KernelPool
    from propflow_ops.runner import RunRequest, run

    t0 = time.perf_counter()
    kernel_env = {k: v for k, v in env.items() if k.startswith(("AWS_", "PROPFLOW_", "TWILIO_", "WHATSAPP_"))}
    with KernelPool(2) as pool:
        futures = [
            pool.submit(
                lambda k, s=s: run(
                    RunRequest(
                        slug=s,
                        incident="BENCH-WARM",
                        progress=False,
                        output_dir=env["PROPFLOW_OUTPUT_DIR"],
                        env=kernel_env,
                    ),
                    kernel=k,
                )
            )
            for s in slugs
        ]
        codes = [f.result().exit_code for f in futures]
    if any(c not in (0, 1) for c in codes):
        print(f"warning: warm runs exited {codes}", file=sys.stderr)
    return round(time.perf_counter() - t0, 2)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, proc.returncode


def aws_cli() -> list[str] | None:
    venv_aws = Path(sys.executable).with_name("aws")
    if venv_aws.exists():
        return [str(venv_aws)]
    found = shutil.which("aws")
    return [found] if found else None


def peer_api_down(env: dict[str, str]) -> dict[str, float] | None:
    """The document's Backend API Down diagnosis, by hand: its aws commands one after another."""
    aws = aws_cli()
    if aws is None:
        return None
    steps = {
        "ecs describe-services": [
            "ecs",
            "describe-services",
            "--cluster",
            "propflow",
            "--services",
            "propflow-api",
        ],
        # the document uses --follow, which never ends; an engineer reads the last hour and stops
        "logs tail (1 h)": ["logs", "tail", "/ecs/propflow-api", "--since", "1h"],
        # 'aws ecs exec-task' does not exist; the nearest real check is ours (SELECT 1): not timed here
        "cloudwatch MemoryUtilization": [
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/ECS",
            "--metric-name",
            "MemoryUtilization",
            "--dimensions",
            "Name=ClusterName,Value=propflow",
            "Name=ServiceName,Value=propflow-api",
            "--start-time",
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600)),
            "--end-time",
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "--period",
            "300",
            "--statistics",
            "Average",
        ],
        "ecs list-task-definitions": ["ecs", "list-task-definitions", "--family-prefix", "propflow-api"],
    }
    out = {}
    for name, args in steps.items():
        out[name], _ = timed([*aws, *args], env)
    out["total"] = sum(out.values())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args()
    slugs = [s for s in (args.only.split(",") if args.only else RUNBOOKS) if RUNBOOKS[s].path.exists()]

    work = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    }
    t0 = time.perf_counter()
    sandbox = Sandbox().start()
    results["sandbox_start_s"] = round(time.perf_counter() - t0, 2)
    env = {**os.environ, **sandbox.env, "PROPFLOW_OUTPUT_DIR": str(work / "out")}
    rows = []
    try:
        # warm the OS file cache once, not measured
        timed([sys.executable, "-m", "propflow_ops.cli", "run", slugs[0], "--incident", "WARM"], env)
        for slug in slugs:
            rb = RUNBOOKS[slug]
            floor_nb = floor_notebook(rb.path, work / f"floor-{slug}.ipynb")
            floors, leans, ours = [], [], []
            pm_args = ["--no-progress-bar", str(floor_nb), str(work / f"floor-out-{slug}.ipynb")]
            for i in range(args.repeat):
                floors.append(timed([sys.executable, "-m", "papermill", *pm_args], env)[0])
                leans.append(timed([sys.executable, "-c", LEAN_PAPERMILL, *pm_args], env)[0])
                ours.append(
                    timed(
                        [sys.executable, "-m", "propflow_ops.cli", "run", slug, "--incident", f"BENCH-{i}"],
                        env,
                    )[0]
                )
            f, lean, o = statistics.median(floors), statistics.median(leans), statistics.median(ours)
            target = TARGETS.get(slug, DEFAULT_TARGET)
            rows.append(
                {
                    "runbook": slug,
                    "floor_s": round(f, 2),
                    "lean_floor_s": round(lean, 2),
                    "ours_s": round(o, 2),
                    "ratio": round(o / f, 2),
                    "lean_ratio": round(o / lean, 2),
                    "target": target,
                    "met": o / lean <= target,
                }
            )
        results["runbooks"] = rows

        t1 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(
                pool.map(
                    lambda s: timed(
                        [sys.executable, "-m", "propflow_ops.cli", "run", s, "--incident", "BENCH-ALL"], env
                    ),
                    slugs,
                )
            )
        results["all_at_once_s"] = round(time.perf_counter() - t1, 2)
        results["all_at_once_runbooks"] = len(slugs)
        results["all_at_once_warm_s"] = all_warm(slugs, env)
        results["peer_api_down_manual_s"] = peer_api_down(env)
    finally:
        sandbox.stop()

    if not args.skip_demo:
        demo_env = {**os.environ, "PROPFLOW_OUTPUT_DIR": str(work / "demo")}
        results["demo_s"] = round(timed([sys.executable, "-m", "propflow_ops.cli", "demo"], demo_env)[0], 2)

    print(f"machine: {results['machine']}; sandbox start {results['sandbox_start_s']} s")
    print(
        f"{'runbook':15} {'floor s':>8} {'lean s':>7} {'ours s':>7} {'ratio':>6} {'lean ratio':>10} "
        f"{'target':>6}  met (against the lean floor)"
    )
    for r in rows:
        print(
            f"{r['runbook']:15} {r['floor_s']:8.2f} {r['lean_floor_s']:7.2f} {r['ours_s']:7.2f} {r['ratio']:6.2f} "
            f"{r['lean_ratio']:10.2f} {r['target']:6.1f}  {'yes' if r['met'] else 'NO'}"
        )
    n = results["all_at_once_runbooks"]
    print(
        f"all {n} runbooks at once, {n} propflow-ops run processes 2 at a time: {results['all_at_once_s']} s"
    )
    print(f"all {n} runbooks at once, one process, 2 warm kernels: {results['all_at_once_warm_s']} s")
    if "demo_s" in results:
        print(f"propflow-ops demo (sandbox start included): {results['demo_s']} s")
    peer = results["peer_api_down_manual_s"]
    if isinstance(peer, dict):
        print(
            "manual Backend API Down (aws CLI, one after another): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in peer.items())
        )
    else:
        print("manual Backend API Down: aws CLI not found, not measured")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "runs.json").write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
