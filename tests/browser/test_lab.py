"""The engineer's seat: ``propflow-ops lab --sandbox --scenario api-oom`` driven in a real browser.

Debian's chromium (``/usr/bin/chromium``, installed by ``scripts/browser-setup.sh``) through
Playwright: open 01_api_down.ipynb, Run > Run All Cells as an engineer would, with the defaults
and no injected parameters, then check what they would read: no error output, the SANDBOX banner,
the findings table saying ECS_TASK_OOM is FAIL, the plots, the remediation plans saying how to
apply them. Screenshots of the findings table in the light and dark themes go to $PROPFLOW_SCREENSHOT_DIR.

Skipped (with the reason) where chromium or playwright is missing; under CI (``CI=true``) a
missing browser is a failure, so this test cannot silently pass there.
"""

from __future__ import annotations

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
# a temp dir by default; PROPFLOW_SCREENSHOT_DIR=docs refreshes the README images
SHOTS_DIR = Path(os.environ.get("PROPFLOW_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "propflow-screenshots")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # No internet here: without these chromium floods refused connections to Google services.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
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
    notebooks: Path


def _isolated_jupyter(tmp: Path) -> dict[str, str]:
    """Jupyter dirs of our own: no user settings or workspace leak in, nothing leaks out."""
    settings = tmp / "user-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    # Every cell in the DOM (the default may leave off-screen cells out), so we can read them all.
    tracker.write_text(json.dumps({"windowingMode": "none"}), encoding="utf-8")
    return {
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"),
        "MPLCONFIGDIR": str(tmp / "mpl"),
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    _require_browser()
    # A copy of the notebooks: whatever the browser does, the committed runbooks keep no outputs.
    notebooks = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    env = {**os.environ, **_isolated_jupyter(tmp_path), "PROPFLOW_NOTEBOOKS_DIR": str(notebooks)}
    env.pop("PROPFLOW_EVIDENCE_PATH", None)
    log = tmp_path / "lab.log"
    out = tmp_path / "lab.out"
    cmd = [sys.executable, "-m", "propflow_ops.cli", "lab", "api-down", "--sandbox", "--scenario", SCENARIO,
           "--port", "0"]
    with out.open("w") as stdout, log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, text=True, cwd=tmp_path)
    url = ""
    deadline = time.monotonic() + LAB_READY_S
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"^(http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=\w+)$", out.read_text(), re.M)
        if found:
            url = found.group(1)
            break
        time.sleep(0.5)
    try:
        assert url, (f"propflow-ops lab printed no URL (exit {proc.poll()}):\n{out.read_text()}\n"
                     f"{log.read_text()[-4000:]}")
        assert f"/lab/tree/{NOTEBOOK}?token=" in url
        yield Lab(url, proc, log, notebooks)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, f"propflow-ops lab did not stop cleanly ({proc.returncode}):\n{log.read_text()[-4000:]}"
    assert "stopping" in out.read_text()


def _launch(pw: Any, user_data_dir: Path) -> Any:
    return pw.chromium.launch_persistent_context(
        str(user_data_dir),  # a fresh profile each run
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000}, device_scale_factor=1,
    )


def _menu(page: Any, top: str, *path: str) -> None:
    """Click a menu item through the menu bar, the way an engineer does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{top}$")).click()
    for i, label in enumerate(path):
        item = page.locator(".lm-Menu:visible .lm-Menu-item").filter(
            has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$")))
        if i < len(path) - 1:
            item.hover()
        else:
            item.click()


def _wait_kernel_idle(page: Any, timeout_s: float) -> None:
    """Until the status bar says the notebook's kernel is ``Idle`` (the toolbar indicator says idle too early)."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(
        timeout=timeout_s * 1000)


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
    errors += page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output",
                           has_text="Traceback (most recent call last)").all_inner_texts()
    return errors


def _findings_table(page: Any) -> Any:
    """The full findings table (``ev.table()``: its title starts ``Findings:``), not a section's."""
    tables = page.locator(".jp-NotebookPanel:visible .propflow-findings").filter(
        has=page.locator("h3", has_text=re.compile(r"^Findings:")))
    assert tables.count(), "no findings table (.propflow-findings titled 'Findings: ...') in the outputs"
    return tables.first


def _status_of(table: Any, code: str) -> str | None:
    row = table.locator("tbody tr").filter(has=table.page.locator("td", has_text=re.compile(rf"^{code}$")))
    if not row.count():
        return None
    return str(row.first.locator("td").first.inner_text()).strip()


def _images(page: Any) -> list[dict[str, Any]]:
    return list(page.locator(".jp-NotebookPanel:visible .jp-RenderedImage img").evaluate_all(
        "imgs => imgs.map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"))


def test_missing_browser_skips_here_and_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        _require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="browser test cannot run in CI"):
        _require_browser()


@pytest.mark.browser
@pytest.mark.slow
def test_api_oom_runbook_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = _launch(pw, lab.log.parent / "chromium-profile")
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.goto(lab.url)

            # The runbook opens with its kernel; nothing has run yet (no papermill, no injection).
            page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first.wait_for()
            tab = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel", has_text=NOTEBOOK)
            assert tab.count(), f"{NOTEBOOK} is not the open tab"
            _wait_kernel_idle(page, 120)
            assert all(p.strip() == "[ ]:" for p in _prompts(page)), _prompts(page)

            _menu(page, "Run", "Run All Cells")
            prompts = _wait_all_executed(page, RUN_ALL_S)
            numbers = [int(p[1:-2]) for p in prompts]
            assert numbers == sorted(numbers), f"cells ran out of order: {prompts}"

            errors = _error_outputs(page)
            assert not errors, "a cell shows an error:\n" + "\n---\n".join(e[-2000:] for e in errors)
            assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").inner_text()

            banner = page.locator(".jp-NotebookPanel:visible .propflow-banner").first
            assert "SANDBOX" in banner.inner_text(), banner.inner_text()

            table = _findings_table(page)
            table.scroll_into_view_if_needed()
            SHOTS_DIR.mkdir(parents=True, exist_ok=True)
            table.screenshot(path=str(SHOTS_DIR / "findings-table.png"))
            codes = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
            assert _status_of(table, "ECS_TASK_OOM") == "FAIL", f"findings table codes: {codes}"

            images = _images(page)
            assert images, "no plot in the outputs (.jp-RenderedImage img)"
            assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in images), images

            steps = page.locator(".jp-NotebookPanel:visible .propflow-step")
            assert steps.count(), "no remediation plan (.propflow-step) in the outputs"
            for text in steps.all_inner_texts():
                assert "PLANNED" in text and "To apply" in text and "parameters cell" in text, text

            # Dark theme, through the menu: the table, banner and plans carry their own colours.
            _menu(page, "Settings", "Theme", "JupyterLab Dark")
            page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
            page.wait_for_timeout(500)  # the theme's CSS transition
            table = _findings_table(page)
            table.scroll_into_view_if_needed()
            table.screenshot(path=str(SHOTS_DIR / "findings-table-dark.png"))
            # For whoever debugs a failure: what the engineer sees, in the dark theme.
            page.screenshot(path=str(lab.log.parent / "notebook-dark.png"))
            for name, selector in (("banner", ".propflow-banner"), ("step", ".propflow-step"),
                                   ("plot", ".jp-RenderedImage")):
                element = page.locator(f".jp-NotebookPanel:visible {selector}").first
                element.scroll_into_view_if_needed()
                element.screenshot(path=str(lab.log.parent / f"{name}-dark.png"))
        finally:
            context.close()
