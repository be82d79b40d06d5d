"""The team configuration file, ``propflow-ops.toml`` (CONTRACT.md section 2), read with ``tomllib``.

Where it is: ``--config FILE``, else ``$PROPFLOW_CONFIG``, else ``./propflow-ops.toml`` when present; no file
is fine (everything has a default). Which environment: ``--env NAME``, else ``$PROPFLOW_ENV``, else the
file's ``default_environment``, else none.

Sections (every key is validated; an unknown or ill-typed key is one line naming it, exit 2):

- ``default_environment = "prod"``
- ``[environments.NAME]``: ``aws_profile``, ``aws_region``, ``aws_endpoint_url``, ``api_url``,
  ``twilio_api_url``, ``meta_graph_url``, ``alembic_config``, ``output_dir``, ``lock_table`` (the DynamoDB
  table of the team-wide change lock; none: a local lock file), and by reference (the NAME of an
  environment variable that holds the secret URL) ``database_url_env``, ``redis_url_env``;
  ``[environments.NAME.parameters]``: resource names and thresholds, any parameter a runbook declares.
- ``[contacts.ROLE]``: the runbook document's On-Call Contacts: ``role``, ``name``, ``phone``, ``email``,
  ``slack`` (member id), ``pagerduty`` (user id).
- ``[notify.sns]`` ``topic_arn``, ``region``; ``[notify.slack]`` ``webhook_url_env``;
  ``[notify.pagerduty]`` ``routing_key_env``, ``events_url``. Secrets only by the name of an environment
  variable, never inline.
- ``[escalation]``: ``P0`` .. ``P3``, each a list of steps ``{after_min, action, contacts, channels}``; a
  severity not given keeps the default (:data:`propflow_ops.incident.DEFAULT_POLICY`).
- ``[logs]``: the log field mapping, a table handed as is to the log reader.
- ``[alarms]``: alarm name/pattern -> runbooks and severity (shape validated only; the worker uses it).

Precedence, highest first: options and ``-p``, environment variables, the chosen environment, defaults.
:func:`environment_overlay` gives the environment variables a chosen environment sets (only those not
already set), :func:`parameter_defaults` the notebook parameters (only those ``-p`` did not give).
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propflow_ops.incident import SEVERITIES, BadInput

CONFIG_ENV = "PROPFLOW_CONFIG"
ENV_NAME_ENV = "PROPFLOW_ENV"
DEFAULT_FILE = "propflow-ops.toml"
CHANNELS = ("sns", "slack", "pagerduty")

#: environment key -> the environment variable it sets (only when that variable is not set already).
ENVIRONMENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "aws_profile": ("AWS_PROFILE",),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_endpoint_url": ("AWS_ENDPOINT_URL",),
    "api_url": ("PROPFLOW_API_URL",),
    "twilio_api_url": ("PROPFLOW_TWILIO_API_URL",),
    "meta_graph_url": ("PROPFLOW_META_GRAPH_URL",),
    "alembic_config": ("PROPFLOW_ALEMBIC_CONFIG",),
    "output_dir": ("PROPFLOW_OUTPUT_DIR",),
    "lock_table": ("PROPFLOW_LOCK_TABLE",),
}
#: environment key -> the target variable filled from the environment variable the key names (secrets).
SECRET_REFERENCES: dict[str, str] = {
    "database_url_env": "PROPFLOW_DATABASE_URL",
    "redis_url_env": "PROPFLOW_REDIS_URL",
}
URL_KEYS = ("aws_endpoint_url", "api_url", "twilio_api_url", "meta_graph_url")
CONTACT_KEYS = ("role", "name", "phone", "email", "slack", "pagerduty")
#: run parameters that have their own options (--incident, --severity, ...): not settable per environment.
OPTION_PARAMETERS = (
    "incident_id",
    "severity",
    "started_at",
    "window_minutes",
    "apply",
    "confirm",
    "reason",
    "no_snapshot",
    "force",
)  # the last four: change control, per run only
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ConfigError(BadInput):
    """A key of the configuration file that cannot be used (one line, naming the key)."""


@dataclass(frozen=True)
class Environment:
    name: str
    settings: dict[str, str] = field(default_factory=dict)  # aws_region, api_url, database_url_env, ...
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Contact:
    key: str
    role: str
    name: str = ""
    phone: str = ""
    email: str = ""
    slack: str = ""
    pagerduty: str = ""

    def mention(self) -> str:
        """How a message names this person (no phone number: that is PII and stays in the file)."""
        who = self.name or "(no name)"
        return f"{self.role}: {who}" + (f" <@{self.slack}>" if self.slack else "")


@dataclass(frozen=True)
class Notify:
    sns_topic_arn: str = ""
    sns_region: str = ""
    slack_webhook_url_env: str = ""
    pagerduty_routing_key_env: str = ""
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"

    def configured(self) -> tuple[str, ...]:
        out = []
        if self.sns_topic_arn:
            out.append("sns")
        if self.slack_webhook_url_env:
            out.append("slack")
        if self.pagerduty_routing_key_env:
            out.append("pagerduty")
        return tuple(out)


@dataclass(frozen=True)
class StepConfig:
    after_min: float
    action: str
    contacts: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()  # empty: every configured channel


@dataclass(frozen=True)
class TeamConfig:
    path: Path | None = None
    environment: Environment | None = None
    environments: dict[str, Environment] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    notify: Notify = field(default_factory=Notify)
    escalation: dict[str, tuple[StepConfig, ...]] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What reports and evidence say about the configuration used (never a secret)."""
        return {
            "file": str(self.path) if self.path else None,
            "environment": self.environment.name if self.environment else None,
        }


