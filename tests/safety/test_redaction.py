"""2 (continued). The canaries in the forms they take in the wild, through the masking every output
passes: free text (log lines, error messages, printed JSON) and structures (task definitions)."""

from __future__ import annotations

import json

import pytest

from propflow_ops.redact import redact, redact_text
from propflow_ops.sandbox import canaries as C

from .harness import find_canaries

TEXTS = [
    f'{{"password": "{C.CANARY_DB_PASSWORD}"}}',
    f"{{'password': '{C.CANARY_DB_PASSWORD}'}}",
    f"password={C.CANARY_DB_PASSWORD}",
    f"DATABASE_URL=postgresql://propflow:{C.CANARY_DB_PASSWORD}@h:5432/db",
    f"postgresql//propflow:{C.CANARY_DB_PASSWORD}@db.internal/propflow",
    f"redis://default:{C.CANARY_REDIS_PASSWORD}@h:6379",
    f"rediss://:{C.CANARY_REDIS_PASSWORD}@h:6379/0",
    f"Authorization: Bearer {C.CANARY_BEARER}",
    f'"Authorization": "Bearer {C.CANARY_BEARER}"',
    f"TWILIO_AUTH_TOKEN: {C.CANARY_TWILIO_AUTH_TOKEN}",
    f'"TWILIO_AUTH_TOKEN": "{C.CANARY_TWILIO_AUTH_TOKEN}"',
    f'{{"name": "TWILIO_AUTH_TOKEN", "value": "{C.CANARY_TWILIO_AUTH_TOKEN}"}}',
    f"{{'name': 'WHATSAPP_TOKEN', 'value': '{C.CANARY_WHATSAPP_TOKEN}'}}",
    f"access_token={C.CANARY_WHATSAPP_TOKEN}&x=1",
    f"AWS_SECRET_ACCESS_KEY={C.CANARY_AWS_SECRET}",
    f'"SECRET_KEY": "{C.CANARY_SECRET_KEY}"',
    f"sent to whatsapp:{C.CANARY_PHONE_IN}",
    f'"to": "{C.CANARY_PHONE_US}"',
    f"GET /2010-04-01/Accounts/AC1/Messages.json?To=%2B{C.CANARY_PHONE_US[1:]}&PageSize=50",
    f"phone {C.CANARY_PHONE_IN[1:]} ok",
]


@pytest.mark.parametrize("text", TEXTS)
def test_free_text_loses_every_canary(text):
    out = redact_text(text)
    assert not find_canaries(out, "redacted"), out


def test_an_ecs_environment_keeps_names_and_masks_secret_values():
    env = [
        {"name": "TWILIO_AUTH_TOKEN", "value": C.CANARY_TWILIO_AUTH_TOKEN},
        {"name": "WHATSAPP_TOKEN", "value": C.CANARY_WHATSAPP_TOKEN},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": C.CANARY_AWS_SECRET},
        {"name": "SECRET_KEY", "value": C.CANARY_SECRET_KEY},
        {"name": "DATABASE_URL", "value": f"postgresql://propflow:{C.CANARY_DB_PASSWORD}@db:5432/propflow"},
        {"name": "S3_BUCKET", "value": "propflow-uploads"},
    ]
    task_definition = {"containerDefinitions": [{"name": "api", "environment": env}]}
    out = redact(task_definition)
    text = json.dumps(out)
    assert not find_canaries(text, "redacted task definition"), text
    shown = {e["name"]: e["value"] for e in out["containerDefinitions"][0]["environment"]}
    assert shown["TWILIO_AUTH_TOKEN"] == "***" and shown["S3_BUCKET"] == "propflow-uploads"
    assert shown["DATABASE_URL"] == "postgresql://propflow:***@db:5432/propflow"
    assert not find_canaries(redact_text(json.dumps(task_definition)), "redacted text of it")


def test_harmless_text_survives():
    text = (
        "2026-11-26T03:00:00Z GET /health 200 in 45 ms; task arn:aws:ecs:us-east-1:123456789012:task/abc; "
        'user@example.com; {"status": "ok", "count": 3}'
    )
    assert redact_text(text) == text


