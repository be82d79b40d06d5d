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
    env = [{"name": "TWILIO_AUTH_TOKEN", "value": C.CANARY_TWILIO_AUTH_TOKEN},
           {"name": "WHATSAPP_TOKEN", "value": C.CANARY_WHATSAPP_TOKEN},
           {"name": "AWS_SECRET_ACCESS_KEY", "value": C.CANARY_AWS_SECRET},
           {"name": "SECRET_KEY", "value": C.CANARY_SECRET_KEY},
           {"name": "DATABASE_URL", "value": f"postgresql://propflow:{C.CANARY_DB_PASSWORD}@db:5432/propflow"},
           {"name": "S3_BUCKET", "value": "propflow-uploads"}]
    task_definition = {"containerDefinitions": [{"name": "api", "environment": env}]}
    out = redact(task_definition)
    text = json.dumps(out)
    assert not find_canaries(text, "redacted task definition"), text
    shown = {e["name"]: e["value"] for e in out["containerDefinitions"][0]["environment"]}
    assert shown["TWILIO_AUTH_TOKEN"] == "***" and shown["S3_BUCKET"] == "propflow-uploads"
    assert shown["DATABASE_URL"] == "postgresql://propflow:***@db:5432/propflow"
    assert not find_canaries(redact_text(json.dumps(task_definition)), "redacted text of it")


def test_harmless_text_survives():
    text = ("2026-11-26T03:00:00Z GET /health 200 in 45 ms; task arn:aws:ecs:us-east-1:123456789012:task/abc; "
            "user@example.com; {\"status\": \"ok\", \"count\": 3}")
    assert redact_text(text) == text
