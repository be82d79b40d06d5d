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
from propflow_ops.run.parameters import COMMON_PARAMETERS, notebook_parameters
from propflow_ops.sandbox import canaries as C

from .harness import find_canaries, present_runbooks

RUNBOOKS = {rb.slug: rb for rb in present_runbooks()}
SLUGS = list(RUNBOOKS)
FIRST = "api-down" if "api-down" in RUNBOOKS else (SLUGS[0] if SLUGS else "api-down")


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv("PROPFLOW_NOTEBOOKS_DIR", raising=False)
    for name in (
        "PROPFLOW_API_URL",
        "PROPFLOW_DATABASE_URL",
        "PROPFLOW_REDIS_URL",
        "PROPFLOW_ALEMBIC_CONFIG",
        "PROPFLOW_TWILIO_API_URL",
        "PROPFLOW_META_GRAPH_URL",
        "AWS_ENDPOINT_URL",
    ):
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
@pytest.mark.parametrize(
    "args,needle",
    [
        (["--window", "-5"], "--window"),
        (["--window", "0"], "--window"),
        (["--incident", "../x"], "incident id"),
        (["--incident", "a/b"], "incident id"),
        (["--incident", ".."], "incident id"),
        (["--severity", "P7"], "severity"),
        (["--apply", "drop-database"], "unknown remediation step"),
    ],
)
def test_bad_options(capsys, out, slug, args, needle):
    assert needle in refused(capsys, out, slug, *args)


def test_unknown_runbook(capsys, out):
    assert "unknown runbook" in refused(capsys, out, "no-such-runbook")


@pytest.mark.parametrize(
    "name,value",
    [
        ("PROPFLOW_API_URL", "htp:/nowhere"),
        ("PROPFLOW_API_URL", "http://api.example:notaport"),
        ("PROPFLOW_TWILIO_API_URL", "ftp://twilio.example"),
        ("PROPFLOW_META_GRAPH_URL", "http://"),
        ("AWS_ENDPOINT_URL", "127.0.0.1:5000"),
        ("PROPFLOW_DATABASE_URL", "not a url"),
        ("PROPFLOW_REDIS_URL", "localhost:6379"),
    ],
)
def test_invalid_urls_in_the_environment(capsys, out, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert name in refused(capsys, out, FIRST)


@pytest.mark.parametrize(
    "name,value",
    [
        ("PROPFLOW_DATABASE_URL", f"postgresql//propflow:{C.CANARY_DB_PASSWORD}@db.internal/propflow"),
        ("PROPFLOW_REDIS_URL", f":{C.CANARY_REDIS_PASSWORD}@cache.internal:6379"),
        ("PROPFLOW_API_URL", f"htp://admin:{C.CANARY_BEARER}@api.example"),
    ],
)
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


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", FIRST, "-p", "no_such_parameter", "1"], "unknown parameter"),
        (["run", FIRST, "--incident", "../../etc"], "incident id"),
    ],
)
def test_end_to_end_through_the_real_command(tmp_path, args, needle):
    env = {k: v for k, v in os.environ.items() if k != "PROPFLOW_NOTEBOOKS_DIR"}
    env["PROPFLOW_OUTPUT_DIR"] = str(tmp_path / "out")
    env["PROPFLOW_DATABASE_URL"] = "postgresql+psycopg://propflow:secret@127.0.0.1:1/propflow"
    r = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
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
    env = {
        **os.environ,
        **sandbox_env,
        "PROPFLOW_ALEMBIC_CONFIG": str(bad),
        "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out"),
    }
    r = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "run", "migration", "--no-html"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    folder = Path(r.stdout.strip().splitlines()[-1])
    ev = json.loads((folder / "evidence.json").read_text())
    assert ev["status"] != "error", f"the runbook crashed on a bad alembic.ini: {ev.get('error')}"
    assert r.returncode in (0, 1)
    statuses = {f["code"]: f["status"] for f in ev["findings"]}
    assert statuses.get("MIGRATION_PENDING") == "error", statuses


# ------------------------------------------------------------------ issue 14, item 5: every input checked
# Each case below was accepted (or crashed with a traceback) on the main of issue 14. The targets point at a
# closed loopback port, so a regression that lets one through runs against nothing and fails the test.


