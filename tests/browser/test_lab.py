"""The engineer's seat: ``propflow-ops lab api-down --sandbox --scenario api-oom --incident ID`` driven in a
real browser, over two sessions of one incident.

Debian's chromium (``/usr/bin/chromium``, installed by ``scripts/browser-setup.sh``) through Playwright.
Session 1: the runbook opens as the incident's working copy (parameters filled: incident, severity, clock);
the engineer names one step in ``apply``, a ``reason`` and the ``confirm`` that production would need
in the parameters cell, runs every cell but the saving one (Run > Run All Above Selected Cell), reads what an
engineer reads (no error output, the SANDBOX banner naming the incident, ECS_TASK_OOM FAIL, the plots, the
step EXECUTED and the other PLANNED), then closes the tab without saving. Then: the repository's notebooks
are unchanged, the incident's action log has the step with its operator, and no run was published.
Session 2: Run All Cells (``apply`` is empty again) ends with ``ev.save()``, which publishes; ``review ID``
then shows the interactive run and the step applied in session 1. Screenshots of the findings table in the
light and dark themes go to $PROPFLOW_SCREENSHOT_DIR.

Skipped (with the reason) where chromium or playwright is missing; under CI (``CI=true``) a
missing browser is a failure, so this test cannot silently pass there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "01_api_down.ipynb"
SCENARIO = "api-oom"
INCIDENT = "INC-BROWSER-1"
STEP = "force-new-deployment"  # applied in session 1 (moto answers it; rollback needs an older revision)
# a temp dir by default; PROPFLOW_SCREENSHOT_DIR=docs refreshes the README images
SHOTS_DIR = Path(
    os.environ.get("PROPFLOW_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "propflow-screenshots"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No internet here: without these chromium floods refused connections to Google services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LAB_READY_S = 180  # sandbox start + JupyterLab start, on a loaded CI machine
RUN_ALL_S = 300  # every cell of the runbook


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (run scripts/browser-setup.sh: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (run scripts/browser-setup.sh: pip install -e '.[browser]')"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed (pip install -e '.[lab]')"
    return None


def _require_browser() -> None:
    reason = _missing_browser()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Lab:
    url: str
    proc: subprocess.Popen[str]
    log: Path
    out: Path


def _isolated_jupyter(tmp: Path) -> dict[str, str]:
    """Jupyter dirs of our own: no user settings or workspace leak in, nothing leaks out."""
    settings = tmp / "user-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    # Every cell in the DOM (the default may leave off-screen cells out), so we can read them all.
    tracker.write_text(json.dumps({"windowingMode": "none"}), encoding="utf-8")
    return {
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "MPLCONFIGDIR": str(tmp / "mpl"),
    }


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".ipynb_checkpoints" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@dataclass
class Seat:
    """What both sessions share: the runbook templates (a copy), the output folder, the environment."""

    tmp: Path
    notebooks: Path
    runs: Path
    env: dict[str, str]


@pytest.fixture
def seat(tmp_path: Path) -> Seat:
    _require_browser()
    # A copy of the templates as well: whatever the browser does, the committed runbooks keep no outputs.
    notebooks = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    runs = tmp_path / "runs"
    env = {
        **os.environ,
        **_isolated_jupyter(tmp_path),
        "PROPFLOW_NOTEBOOKS_DIR": str(notebooks),
        "PROPFLOW_OUTPUT_DIR": str(runs),
        "PYTHONPATH": str(REPO),
        # api-oom's restart cannot converge: its NOT VERIFIED comes after this wait, not the default 60 s
        "PROPFLOW_VERIFY_TIMEOUT_S": "5",
    }
    env.pop("PROPFLOW_EVIDENCE_PATH", None)
    return Seat(tmp_path, notebooks, runs, env)


@contextlib.contextmanager
def _lab(seat: Seat, name: str) -> Iterator[Lab]:
    """``propflow-ops lab api-down --sandbox --scenario api-oom --incident INCIDENT``, stopped on exit."""
    log = seat.tmp / f"{name}.log"
    out = seat.tmp / f"{name}.out"
    cmd = [
        sys.executable,
        "-m",
        "propflow_ops.cli",
        "lab",
        "api-down",
        "--sandbox",
        "--scenario",
        SCENARIO,
        "--incident",
        INCIDENT,
        "--port",
        "0",
    ]
    with out.open("w") as stdout, log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=seat.env, stdout=stdout, stderr=stderr, text=True, cwd=seat.tmp)
    url = ""
    deadline = time.monotonic() + LAB_READY_S
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"^(http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=\w+)$", out.read_text(), re.M)
        if found:
            url = found.group(1)
            break
        time.sleep(0.5)
    try:
        assert url, (
            f"propflow-ops lab printed no URL (exit {proc.poll()}):\n{out.read_text()}\n"
            f"{log.read_text()[-4000:]}"
        )
        assert f"/lab/tree/{NOTEBOOK}?token=" in url
        assert f"incident {INCIDENT}" in out.read_text()
        yield Lab(url, proc, log, out)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, (
        f"propflow-ops lab did not stop cleanly ({proc.returncode}):\n{log.read_text()[-4000:]}"
    )
    assert "stopping" in out.read_text()


def _launch(pw: Any, user_data_dir: Path) -> Any:
    return pw.chromium.launch_persistent_context(
        str(user_data_dir),  # a fresh profile each run
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
        device_scale_factor=1,
    )


def _menu(page: Any, top: str, *path: str) -> None:
    """Click a menu item through the menu bar, the way an engineer does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{top}$")).click()
    for i, label in enumerate(path):
        item = page.locator(".lm-Menu:visible .lm-Menu-item").filter(
            has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$"))
        )
        if i < len(path) - 1:
            item.hover()
        else:
            item.click()


