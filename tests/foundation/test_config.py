"""The team configuration file (propflow_ops.config): validation, discovery, precedence. No kernel, no sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from propflow_ops import cli, config
from propflow_ops import run_context as rc
from propflow_ops.incident import policy_from_config
from propflow_ops.run.parameters import build_parameters
from propflow_ops.run.request import RunRequest
from propflow_ops.runbooks import RUNBOOKS

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "propflow-ops.example.toml"


def write(tmp_path: Path, text: str, name: str = "team.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_the_shipped_example_validates_and_says_what_it_sets():
    cfg = config.load(str(EXAMPLE), env={})
    assert cfg.describe() == {"file": str(EXAMPLE.resolve()), "environment": "prod"}
    assert cfg.environment is not None and cfg.environment.parameters["cluster"] == "propflow-prod"
    assert isinstance(cfg.environment.parameters["memory_threshold_pct"], float)
    assert set(cfg.contacts) == {"primary-on-call", "engineering-lead", "cto"}
    assert cfg.notify.configured() == ("sns", "slack", "pagerduty")
    policy = policy_from_config(cfg)
    assert [s.action for s in policy.for_severity("P2")] == [
        "Notify on-call engineer",
        "Notify engineering lead (response overdue)",
    ]
    assert [s.action for s in policy.for_severity("P0")][0] == "Notify on-call engineer"  # default kept
    assert "team configuration propflow-ops.example.toml for P2" in policy.describe()
    staging = config.load(str(EXAMPLE), "staging", env={})
    assert staging.describe()["environment"] == "staging"


BAD = [
    ("colour = 1", "unknown key colour"),
    ("[environments.prod]\nregion = 'x'", "unknown key environments.prod.region"),
    ("[environments.prod]\naws_region = 5", "environments.prod.aws_region must be a string"),
    ("[environments.prod]\napi_url = 'ftp://x'", "environments.prod.api_url is not an http(s) URL"),
    (
        "[environments.prod]\napi_url = 'https://u:pw@api.example.com'",
        "environments.prod.api_url holds credentials",
    ),
    ("[environments.prod.parameters]\nclustr = 'x'", "environments.prod.parameters.clustr: no runbook has"),
    (
        "[environments.prod.parameters]\nmemory_threshold_pct = 'high'",
        "environments.prod.parameters.memory_threshold_pct must be float",
    ),
    (
        "[environments.prod.parameters]\nhealth_retries = 1.5",
        "environments.prod.parameters.health_retries must be int",
    ),
    (
        "[environments.prod.parameters]\nseverity = 'P0'",
        "environments.prod.parameters.severity: severity has its own",
    ),
    (
        "[environments.prod]\ndatabase_url_env = 'postgresql://u:p@h/db'",
        "environments.prod.database_url_env must be the NAME of an environment variable",
    ),
    ("default_environment = 'prd'\n[environments.prod]", "default_environment: 'prd' is not one of"),
    ("[contacts.cto]\nnam = 'x'", "unknown key contacts.cto.nam"),
    ("[contacts.cto]\nphone = 'call me'", "contacts.cto.phone is not a phone number"),
    (
        "[notify.slack]\nwebhook_url_env = 'https://hooks.slack.com/services/T/B/x'",
        "notify.slack.webhook_url_env must be the NAME",
    ),
    ("[notify.slack]\nwebhook_url = 'x'", "unknown key notify.slack.webhook_url"),
    ("[notify.sns]\ntopic_arn = 'propflow'", "notify.sns.topic_arn is not an SNS topic ARN"),
    ("[notify]\nemail = {}", "unknown key notify.email"),
    ("[escalation]\nP5 = []", "unknown key escalation.P5"),
    ("[escalation]\nP1 = [{after_min = -1, action = 'x'}]", "escalation.P1[0].after_min must be a number"),
    ("[escalation]\nP1 = [{action = 'x'}]", "escalation.P1[0] needs after_min and action"),
    (
        "[escalation]\nP1 = [{after_min = 5, action = 'x', contacts = ['nobody']}]",
        "escalation.P1[0].contacts: 'nobody' is not in [contacts]",
    ),
    (
        "[escalation]\nP1 = [{after_min = 5, action = 'x', channels = ['slack']}]",
        "escalation.P1[0].channels: 'slack' is not configured",
    ),
    ("[escalation]\nP1 = [{after_min = 5, action = 'x', when = 1}]", "unknown key escalation.P1[0].when"),
    ("logs = 'json'", "logs must be a table"),
    ("[alarms.a]\nrunbooks = ['nope']", "alarms.a.runbooks: unknown runbook 'nope'"),
    ("[alarms.a]\nseverity = 'P9'", "alarms.a.severity must be one of"),
    ("[alarms.a]\npattern = '('", "alarms.a.pattern is not a regular expression"),
    ("[environments.prod", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(" ")[0] if " " in m else m for _, m in BAD])
def test_every_bad_key_is_one_line_naming_it(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(str(p), env={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_config_stops_run_with_exit_2_one_line_and_nothing_written(tmp_path, capsys):
    p = write(tmp_path, "[contacts.cto]\nnam = 'x'\n")
    out = tmp_path / "out"
    code = cli.main(["run", "triage", "--incident", "INC-1", "--config", str(p), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "contacts.cto.nam" in err
    assert not out.exists()
    assert cli.main(["run", "triage", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    good = write(tmp_path, "[environments.prod]\n", "good.toml")
    assert cli.main(["escalate", "INC-1", "--config", str(good), "--env", "nope"]) == 2
    assert "environment 'nope' is not in" in capsys.readouterr().err


def test_discovery_option_then_variable_then_working_folder(tmp_path):
    a = write(tmp_path, "[environments.a]\n", "a.toml")
    b = write(tmp_path, "[environments.b]\n", "b.toml")
    write(tmp_path, "[environments.cwd]\n", config.DEFAULT_FILE)
    assert config.config_path(str(a), {config.CONFIG_ENV: str(b)}, tmp_path) == a.resolve()
    assert config.config_path(None, {config.CONFIG_ENV: str(b)}, tmp_path) == b.resolve()
    assert config.config_path(None, {}, tmp_path) == (tmp_path / config.DEFAULT_FILE).resolve()
    assert config.config_path(None, {}, tmp_path / "nowhere") is None
    assert config.load(None, None, {}, tmp_path / "nowhere").describe() == {"file": None, "environment": None}
    with pytest.raises(config.ConfigError, match="no configuration file"):
        config.load(None, "prod", {}, tmp_path / "nowhere")


TEAM = """
default_environment = "prod"
[environments.prod]
aws_region = "ap-south-1"
api_url = "https://api.prod.example"
database_url_env = "TEAM_DB_URL"
[environments.prod.parameters]
cluster = "team-cluster"
service = "team-api"
memory_threshold_pct = 75
"""


def test_precedence_options_then_environment_variables_then_the_environment_then_defaults(
    tmp_path, monkeypatch
):
    p = write(tmp_path, TEAM)
    for var in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "PROPFLOW_API_URL",
        "PROPFLOW_DATABASE_URL",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEAM_DB_URL", "postgresql://app:s3cret@db.internal/propflow")
    monkeypatch.setenv(
        "PROPFLOW_API_URL", "https://api.from-env.example"
    )  # an environment variable beats the file
    rb = RUNBOOKS["api-down"]
    req = RunRequest(slug="api-down", params=[("service", "from-option")], env={config.CONFIG_ENV: str(p)})
    prepared = rc.prepare(req, rb)
    params = build_parameters(rb, prepared)
    assert params["service"] == "from-option"  # -p beats the environment
    assert params["cluster"] == "team-cluster"  # the environment beats the default
    assert params["memory_threshold_pct"] == 75.0
    assert "log_group" not in params  # not in the file: the notebook's own default applies
    assert prepared.env["AWS_REGION"] == "ap-south-1" and prepared.env["AWS_DEFAULT_REGION"] == "ap-south-1"
    assert "PROPFLOW_API_URL" not in prepared.env
    assert prepared.env["PROPFLOW_DATABASE_URL"] == "postgresql://app:s3cret@db.internal/propflow"
    assert prepared.env[config.CONFIG_ENV] == str(p.resolve()) and prepared.env[config.ENV_NAME_ENV] == "prod"
    # a runbook that does not declare a parameter of the environment does not get it
    assert "memory_threshold_pct" not in build_parameters(
        RUNBOOKS["notifications"],
        rc.prepare(
            RunRequest(slug="notifications", env={config.CONFIG_ENV: str(p)}), RUNBOOKS["notifications"]
        ),
    )
    monkeypatch.setenv(
        "AWS_DEFAULT_REGION", "eu-west-1"
    )  # either region variable set: the file does not apply
    assert "AWS_REGION" not in rc.prepare(req, rb).env
    monkeypatch.delenv("TEAM_DB_URL")
    with pytest.raises(config.ConfigError, match="database_url_env names TEAM_DB_URL, which is not set"):
        rc.prepare(req, rb)


def test_no_configuration_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.delenv(config.ENV_NAME_ENV, raising=False)
    req = RunRequest(slug="api-down")
    assert rc.prepare(req, RUNBOOKS["api-down"]) is req
    assert os.environ.get(config.CONFIG_ENV) is None


def test_readme_shows_the_complete_example(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    assert block == EXAMPLE.read_text(encoding="utf-8")
    assert config.load(str(write(tmp_path, block)), env={}).describe()["environment"] == "prod"