@pytest.fixture
def dead_targets(out, monkeypatch):
    dead = "http://127.0.0.1:9"
    for name in (
        "PROPFLOW_API_URL",
        "PROPFLOW_TWILIO_API_URL",
        "PROPFLOW_META_GRAPH_URL",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.setenv(name, dead)
    monkeypatch.setenv("PROPFLOW_DATABASE_URL", "postgresql+psycopg://u:pw@127.0.0.1:9/db")
    monkeypatch.setenv("PROPFLOW_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return out


def numeric(slug: str) -> list[tuple[str, str]]:
    return [
        (name, spec["type"].replace(" ", ""))
        for name, spec in notebook_parameters(RUNBOOKS[slug].path).items()
        if spec["type"].replace(" ", "") in ("int", "float")
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "0", "-1", "1e309", "86401"])
def test_a_budget_that_is_not_a_finite_positive_number(capsys, dead_targets, value):
    assert "--budget" in refused(capsys, dead_targets, FIRST, "--budget", value)


@pytest.mark.parametrize("slug", SLUGS)
def test_non_finite_numbers_in_any_float_parameter(capsys, dead_targets, slug):
    floats = [n for n, t in numeric(slug) if t == "float"]
    if not floats:
        pytest.skip(f"{slug} has no float parameter")
    for name in floats:
        for value in ("nan", "inf", "Infinity", "1e999"):
            line = refused(capsys, dead_targets, slug, "-p", name, value)
            assert name in line and "finite" in line, line


@pytest.mark.parametrize("slug", SLUGS)
def test_out_of_range_numbers(capsys, dead_targets, slug):
    """Percentages 0..100, durations and thresholds above 0, counts bounded: one rule per parameter."""
    from propflow_ops.inputs import number_rule

    params = [(n, t) for n, t in numeric(slug) if n not in COMMON_PARAMETERS]
    if not params:
        pytest.skip(f"{slug} has no numeric parameter")
    for name, kind in params:
        rule = number_rule(name)
        too_big = rule.high * 10 + 1
        line = refused(
            capsys, dead_targets, slug, "-p", name, str(int(too_big)) if kind == "int" else f"{too_big:g}"
        )
        assert name in line, line
        if rule.low_open or rule.low > 0:  # just below the range (0 for a duration, 0 days for an age)
            below = rule.low if rule.low_open else rule.low - (1 if kind == "int" else 0.5)
            assert name in refused(capsys, dead_targets, slug, "-p", name, f"{below:g}")


def test_a_memory_threshold_of_nan_or_above_100_is_refused(capsys, dead_targets):
    if "api-down" not in RUNBOOKS:
        pytest.skip("api-down does not exist")
    for value in ("nan", "150", "100.5"):
        assert "memory_threshold_pct" in refused(
            capsys, dead_targets, "api-down", "-p", "memory_threshold_pct", value
        )


def test_every_numeric_parameter_of_every_notebook_has_a_decided_range():
    from propflow_ops.inputs import has_rule

    missing = [f"{slug}:{name}" for slug in SLUGS for name, _ in numeric(slug) if not has_rule(name)]
    assert missing == [], f"numeric parameters without a range in propflow_ops/inputs.py: {missing}"


def _ago(**kw) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "now",
        "2026-11-26T03:00:00Z\n",
    ],
)
def test_started_at_outside_a_sane_range(capsys, dead_targets, value):
    assert "--started-at" in refused(capsys, dead_targets, FIRST, "--started-at", value)


@pytest.mark.parametrize("delta", [{"hours": -1}, {"minutes": -10}, {"days": 31}, {"days": 400}])
def test_started_at_in_the_future_or_long_ago(capsys, dead_targets, delta):
    assert "--started-at" in refused(capsys, dead_targets, FIRST, "--started-at", _ago(**delta))


@pytest.mark.parametrize(
    "incident",
    [
        "INC-7\n",
        "INC\t7",
        "INC-7\r",
        "INC\x1b[31m",
        "INC\u202e7",
        "INC\u200b7",
        "a" * 65,
        "a..b",
        "-INC",
        "INC 7",
        "INC/7",
        "INC\\7",
        "",
    ],
)
def test_incident_ids_outside_the_pattern(capsys, dead_targets, incident):
    if incident == "":
        pytest.skip("an empty id means a default one")
    assert "incident" in refused(capsys, dead_targets, FIRST, "--incident", incident)


@pytest.mark.parametrize("value", ["prod\n", "prod\x00", "pro\u202ed", "prod\x7f", "a\u2028b"])
def test_control_characters_in_string_parameters_and_options(capsys, dead_targets, value):
    name = next(
        (
            n
            for n, s in notebook_parameters(RUNBOOKS[FIRST].path).items()
            if s["type"] == "str" and n not in COMMON_PARAMETERS
        ),
        None,
    )
    assert name is not None
    assert name in refused(capsys, dead_targets, FIRST, "-p", name, value)
    assert "--severity" in refused(capsys, dead_targets, FIRST, "--severity", "P1\n")
    assert "--apply" in refused(capsys, dead_targets, FIRST, "--apply", "x\ny")