# ---------------------------------------------------------------- finding and reading the file


def config_path(
    explicit: str | None = None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """``--config``, else ``$PROPFLOW_CONFIG``, else ``./propflow-ops.toml`` if present, else None."""
    env = os.environ if env is None else env
    given = explicit or env.get(CONFIG_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            source = "--config" if explicit else CONFIG_ENV
            raise ConfigError(f"{source} names a file that does not exist: {given}")
        return p.resolve()
    local = (cwd or Path.cwd()) / DEFAULT_FILE
    return local.resolve() if local.is_file() else None


def load(
    explicit: str | None = None,
    env_name: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> TeamConfig:
    """Find, read and validate the configuration; choose the environment. ConfigError on any bad key."""
    env = os.environ if env is None else env
    path = config_path(explicit, env, cwd)
    name = env_name or env.get(ENV_NAME_ENV) or None
    if path is None:
        if name:
            raise ConfigError(
                f"--env {name}: no configuration file (give --config, set {CONFIG_ENV}, or create "
                f"./{DEFAULT_FILE})"
            )
        return TeamConfig()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    key = (str(path), stamp, name or "")
    if key in _loaded:
        return _loaded[key]
    _loaded[key] = cfg = _load_file(path, name)
    return cfg


_loaded: dict[tuple[str, int, str], TeamConfig] = {}


def _load_file(path: Path, name: str | None) -> TeamConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    cfg = parse(raw, path)
    chosen = name or (raw.get("default_environment") or None)
    if chosen:
        if chosen not in cfg.environments:
            known = ", ".join(cfg.environments) or "none"
            raise ConfigError(f"environment {chosen!r} is not in {path} (environments: {known})")
        cfg = TeamConfig(
            path,
            cfg.environments[chosen],
            cfg.environments,
            cfg.contacts,
            cfg.notify,
            cfg.escalation,
            cfg.logs,
            cfg.alarms,
        )
    return cfg


def parse(raw: Mapping[str, Any], path: Path | None = None) -> TeamConfig:
    """Validate a parsed TOML document. Every key is known and typed, or ConfigError names it."""
    _keys(
        raw, "", ("default_environment", "environments", "contacts", "notify", "escalation", "logs", "alarms")
    )
    default_env = raw.get("default_environment")
    if default_env is not None:
        _str(default_env, "default_environment")
    environments = {
        name: _environment(name, value)
        for name, value in _table(raw.get("environments", {}), "environments").items()
    }
    if default_env is not None and default_env not in environments:
        raise ConfigError(
            f"default_environment: {default_env!r} is not one of [environments] "
            f"({', '.join(environments) or 'none'})"
        )
    contacts = {
        key: _contact(key, value) for key, value in _table(raw.get("contacts", {}), "contacts").items()
    }
    notify = _notify(_table(raw.get("notify", {}), "notify"))
    escalation = _escalation(_table(raw.get("escalation", {}), "escalation"), contacts, notify)
    logs = _logs(_table(raw.get("logs", {}), "logs"))
    alarms = _alarms(_table(raw.get("alarms", {}), "alarms"))
    return TeamConfig(path, None, environments, contacts, notify, escalation, logs, alarms)


# ---------------------------------------------------------------- sections


def _environment(name: str, value: Any) -> Environment:
    where = f"environments.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: an environment name holds letters, digits, '.', '_' and '-' only")
    table = _table(value, where)
    _keys(table, where, (*ENVIRONMENT_VARIABLES, *SECRET_REFERENCES, "parameters"))
    settings: dict[str, str] = {}
    for key, v in table.items():
        if key == "parameters":
            continue
        text = _str(v, f"{where}.{key}")
        if key in URL_KEYS:
            _url(text, f"{where}.{key}")
        if key in SECRET_REFERENCES:
            _env_var_name(text, f"{where}.{key}")
        settings[key] = text
    params = _parameters(_table(table.get("parameters", {}), f"{where}.parameters"), f"{where}.parameters")
    return Environment(name, settings, params)


@functools.lru_cache(maxsize=1)
def declared_parameters() -> dict[str, str]:
    """Every parameter some runbook declares -> its declared type (the first runbook that declares it)."""
    from propflow_ops.run.parameters import notebook_parameters
    from propflow_ops.runbooks import RUNBOOKS

    out: dict[str, str] = {}
    for rb in RUNBOOKS.values():
        if not rb.path.exists():
            continue
        for name, spec in notebook_parameters(rb.path).items():
            out.setdefault(name, str(spec["type"]).replace(" ", ""))
    return out


def _parameters(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not table:
        return {}
    declared = declared_parameters()
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{where}.{name}"
        if name in OPTION_PARAMETERS:
            raise ConfigError(f"{key}: {name} has its own option of `run`; it cannot be set per environment")
        if name not in declared:
            raise ConfigError(f"{key}: no runbook has a parameter {name!r}")
        out[name] = _typed(value, declared[name], key)
    return out


def _typed(value: Any, declared: str, key: str) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(declared)
    if ok is None:
        if declared.startswith("list") or declared in ("str|list", "list|str"):
            ok = isinstance(value, list) or (declared != "list" and isinstance(value, str))
        elif declared.startswith("dict"):
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, (str, int, float, bool, list))
    if not ok:
        raise ConfigError(f"{key} must be {declared}, not {type(value).__name__} {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{key} must not be negative, got {value}")
    return float(value) if declared == "float" else value


def _contact(key: str, value: Any) -> Contact:
    where = f"contacts.{key}"
    if not _NAME.match(key):
        raise ConfigError(f"{where}: a contact key holds letters, digits, '.', '_' and '-' only")
    table = _table(value, where)
    _keys(table, where, CONTACT_KEYS)
    fields = {k: _str(v, f"{where}.{k}") for k, v in table.items()}
    if fields.get("phone") and not re.fullmatch(r"\+?[0-9 ()\-]{6,24}", fields["phone"]):
        raise ConfigError(f"{where}.phone is not a phone number")
    if fields.get("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", fields["email"]):
        raise ConfigError(f"{where}.email is not an email address")
    return Contact(key=key, role=fields.pop("role", key), **fields)


def _notify(table: Mapping[str, Any]) -> Notify:
    _keys(table, "notify", CHANNELS)
    sns = _table(table.get("sns", {}), "notify.sns")
    slack = _table(table.get("slack", {}), "notify.slack")
    pd = _table(table.get("pagerduty", {}), "notify.pagerduty")
    _keys(sns, "notify.sns", ("topic_arn", "region"))
    _keys(slack, "notify.slack", ("webhook_url_env",))
    _keys(pd, "notify.pagerduty", ("routing_key_env", "events_url"))
    values: dict[str, str] = {}
    if "topic_arn" in sns:
        arn = _str(sns["topic_arn"], "notify.sns.topic_arn")
        if not re.fullmatch(r"arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?", arn):
            raise ConfigError(
                "notify.sns.topic_arn is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )
        values["sns_topic_arn"] = arn
    if "region" in sns:
        values["sns_region"] = _str(sns["region"], "notify.sns.region")
    if "webhook_url_env" in slack:
        values["slack_webhook_url_env"] = _env_var_name(
            _str(slack["webhook_url_env"], "notify.slack.webhook_url_env"), "notify.slack.webhook_url_env"
        )
    if "routing_key_env" in pd:
        values["pagerduty_routing_key_env"] = _env_var_name(
            _str(pd["routing_key_env"], "notify.pagerduty.routing_key_env"),
            "notify.pagerduty.routing_key_env",
        )
    if "events_url" in pd:
        values["pagerduty_events_url"] = _url(
            _str(pd["events_url"], "notify.pagerduty.events_url"), "notify.pagerduty.events_url"
        )
    return Notify(**values)


def _escalation(
    table: Mapping[str, Any], contacts: Mapping[str, Contact], notify: Notify
) -> dict[str, tuple[StepConfig, ...]]:
    _keys(table, "escalation", tuple(SEVERITIES))
    out: dict[str, tuple[StepConfig, ...]] = {}
    for sev, steps in table.items():
        where = f"escalation.{sev}"
        if not isinstance(steps, list):
            raise ConfigError(f"{where} must be a list of steps ({{after_min, action, contacts, channels}})")
        parsed = []
        for i, step in enumerate(steps):
            at = f"{where}[{i}]"
            s = _table(step, at)
            _keys(s, at, ("after_min", "action", "contacts", "channels"))
            if "after_min" not in s or "action" not in s:
                raise ConfigError(f"{at} needs after_min and action")
            after = s["after_min"]
            if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
                raise ConfigError(f"{at}.after_min must be a number of minutes >= 0, not {after!r}")
            action = _str(s["action"], f"{at}.action")
            if not action.strip():
                raise ConfigError(f"{at}.action must not be empty")
            who = _str_list(s.get("contacts", []), f"{at}.contacts")
            for c in who:
                if c not in contacts:
                    raise ConfigError(
                        f"{at}.contacts: {c!r} is not in [contacts] ({', '.join(contacts) or 'none'})"
                    )
            chans = _str_list(s.get("channels", []), f"{at}.channels")
            for c in chans:
                if c not in CHANNELS:
                    raise ConfigError(f"{at}.channels: {c!r} is not one of {', '.join(CHANNELS)}")
                if c not in notify.configured():
                    raise ConfigError(f"{at}.channels: {c!r} is not configured under [notify.{c}]")
            parsed.append(StepConfig(float(after), action.strip(), tuple(who), tuple(chans)))
        keys = [(p.after_min, p.action) for p in parsed]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{where}: two steps with the same after_min and action")
        out[sev] = tuple(sorted(parsed, key=lambda p: p.after_min))
    return out


def _alarms(table: Mapping[str, Any]) -> dict[str, Any]:
    """``[alarms.NAME]``: what it matches, ``name`` (the alarm's name, exact or a glob such as
    ``propflow-api-5xx-*``), ``pattern`` (a regular expression on the name), ``metric`` and ``namespace``
    (every key given must match; at least one is required), and what the worker then does: ``runbooks``
    (at least one) and ``severity`` (P0..P3, default the first runbook's)."""
    from propflow_ops.runbooks import RUNBOOKS

    for name, value in table.items():
        where = f"alarms.{name}"
        a = _table(value, where)
        _keys(a, where, ("name", "pattern", "metric", "namespace", "runbooks", "severity"))
        for k in ("name", "pattern", "metric", "namespace"):
            if k in a:
                _str(a[k], f"{where}.{k}")
        if "pattern" in a:
            try:
                re.compile(a["pattern"])
            except re.error as exc:
                raise ConfigError(f"{where}.pattern is not a regular expression: {exc}") from None
        for slug in _str_list(a.get("runbooks", []), f"{where}.runbooks"):
            if slug not in RUNBOOKS:
                raise ConfigError(f"{where}.runbooks: unknown runbook {slug!r}")
        if "severity" in a and _str(a["severity"], f"{where}.severity") not in SEVERITIES:
            raise ConfigError(f"{where}.severity must be one of {', '.join(SEVERITIES)}")
        if not any(k in a for k in ("name", "pattern", "metric", "namespace")):
            raise ConfigError(
                f"{where}: give at least one of name, pattern, metric, namespace (what it matches)"
            )
        if not a.get("runbooks"):
            raise ConfigError(f"{where}.runbooks: name at least one runbook to run on this alarm")
    return dict(table)


# ---------------------------------------------------------------- applying it


def environment_overlay(cfg: TeamConfig, env: Mapping[str, str], *, secrets: bool = True) -> dict[str, str]:
    """The variables the chosen environment sets: only those ``env`` does not set (environment variables win).

    A ``*_url_env`` reference is resolved here (``secrets``); a referenced variable that is not set is a
    ConfigError. Commands that reach no target (``incident``, ``escalate``) pass ``secrets=False``."""
    if cfg.environment is None:
        return {}
    out: dict[str, str] = {}
    where = f"environments.{cfg.environment.name}"
    for key, value in cfg.environment.settings.items():
        if key in SECRET_REFERENCES:
            target = SECRET_REFERENCES[key]
            if env.get(target) or not secrets:
                continue
            secret = env.get(value)
            if not secret:
                raise ConfigError(f"{where}.{key} names {value}, which is not set in the environment")
            out[target] = secret
            continue
        names = ENVIRONMENT_VARIABLES[key]
        if not any(
            env.get(var) for var in names
        ):  # AWS_REGION or AWS_DEFAULT_REGION set: the environment wins
            out.update({var: value for var in names})
    return out


def _logs(table: Mapping[str, Any]) -> dict[str, Any]:
    """``[logs]``: the team's log dialect mapping (keys of ``sources.logmapping.mapping_from_dict``), validated."""
    from propflow_ops.sources.logmapping import LogMappingError, mapping_from_dict

    logs = dict(table)
    try:
        mapping_from_dict(logs)
    except LogMappingError as exc:
        raise ConfigError(str(exc).replace("log_mapping", "logs", 1)) from None
    return logs


def parameter_defaults(
    cfg: TeamConfig, declared: Mapping[str, Any], given: set[str]
) -> list[tuple[str, str]]:
    """The chosen environment's parameters this notebook declares and ``-p`` did not give, as -p pairs;
    ``[logs]`` becomes ``log_mapping`` (JSON) for a notebook that reads logs."""
    out = []
    if cfg.logs and "log_mapping" in declared and "log_mapping" not in given:
        import json

        out.append(("log_mapping", json.dumps(cfg.logs)))
    if cfg.environment is None:
        return out
    for name, value in cfg.environment.parameters.items():
        if name in declared and name not in given:
            out.append((name, _raw(value)))
    return out


def _raw(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return repr(value)
    return str(value)


def secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable a ``*_env`` key names (None when it is not set)."""
    env = os.environ if env is None else env
    return env.get(name) or None


# ---------------------------------------------------------------- small validators


def _keys(table: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            full = f"{where}.{key}" if where else key
            raise ConfigError(f"unknown key {full} (known here: {', '.join(allowed)})")


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, not {type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {type(value).__name__} {value!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return list(value)


def _url(value: str, where: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        _ = parts.port  # a bad port raises ValueError
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError(
            f"{where} holds credentials: put secrets in an environment variable, not in the file"
        )
    return value


def _env_var_name(value: str, where: str) -> str:
    if not _ENV_VAR.match(value):
        raise ConfigError(
            f"{where} must be the NAME of an environment variable (the secret stays out of the "
            "file), not a value"
        )
    return value