def _wait_kernel_idle(page: Any, timeout_s: float) -> None:
    """Until the status bar says the notebook's kernel is ``Idle`` (the toolbar indicator says idle too early)."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(
        timeout=timeout_s * 1000
    )


def _accept_kernel_dialog(page: Any) -> None:
    """Should JupyterLab ask which kernel, take the notebook's own (Python 3), as an engineer would."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.locator("button", has_text=re.compile(r"^Select$")).click()


def _prompts(page: Any) -> list[str]:
    return list(page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputArea-prompt").all_inner_texts())


def _wait_all_executed(page: Any, timeout_s: float) -> list[str]:
    """Until every code cell shows ``[n]`` (not ``[ ]`` or ``[*]``) and the kernel is idle."""
    started = time.monotonic()
    deadline = started + timeout_s
    prompts: list[str] = []
    while time.monotonic() < deadline:
        _accept_kernel_dialog(page)
        prompts = [p.strip() for p in _prompts(page)]
        done = prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)
        if done and page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).count():
            return prompts
        if time.monotonic() > started + 60 and all(p == "[ ]:" for p in prompts):
            raise AssertionError(f"Run All Cells started nothing in 60 s: prompts {prompts}")
        page.wait_for_timeout(500)
    raise AssertionError(f"cells did not all finish within {timeout_s} s: prompts {prompts}")


def _error_outputs(page: Any) -> list[str]:
    texts = page.locator(
        ".jp-NotebookPanel:visible .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    ).all_inner_texts()
    errors = [t for t in texts if "Traceback" in t or re.search(r"^\w*(Error|Exception)\b", t, re.M)]
    errors += page.locator(
        ".jp-NotebookPanel:visible .jp-OutputArea-output", has_text="Traceback (most recent call last)"
    ).all_inner_texts()
    return errors


def _findings_table(page: Any) -> Any:
    """The full findings table (``ev.table()``: its title starts ``Findings:``), not a section's."""
    tables = page.locator(".jp-NotebookPanel:visible .propflow-findings").filter(
        has=page.locator("h3", has_text=re.compile(r"^Findings:"))
    )
    assert tables.count(), "no findings table (.propflow-findings titled 'Findings: ...') in the outputs"
    return tables.first


def _status_of(table: Any, code: str) -> str | None:
    row = table.locator("tbody tr").filter(has=table.page.locator("td", has_text=re.compile(rf"^{code}$")))
    if not row.count():
        return None
    return str(row.first.locator("td").first.inner_text()).strip()


def _images(page: Any) -> list[dict[str, Any]]:
    return list(
        page.locator(".jp-NotebookPanel:visible .jp-RenderedImage img").evaluate_all(
            "imgs => imgs.map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"
        )
    )


def test_missing_browser_skips_here_and_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        _require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="browser test cannot run in CI"):
        _require_browser()


