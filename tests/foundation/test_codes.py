"""The registry of finding codes (propflow_ops.codes): every code a check can emit and every code of
CONTRACT.md section 6 has its row; the maps derived from it agree with each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import propflow_ops
from propflow_ops import codes
from propflow_ops.checks import api, triage
from propflow_ops.runbooks import RUNBOOKS

PACKAGE = Path(propflow_ops.__file__).parent
# ../shared/CONTRACT.md beside the checkout (a worktree sits one level further down)
CONTRACT = next(
    (d / "shared" / "CONTRACT.md" for d in PACKAGE.parents if (d / "shared" / "CONTRACT.md").exists()),
    PACKAGE.parent.parent / "shared" / "CONTRACT.md",
)
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# Calls whose first argument (a string constant) is the code of the finding they make.
MAKERS = {"Finding", "ok", "warn", "fail", "error", "skipped", "pattern_finding", "fold", "_unreachable"}


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def emitted_codes(path: Path) -> set[str]:
    """Codes a module can emit: the first argument of a Finding maker, a constant assigned to ``code`` (or a
    ``code`` parameter's default), or the first of a ``(code, label)`` pair in ``reach.TARGETS``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        values: list[ast.AST] = []
        if isinstance(node, ast.Call) and _name(node.func) in MAKERS and node.args:
            values = [node.args[0], *(node.args[1:2] if _name(node.func) == "pattern_finding" else [])]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.args + node.args.kwonlyargs
            defaults = (
                [None] * (len(node.args.args) - len(node.args.defaults))
                + node.args.defaults
                + node.args.kw_defaults
            )
            values = [d for a, d in zip(args, defaults, strict=True) if a.arg == "code" and d is not None]
        elif (
            isinstance(node, ast.AnnAssign)
            and _name(node.target) == "TARGETS"
            and isinstance(node.value, ast.Dict)
        ):
            values = [v.elts[0] for v in node.value.values if isinstance(v, ast.Tuple)]
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                for i, t in enumerate(names):
                    if _name(t) == "code":
                        values.append(node.value.elts[i] if isinstance(node.value, ast.Tuple) else node.value)
        found |= {
            v.value
            for v in values
            if isinstance(v, ast.Constant) and isinstance(v.value, str) and CODE_RE.match(v.value)
        }
    return found


CHECK_MODULES = sorted((PACKAGE / "checks").glob("*.py")) + [PACKAGE / "reach.py"]


def contract_codes() -> dict[str, set[str]]:
    text = CONTRACT.read_text()
    section = text[text.index("## 6.") : text.index("## 7.")]
    out: dict[str, set[str]] = {}
    for item in re.split(r"\n- ", section)[1:]:
        head = re.match(r"`([a-z-]+)`:", item)
        out[head.group(1) if head else item.split(":")[0].strip()] = set(
            re.findall(r"`([A-Z][A-Z0-9_]+)`", item)
        )
    return out


def test_the_scan_finds_the_codes_of_the_checks():
    every = set().union(*(emitted_codes(p) for p in CHECK_MODULES))
    # the scan is not empty-handed: codes made in each way it looks for
    assert {
        "API_HEALTH_FAILING",
        "DB_CONNECTION_REFUSED",
        "TRIAGE_API",
        "ERRORS_RATE_HIGH",
        "LOGS_UNPARSED",
        "AWS_UNREACHABLE",
        "S3_PUBLIC_ACCESS_OPEN",
    } <= every, every
    assert not {"DATABASE_URL", "TWILIO_AUTH_TOKEN", "IN_PROGRESS"} & every


@pytest.mark.parametrize("path", CHECK_MODULES, ids=lambda p: p.name)
def test_every_code_a_check_can_emit_is_in_the_registry(path):
    missing = sorted(c for c in emitted_codes(path) if c not in codes.REGISTRY)
    assert not missing, (
        f"{path.name} emits codes the registry (propflow_ops/codes.py) does not list: {missing}"
    )


@pytest.mark.skipif(not CONTRACT.exists(), reason="../shared/CONTRACT.md is not beside the checkout")
def test_every_code_of_the_contract_is_in_the_registry():
    sections = contract_codes()
    assert {"api-down", "db-connection", "migration", "notifications"} <= set(sections)
    listed = set().union(*sections.values())
    assert len(listed) > 40
    assert not sorted(listed - set(codes.REGISTRY)), sorted(listed - set(codes.REGISTRY))
    for slug, section in sections.items():
        if slug in RUNBOOKS and slug != "triage":  # a runbook's own codes name a runbook or none at all
            assert all(codes.REGISTRY[c].runbook in set(RUNBOOKS) | {None} for c in section)


def test_rows_name_real_runbooks_components_and_services():
    components = {c for c, _ in triage.COMPONENTS}
    services = {"api", "database", "file-storage", "notifications", "frontend"}
    for row in codes.TABLE:
        assert row.runbook is None or row.runbook in RUNBOOKS, row
        assert row.follow_up is None or (row.follow_up in RUNBOOKS and row.why), row
        assert row.component is None or row.component in components, row
        assert row.service is None or row.service in services, row
    assert len(codes.REGISTRY) == len(codes.TABLE), "a code is listed twice"


def test_the_derived_maps_read_the_registry():
    assert triage.owner("DB_POOL_EXHAUSTED") == codes.REGISTRY["DB_POOL_EXHAUSTED"].runbook == "db-connection"
    assert (
        triage.owner("API_LATENCY_HIGH") == "api-latency" and triage.owner("API_SOMETHING_NEW") == "api-down"
    )
    assert codes.service_of("S3_ANYTHING") == "file-storage" and codes.service_of("LOG_SOMETHING") is None
    assert codes.ticket("REDIS_SOMETHING_NEW") == codes.REGISTRY["REDIS_UNREACHABLE"].ticket
    assert codes.REGISTRY["DB_MISSING_INDEX"].follow_up_severity == RUNBOOKS["api-latency"].severity
    from propflow_ops.findings import Finding

    got = api.follow_ups(
        [
            Finding.fail("ECS_TASK_OOM", "oom"),
            Finding.fail("DB_UNREACHABLE", "down"),
            Finding.warn("DB_POOL_EXHAUSTED", "full"),
        ],
        current="api-down",
    )
    assert got == {"db-connection": "DB_UNREACHABLE: the database does not answer"}