# ------------------------------------------------------------------ issue 14, item 4: userinfo and query values
SECRET = "Sup3r-S3cret"
# Passwords that hold '@' (and the other characters a naive pattern stops at), under every scheme.
PASSWORDS = [
    f"p@ss{SECRET}",
    f"{SECRET}@x@y",
    f"a:b{SECRET}",
    f"pa/ss{SECRET}",
    f"{SECRET}?#frag",
    f"{SECRET}%40z",
]
SCHEMES = [
    "http",
    "https",
    "postgresql+psycopg",
    "postgres",
    "redis",
    "rediss",
    "amqp",
    "mongodb+srv",
    "s3",
    "ftp",
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("password", PASSWORDS)
def test_url_userinfo_is_masked_whole_up_to_the_last_at(scheme, password):
    url = f"{scheme}://admin:{password}@host.internal:5432/db?x=1"
    for text in (
        url,
        f"connect to {url} failed",
        f"'{url}'",
        f'{{"url": "{url}"}}',
        f'<a href="{url}">x</a>',
        f"ValueError: cannot parse {url!r}",
        f"\x1b[0;31mOperationalError\x1b[0m: {url}",
    ):
        out = redact_text(text)
        assert SECRET not in out, out
        assert "host.internal" in out, out  # the host is still shown


@pytest.mark.parametrize("userinfo", [f"ghp_{SECRET}", f"{SECRET}@x"])
def test_a_userinfo_without_a_colon_is_masked_too(userinfo):
    out = redact_text(f"https://{userinfo}@github.example/org/repo.git")
    assert SECRET not in out and "github.example" in out, out


def test_a_traceback_line_split_by_colour_codes_still_loses_the_password():
    from propflow_ops.run.mask import redact_coloured

    line = f"\x1b[0;32m'postgresql://u:p@ss\x1b[0m\x1b[0;32m{SECRET}@db:5432/x'\x1b[0m"
    assert SECRET not in redact_coloured(line)


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apikey",
        "apiKey",
        "key",
        "token",
        "access_token",
        "id_token",
        "secret",
        "client_secret",
        "password",
        "pass",
        "pwd",
        "signature",
        "Signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "sig",
        "auth",
        "authorization",
        "AWSAccessKeyId",
        "session",
        "code",
    ],
)
@pytest.mark.parametrize("where", ["?{n}={v}", "?a=1&{n}={v}&b=2", "#{n}={v}", "?a=1;{n}={v}", "#x&{n}={v}"])
def test_query_and_fragment_values_of_secret_looking_names_are_masked(name, where):
    url = "https://api.example.com/v1/thing" + where.format(n=name, v=SECRET)
    for text in (url, f"GET {url} -> 403", f"'{url}'", json.dumps({"next": url}), url.replace("&", "&amp;")):
        out = redact_text(text)
        assert SECRET not in out, out
        assert "api.example.com" in out


def test_harmless_query_values_survive():
    url = "https://api.example.com/v1/photos?page=2&limit=50&region=us-east-1#section"
    assert redact_text(url) == url


def test_a_password_with_at_never_reaches_the_reports(tmp_path):
    """End to end: PROPFLOW_API_URL with an '@' in its password, printed by a cell and in an error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nbtools import write_notebook

    url = f"http://admin:p@ss@{SECRET}@127.0.0.1:9/api?api_key={SECRET}&X-Amz-Signature={SECRET}"
    nb = tmp_path / "nb"
    write_notebook(
        nb / "01_api_down.ipynb",
        "api-down",
        "import os\nprint(os.environ['PROPFLOW_API_URL'])",
        "from propflow_ops.findings import Finding\n"
        "ev.add(Finding.fail('API_HEALTH_FAILING', 'down', os.environ['PROPFLOW_API_URL']))",
        "ev.save()",
        "raise RuntimeError(os.environ['PROPFLOW_API_URL'])",
    )
    env = {
        **os.environ,
        "PROPFLOW_NOTEBOOKS_DIR": str(nb),
        "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out"),
        "PROPFLOW_API_URL": url,
    }
    r = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "run", "api-down", "--incident", "AT"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"report.ipynb", "report.html", "evidence.json"}
    for p in files:
        assert SECRET not in p.read_text(errors="replace"), f"{p.name} holds the secret"
    assert SECRET not in r.stdout + r.stderr


@pytest.mark.parametrize(
    "shape",
    [
        "a/b:c",
        "x=y:z@",
        "http://a:b",
        "/k:v",
        "a:b@",
        "?key=1&",
        "a.",
        "a-",
        "token=",
        "h://",
        "password:",
    ],
)
def test_masking_stays_linear_on_long_hostile_tokens(shape):
    """A 100 KB log line built to make a backtracking pattern explode (one took 25 s, one minutes): the
    masking runs outside the kernel's watchdog, so it must stay fast. Generous bound: 5 s."""
    import time

    text = shape * (100_000 // len(shape)) + "@h"
    t0 = time.monotonic()
    redact_text(text)
    assert time.monotonic() - t0 < 5, f"{shape!r}: {time.monotonic() - t0:.1f} s"