def _open(context: Any, lab: Lab) -> Any:
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(lab.url)
    # The runbook opens with its kernel, as the incident's working copy.
    page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first.wait_for()
    tab = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text=NOTEBOOK)
    assert tab.count(), f"{NOTEBOOK} is not the open tab"
    _wait_kernel_idle(page, 120)
    return page


def _record(seat: Seat) -> list[dict[str, Any]]:
    path = seat.runs / INCIDENT / "incident.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _published(seat: Seat) -> list[Path]:
    return sorted(p for p in (seat.runs / INCIDENT).iterdir() if p.is_dir() and not p.name.startswith("."))


def _session_one(page: Any, lab: Lab) -> None:
    """Work the incident: name the step in the parameters cell, run every cell but the saving one."""
    assert all(p.strip() == "[ ]:" for p in _prompts(page)), _prompts(page)
    params = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first
    source = params.locator(".cm-content").inner_text()
    assert f"incident_id: str = '{INCIDENT}'" in source and "apply: list = []" in source, source
    params.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(f'apply = ["{STEP}"]')
    page.keyboard.press("Enter")
    page.keyboard.insert_text(
        'reason = "browser test: restart the OOM-ing tasks"'
    )  # change control needs one
    page.keyboard.press("Enter")
    # the confirmation parameter, as against production (the sandbox would apply without it)
    page.keyboard.insert_text(f'confirm = "{STEP}"')
    last = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").last
    assert "ev.save()" in last.locator(".cm-content").inner_text()
    last.locator(".jp-InputPrompt").click()
    _menu(page, "Run", "Run All Above Selected Cell")
    started = time.monotonic()
    while time.monotonic() < started + RUN_ALL_S:
        _accept_kernel_dialog(page)
        prompts = [p.strip() for p in _prompts(page)]
        if (
            all(re.fullmatch(r"\[\d+\]:", p) for p in prompts[:-1])
            and prompts[-1] == "[ ]:"
            and page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).count()
        ):
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"cells did not all finish within {RUN_ALL_S} s: prompts {_prompts(page)}")
    numbers = [int(p.strip()[1:-2]) for p in _prompts(page)[:-1]]
    assert numbers == sorted(numbers), f"cells ran out of order: {_prompts(page)}"

    errors = _error_outputs(page)
    assert not errors, "a cell shows an error:\n" + "\n---\n".join(e[-2000:] for e in errors)
    assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").inner_text()

    banner = page.locator(".jp-NotebookPanel:visible .propflow-banner").first.inner_text()
    assert "SANDBOX" in banner and f"Interactive run for incident {INCIDENT}" in banner, banner

    table = _findings_table(page)
    table.scroll_into_view_if_needed()
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    table.screenshot(path=str(SHOTS_DIR / "findings-table.png"))
    codes = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert _status_of(table, "ECS_TASK_OOM") == "FAIL", f"findings table codes: {codes}"

    images = _images(page)
    assert images, "no plot in the outputs (.jp-RenderedImage img)"
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in images), images

    steps = {
        text.split(":", 1)[0]: text
        for text in page.locator(".jp-NotebookPanel:visible .propflow-step").all_inner_texts()
    }
    assert "EXECUTED" in steps[f"Step {STEP}"], steps
    # api-oom: the restart never converges (one task keeps dying): honestly not verified, after the whole wait
    # (lab --sandbox drops PROPFLOW_* settings, PROPFLOW_VERIFY_TIMEOUT_S too: see sandbox/isolation.py)
    assert "NOT VERIFIED" in steps[f"Step {STEP}"] and "1/2 tasks running" in steps[f"Step {STEP}"], steps
    assert "PLANNED" in steps["Step rollback"] and "To apply" in steps["Step rollback"], steps

    # Dark theme, through the menu: the table, banner and plans carry their own colours.
    _menu(page, "Settings", "Theme", "JupyterLab Dark")
    page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
    page.wait_for_timeout(500)  # the theme's CSS transition
    table = _findings_table(page)
    table.scroll_into_view_if_needed()
    table.screenshot(path=str(SHOTS_DIR / "findings-table-dark.png"))
    page.screenshot(path=str(lab.log.parent / "notebook-dark.png"))  # for whoever debugs a failure
    for name, selector in (
        ("banner", ".propflow-banner"),
        ("step", ".propflow-step"),
        ("plot", ".jp-RenderedImage"),
    ):
        element = page.locator(f".jp-NotebookPanel:visible {selector}").first
        element.scroll_into_view_if_needed()
        element.screenshot(path=str(lab.log.parent / f"{name}-dark.png"))


