"""Canary secrets planted in the sandbox world.

Every value here is distinctive, so that a test can grep every output file for
it: none of them may ever appear in a report, a notebook output or a log the
tool writes. ``ALL_CANARIES`` lists the secrets and the PII (phone numbers, in
full) together.
"""

from __future__ import annotations

CANARY_DB_PASSWORD = "canary-dbpw-7f3a91c2"
CANARY_REDIS_PASSWORD = "canary-redispw-4b8e02d9"
CANARY_TWILIO_AUTH_TOKEN = "canary-twiliotok-c51d8e3a"
CANARY_WHATSAPP_TOKEN = "canary-watok-EAAG9f2e6b71"
CANARY_AWS_SECRET = "canary-awssecret-0d4c7e19b2"
CANARY_SECRET_KEY = "canary-django-sk-5e8a13f7"
CANARY_BEARER = "canary-bearer-eyJhbGciOi.a7c3e9f1"
CANARY_SLACK_TOKEN = "canary-slackhook-9d2f61ab"  # the secret part of the Slack stand-in's webhook URL
CANARY_PAGERDUTY_KEY = "canaryPDkey0123456789abcdef01234"  # 32 characters, as PagerDuty's are

TWILIO_ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
WHATSAPP_PHONE_NUMBER_ID = "109876543210987"

# PII: phone numbers written in full (a redacted form keeps at most the last digits).
CANARY_PHONE_IN = "+919999900001"
CANARY_PHONE_US = "+14155550123"
CANARY_PHONES: list[str] = [CANARY_PHONE_IN, CANARY_PHONE_US]

SECRET_CANARIES: list[str] = [
    CANARY_DB_PASSWORD,
    CANARY_REDIS_PASSWORD,
    CANARY_TWILIO_AUTH_TOKEN,
    CANARY_WHATSAPP_TOKEN,
    CANARY_AWS_SECRET,
    CANARY_SECRET_KEY,
    CANARY_BEARER,
    CANARY_SLACK_TOKEN,
    CANARY_PAGERDUTY_KEY,
]

ALL_CANARIES: list[str] = SECRET_CANARIES + CANARY_PHONES
