"""No layer imports upward (DESIGN: notebooks -> checks (judge) and sources (fetch) -> the base modules).

Parsed from the package's source (ast), every import statement including the ones inside functions:
checks never import sources, sources never import checks, and the base modules both layers share (result
types, errors, findings, the code registry...) import neither, nor anything above them.

The modules split by concern (issue 19, item 5) keep a direction too: the parts of a headless run
(``propflow_ops/run/``) never import the runner that puts them together, nor anything that calls it; the
review's modules import only those before them (load, model, timeline, judge, render, command); reading
log lines (``sources/logparse.py``) fetches nothing, and Logs Insights does not import the fetch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import propflow_ops

PACKAGE = Path(propflow_ops.__file__).parent
# Below checks and sources: they may import only one another (and the package's __version__).
BASE = {"results", "errors", "signals", "records", "codes", "findings", "urls", "redact", "runbooks"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """The propflow_ops modules ``path`` (module ``name``) imports (absolute and relative, at any depth)."""
    here = (name or module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from propflow_ops import codes`
    return {m for m in out if m == "propflow_ops" or m.startswith("propflow_ops.")}


def _in(name: str, layer: str) -> bool:
    return name == f"propflow_ops.{layer}" or name.startswith(f"propflow_ops.{layer}.")


def files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("path", files("checks"), ids=lambda p: p.name)
def test_checks_never_import_sources(path):
    bad = sorted(m for m in imports(path) if _in(m, "sources"))
    assert not bad, (
        f"checks/{path.name} imports {bad}: put the type where both see it (propflow_ops/records.py)"
    )


@pytest.mark.parametrize("path", files("sources"), ids=lambda p: p.name)
def test_sources_never_import_checks(path):
    bad = sorted(m for m in imports(path) if _in(m, "checks"))
    assert not bad, f"sources/{path.name} imports {bad}"


@pytest.mark.parametrize("name", sorted(BASE))
def test_base_modules_import_only_base_modules(name):
    allowed = {"propflow_ops"} | {f"propflow_ops.{b}" for b in BASE}
    got = imports(PACKAGE / f"{name}.py")
    bad = sorted(
        m
        for m in got
        if m not in allowed
        and not any(m.startswith(f"{a}.") for a in allowed - {"propflow_ops"})
        and m != "propflow_ops.__version__"
    )
    assert not bad, f"{name}.py imports {bad}, above the base layer"


def test_the_parser_sees_what_it_must(tmp_path):
    """The rule can fail: a lazy import inside a function and a relative one are both seen."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from propflow_ops.sources import aws\n    from ..sources import db\n"
        "    import propflow_ops.checks.api\n"
    )
    got = imports(probe, "propflow_ops.checks.probe")
    assert {"propflow_ops.sources.aws", "propflow_ops.sources.db", "propflow_ops.checks.api"} <= got, got


# Packages split by concern: each module may import, of its own group, only the ones listed before it.
ORDERED = {
    "run": ["request", "header", "folder", "temporaries", "parameters", "mask", "evidence", "execute"],
    "review": ["load", "model", "timeline", "judge", "render", "command"],
    "sources": ["logmapping", "logparse", "insights", "logs"],
}
# What the parts of a run must never import: the runner and everything that calls it.
ABOVE_RUN = {"runner", "cli", "demo", "worker", "interactive", "review", "lab", "incident_cli"}


def order_violations(group: str, order: list[str], name: str, got: set[str]) -> list[str]:
    """The modules of ``group`` listed at or after ``name`` that ``got`` (its imports) names."""
    later = order[order.index(name) :]
    return sorted(
        m
        for m in got
        for later_name in later
        if _in(m, f"{group}.{later_name}") and not m.startswith(f"propflow_ops.{group}.{name}.")
    )  # its own names, in an import of itself


@pytest.mark.parametrize(
    ("group", "name"), [(g, n) for g, names in ORDERED.items() for n in names], ids=lambda v: str(v)
)
def test_split_modules_import_only_those_before_them(group, name):
    path = PACKAGE / group / f"{name}.py"
    assert path.exists(), f"{group}/{name}.py is listed in ORDERED but missing"
    bad = order_violations(group, ORDERED[group], name, imports(path))
    assert not bad, f"{group}/{name}.py imports {bad}: a module later in {ORDERED[group]}"


def test_every_module_of_a_split_package_is_ordered():
    """A module added to run/ or review/ says where it stands (else the direction is not checked for it)."""
    for group in ("run", "review"):
        present = {p.stem for p in files(group)} - {"__init__"}
        assert present == set(ORDERED[group]), f"{group}/: {sorted(present ^ set(ORDERED[group]))}"


@pytest.mark.parametrize("path", files("run"), ids=lambda p: p.name)
def test_the_parts_of_a_run_never_import_the_runner(path):
    bad = sorted(m for m in imports(path) for above in ABOVE_RUN if _in(m, above))
    assert not bad, f"run/{path.name} imports {bad}: the runner puts the parts together, not the other way"


def test_reading_log_lines_fetches_nothing():
    """logparse is pure: of the package it imports only the log mapping (no client, no network)."""
    got = imports(PACKAGE / "sources" / "logparse.py")
    assert {m for m in got if not _in(m, "sources.logmapping") and m != "propflow_ops.sources"} == set(), got


def test_the_order_rule_can_fail():
    """A module importing one listed after it (or itself listed later) is reported; one before it is not."""
    order = ["load", "judge", "render"]
    assert order_violations(
        "review", order, "judge", {"propflow_ops.review.render.summary_text", "propflow_ops.review.load"}
    ) == ["propflow_ops.review.render.summary_text"]
    assert order_violations("review", order, "load", {"propflow_ops.review.judge"}) == [
        "propflow_ops.review.judge"
    ]
    assert (
        order_violations("review", order, "render", {"propflow_ops.review.load", "propflow_ops.review.judge"})
        == []
    )