@pytest.mark.browser
@pytest.mark.slow
def test_two_lab_sessions_of_one_incident_leave_the_applied_step_and_a_published_run(seat: Seat) -> None:
    from playwright.sync_api import sync_playwright

    templates, repo_notebooks = _tree_hash(seat.notebooks), _tree_hash(REPO / "notebooks")
    with sync_playwright() as pw:
        context = _launch(pw, seat.tmp / "chromium-profile")
        try:
            with _lab(seat, "session-1") as lab:
                page = _open(context, lab)
                _session_one(page, lab)
                # The step is in the incident's action log now, before anything is saved.
                actions = [e for e in _record(seat) if e["event"] == "action"]
                assert [(e["phase"], e["step"], e["mode"]) for e in actions] == [
                    ("started", STEP, "started"),
                    ("ended", STEP, "executed"),
                ], actions
                page.close()  # the tab closed without saving (and then the lab stops: the kernel dies)

            assert (
                _tree_hash(seat.notebooks) == templates and _tree_hash(REPO / "notebooks") == repo_notebooks
            ), "the runbooks' notebooks changed"
            actions = [e for e in _record(seat) if e["event"] == "action"]
            assert all(e["by"]["user"] and e["by_label"] for e in actions), actions
            assert actions[-1]["run_mode"] == "interactive"
            assert not _published(seat), "nothing was saved, so nothing is published"

            with _lab(seat, "session-2") as lab:
                page = _open(context, lab)
                params = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first
                assert "apply: list = []" in params.locator(".cm-content").inner_text(), "apply carried over"
                _menu(page, "Run", "Run All Cells")
                _wait_all_executed(page, RUN_ALL_S)
                published = page.locator(".jp-NotebookPanel:visible .propflow-published").first.inner_text()
                assert "Published" in published, published
                page.close()
        finally:
            context.close()

    (run,) = _published(seat)
    evidence = json.loads((run / "evidence.json").read_text(encoding="utf-8"))
    assert evidence["run"]["mode"] == "interactive" and evidence["run"]["operator"]["user"]
    assert [a["mode"] for a in evidence["actions"]] == ["planned", "planned"]  # session 2 was read-only
    # The report holds what the browser showed: each cell's outputs as this kernel sent them, masked.
    report = json.loads((run / "report.ipynb").read_text(encoding="utf-8"))
    outputs = [json.dumps(c.get("outputs")) for c in report["cells"] if c["cell_type"] == "code"]
    assert any("propflow-banner" in o for o in outputs) and any("ECS_TASK_OOM" in o for o in outputs)
    assert sum("image/png" in o for o in outputs) >= 2, "the plots are in the report"
    assert "ECS_TASK_OOM" in (run / "report.html").read_text(encoding="utf-8")
    assert _tree_hash(REPO / "notebooks") == repo_notebooks

    review = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "review", INCIDENT, "--output-dir", str(seat.runs)],
        env=seat.env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=seat.tmp,
    )
    assert review.returncode in (0, 1), review.stderr[-3000:]
    folder = Path(review.stdout.strip().splitlines()[-1])
    postmortem = (folder / "postmortem.md").read_text(encoding="utf-8")
    timeline = postmortem.split("## Timeline (UTC)", 1)[1]
    assert "api-down: problems" in timeline and "(interactive run)" in timeline, timeline[:3000]
    assert f"| action executed | {STEP} (api-down)" in timeline, timeline[:3000]
    changes = postmortem.split("## Changes applied", 1)[1].split("##", 1)[0]
    assert f"| {STEP} | api-down | executed |" in changes and "| interactive |" in changes, changes
