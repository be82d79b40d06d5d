"""4. Bad input against the real notebooks: one clear line on stderr, exit 2, no traceback, no run folder.

Most cases call the command's ``main`` in this process (a traceback would fail the test just the same);
a few go through a real subprocess to prove the end-to-end path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from propflow_ops import cli
from propflow_ops.runner import COMMON_PARAMETERS, notebook_parameters
from propflow_ops.sandbox import canaries as C

from .harness import find_canaries, present_runbooks

RUNBOOKS = {rb.slug: rb for rb in present_runbooks()}
SLUGS = list(RUNBOOKS)
FIRST = "api-down" if "api-down" in RUNBOOKS else (SLUGS[0] if SLUGS else "api-down")


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv("PROPFLOW_NOTEBOOKS_DIR", raising=False)
    for name in ("PROPFLOW_API_URL", "PROPFLOW_DATABASE_URL", "PROPFLOW_REDIS_URL", "PROPFLOW_ALEMBIC_CONFIG",
                 "PROPFLOW_TWILIO_API_URL", "PROPFLOW_META_GRAPH_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    target = tmp_path / "out"
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(target))
    return target


def refused(capsys, out: Path, *args: str) -> str:
    """Run the command; it must refuse in one line with exit 2 and leave nothing behind."""
    try:
        code = cli.main(["run", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, f"exit {code}; stdout {captured.out!r}; stderr {captured.err!r}"
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    leftovers = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    assert leftovers == [], f"bad input left files behind: {leftovers}"
    return lines[0]


def typed(slug: str, kinds: tuple[str, ...]) -> str | None:
    """A parameter of the notebook (not a common one) declared with one of these types."""
    for name, spec in notebook_parameters(RUNBOOKS[slug].path).items():
        if name not in COMMON_PARAMETERS and spec["type"].replace(" ", "") in kinds:
            return name
    return None


@pytest.mark.parametrize("slug", SLUGS)
def test_unknown_parameter(capsys, out, slug):
    assert "unknown parameter" in refused(capsys, out, slug, "-p", "no_such_parameter", "1")


@pytest.mark.parametrize("slug", SLUGS)
def test_wrong_type_and_negative_numbers(capsys, out, slug):
    name = typed(slug, ("int", "float"))
    if name is None:
        pytest.skip(f"{slug} takes no numeric parameter besides the common ones")
    assert name in refused(capsys, out, slug, "-p", name, "lots")
    assert "negative" in refused(capsys, out, slug, "-p", name, "-5")


@pytest.mark.parametrize("slug", SLUGS)
@pytest.mark.parametrize("args,needle", [
    (["--window", "-5"], "--window"),
    (["--window", "0"], "--window"),
    (["--incident", "../x"], "incident id"),
    (["--incident", "a/b"], "incident id"),
    (["--incident", ".."], "incident id"),
    (["--severity", "P7"], "severity"),
    (["--apply", "drop-database"], "unknown remediation step"),
])
def test_bad_options(capsys, out, slug, args, needle):
    assert needle in refused(capsys, out, slug, *args)


def test_unknown_runbook(capsys, out):
    assert "unknown runbook" in refused(capsys, out, "no-such-runbook")


@pytest.mark.parametrize("name,value", [
    ("PROPFLOW_API_URL", "htp:/nowhere"),
    ("PROPFLOW_API_URL", "http://api.example:notaport"),
    ("PROPFLOW_TWILIO_API_URL", "ftp://twilio.example"),
    ("PROPFLOW_META_GRAPH_URL", "http://"),
    ("AWS_ENDPOINT_URL", "127.0.0.1:5000"),
    ("PROPFLOW_DATABASE_URL", "not a url"),
    ("PROPFLOW_REDIS_URL", "localhost:6379"),
])
def test_invalid_urls_in_the_environment(capsys, out, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert name in refused(capsys, out, FIRST)


@pytest.mark.parametrize("name,value", [
    ("PROPFLOW_DATABASE_URL", f"postgresql//propflow:{C.CANARY_DB_PASSWORD}@db.internal/propflow"),
    ("PROPFLOW_REDIS_URL", f":{C.CANARY_REDIS_PASSWORD}@cache.internal:6379"),
    ("PROPFLOW_API_URL", f"htp://admin:{C.CANARY_BEARER}@api.example"),
])
def test_an_invalid_url_is_refused_without_echoing_its_password(capsys, out, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    line = refused(capsys, out, FIRST)
    assert name in line and not find_canaries(line, "stderr"), line


@pytest.mark.parametrize("kind", ["missing", "directory", "unreadable"])
def test_an_unreadable_alembic_config(capsys, out, monkeypatch, tmp_path, kind):
    slug = "migration" if "migration" in RUNBOOKS else FIRST
    path = tmp_path / "alembic.ini"
    if kind == "directory":
        path.mkdir()
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file: mode 000 cannot make a file unreadable here")
        path.write_text("[alembic]\n")
        path.chmod(0)
    monkeypatch.setenv("PROPFLOW_ALEMBIC_CONFIG", str(path))
    assert "PROPFLOW_ALEMBIC_CONFIG" in refused(capsys, out, slug)


@pytest.mark.parametrize("args,needle", [
    (["run", FIRST, "-p", "no_such_parameter", "1"], "unknown parameter"),
    (["run", FIRST, "--incident", "../../etc"], "incident id"),
])
def test_end_to_end_through_the_real_command(tmp_path, args, needle):
    env = {k: v for k, v in os.environ.items() if k != "PROPFLOW_NOTEBOOKS_DIR"}
    env["PROPFLOW_OUTPUT_DIR"] = str(tmp_path / "out")
    env["PROPFLOW_DATABASE_URL"] = "postgresql+psycopg://propflow:secret@127.0.0.1:1/propflow"
    r = subprocess.run([sys.executable, "-m", "propflow_ops.cli", *args], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


@pytest.mark.slow
def test_an_alembic_config_that_does_not_parse_gives_error_findings_not_a_crash(sandbox_env, tmp_path):
    """A readable file that is not an alembic.ini passes validation; the runbook must still finish."""
    if "migration" not in RUNBOOKS:
        pytest.skip("the migration runbook does not exist yet")
    bad = tmp_path / "alembic.ini"
    bad.write_text("this is not an ini file\n")
    env = {**os.environ, **sandbox_env, "PROPFLOW_ALEMBIC_CONFIG": str(bad),
           "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out")}
    r = subprocess.run([sys.executable, "-m", "propflow_ops.cli", "run", "migration", "--no-html"],
                       capture_output=True, text=True, env=env, timeout=300)
    folder = Path(r.stdout.strip().splitlines()[-1])
    ev = json.loads((folder / "evidence.json").read_text())
    assert ev["status"] != "error", f"the runbook crashed on a bad alembic.ini: {ev.get('error')}"
    assert r.returncode in (0, 1)
    statuses = {f["code"]: f["status"] for f in ev["findings"]}
    assert statuses.get("MIGRATION_PENDING") == "error", statuses