@pytest.mark.parametrize(
    "name,value",
    [
        ("PROPFLOW_REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("PROPFLOW_REDIS_URL", "redis://127.0.0.1:0/0"),
        ("PROPFLOW_REDIS_URL", "redis://127.0.0.1:70000/0"),
        ("PROPFLOW_REDIS_URL", "redis://127.0.0.1:6379/zero"),
        ("PROPFLOW_REDIS_URL", "http://127.0.0.1:6379/0"),
        ("PROPFLOW_REDIS_URL", "redis://:pw@/0"),
        ("PROPFLOW_DATABASE_URL", "postgresql+psycopg://u:pw@127.0.0.1:5x32/db"),
        ("PROPFLOW_DATABASE_URL", "mysql://u:pw@127.0.0.1:3306/db"),
        ("PROPFLOW_DATABASE_URL", "postgresql://u:pw@127.0.0.1:99999/db"),
        ("PROPFLOW_DATABASE_URL", "postgresql://u:pw@bad host/db"),
        ("PROPFLOW_API_URL", "http://127.0.0.1:8000\n"),
        ("PROPFLOW_API_URL", "http://127.0.0.1:-1"),
        ("PROPFLOW_API_URL", "http://exa mple.com"),
        ("PROPFLOW_API_URL", "javascript://x"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000x"),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:port"),
        ("PROPFLOW_TWILIO_API_URL", "https://api.twilio.com:443:1"),
        ("PROPFLOW_META_GRAPH_URL", "https://[::1/v19.0"),
    ],
)
def test_malformed_target_urls_before_the_kernel_starts(capsys, dead_targets, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert name in refused(capsys, dead_targets, FIRST)


@pytest.mark.parametrize(
    "value",
    [
        "redis://:p@ss@127.0.0.1:6379/0",
        "rediss://default:pw@cache.internal:6380",
        "unix:///tmp/redis.sock",
        "redis://[::1]:6379/0",
    ],
)
def test_well_formed_redis_urls_pass(value):
    from propflow_ops.inputs import REDIS, check_url

    assert check_url("PROPFLOW_REDIS_URL", value, REDIS) == value


@pytest.mark.parametrize(
    "value",
    [
        "postgresql+psycopg://u:p@ss@db.internal:5432/propflow",
        "postgresql://u@/propflow?host=/tmp/pg",
        "postgresql://u:pw@h1:5432,h2:5433/db",
        "postgres://u:pw@[::1]:5432/db",
    ],
)
def test_well_formed_database_urls_pass(value):
    from propflow_ops.inputs import POSTGRES, check_url

    assert check_url("PROPFLOW_DATABASE_URL", value, POSTGRES) == value


def test_a_bad_url_message_never_holds_its_password(capsys, dead_targets, monkeypatch):
    monkeypatch.setenv("PROPFLOW_REDIS_URL", f"redis://:{C.CANARY_REDIS_PASSWORD}@x@127.0.0.1:port/0")
    line = refused(capsys, dead_targets, FIRST)
    assert not find_canaries(line, "stderr") and "@x" not in line, line


def test_review_refuses_a_bad_incident_id(capsys, out):
    code = cli.main(["review", "INC-7\n"])
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


def test_a_relative_output_dir_is_resolved_against_the_callers_directory(tmp_path):
    """The kernel runs in notebooks/: ``--output-dir rel`` (and PROPFLOW_OUTPUT_DIR=rel) used to make the
    evidence land nowhere, so every run published ``error`` with zero findings."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nbtools import write_notebook

    nb = tmp_path / "nb"
    write_notebook(
        nb / "01_api_down.ipynb",
        "api-down",
        'from propflow_ops.findings import Finding\nev.add(Finding.fail("API_HEALTH_FAILING", "x"))',
        "ev.save()",
    )
    cwd = tmp_path / "caller"
    cwd.mkdir()
    env = {**os.environ, "PROPFLOW_NOTEBOOKS_DIR": str(nb)}
    env.pop("PROPFLOW_OUTPUT_DIR", None)
    for args, envvar in ((["--output-dir", "rel"], None), ([], "rel-env")):
        e = {**env, **({"PROPFLOW_OUTPUT_DIR": envvar} if envvar else {})}
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "propflow_ops.cli",
                "run",
                "api-down",
                "--incident",
                "REL",
                "--no-html",
                *args,
            ],
            capture_output=True,
            text=True,
            env=e,
            cwd=cwd,
            timeout=180,
        )
        folder = Path(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
        assert r.returncode == 1, r.stderr[-2000:]
        assert folder is not None and folder.is_absolute() and folder.parent.parent == cwd / (envvar or "rel")
        ev = json.loads((folder / "evidence.json").read_text())
        assert ev["status"] == "problems" and [f["code"] for f in ev["findings"]] == ["API_HEALTH_FAILING"]


def test_an_incident_named_in_a_parameter_follows_the_incident_pattern(capsys, dead_targets):
    if "post-incident" not in RUNBOOKS:
        pytest.skip("post-incident does not exist")
    for value in ("../INC", "INC 7", "a..b"):
        assert "review_incident" in refused(
            capsys, dead_targets, "post-incident", "-p", "review_incident", value
        )
