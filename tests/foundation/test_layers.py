"""No layer imports upward (DESIGN: notebooks -> checks (judge) and sources (fetch) -> the base modules).

Parsed from the package's source (ast), every import statement including the ones inside functions:
checks never import sources, sources never import checks, and the base modules both layers share (result
types, errors, findings, the code registry...) import neither, nor anything above them.
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
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
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
    assert not bad, f"checks/{path.name} imports {bad}: put the type where both see it (propflow_ops/records.py)"


@pytest.mark.parametrize("path", files("sources"), ids=lambda p: p.name)
def test_sources_never_import_checks(path):
    bad = sorted(m for m in imports(path) if _in(m, "checks"))
    assert not bad, f"sources/{path.name} imports {bad}"


@pytest.mark.parametrize("name", sorted(BASE))
def test_base_modules_import_only_base_modules(name):
    allowed = {"propflow_ops"} | {f"propflow_ops.{b}" for b in BASE}
    got = imports(PACKAGE / f"{name}.py")
    bad = sorted(m for m in got if m not in allowed and not any(m.startswith(f"{a}.") for a in allowed - {"propflow_ops"})
                 and m != "propflow_ops.__version__")
    assert not bad, f"{name}.py imports {bad}, above the base layer"


def test_the_parser_sees_what_it_must(tmp_path):
    """The rule can fail: a lazy import inside a function and a relative one are both seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from propflow_ops.sources import aws\n    from ..sources import db\n"
                     "    import propflow_ops.checks.api\n")
    got = imports(probe, "propflow_ops.checks.probe")
    assert {"propflow_ops.sources.aws", "propflow_ops.sources.db", "propflow_ops.checks.api"} <= got, got
