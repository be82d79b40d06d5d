"""Masking of secrets and PII before anything is displayed or written.

Rules:
- a value under a secret-looking key (password, token, secret, key, auth,
  credential, DATABASE_URL's password part...) is replaced by ``"***"``;
- URL userinfo is masked whole, up to the last ``@`` before the host, for any scheme
  (``scheme://user:***@host``; ``scheme://***@host`` when it has no ``:``), also in free text and tracebacks;
- URL query and fragment values of secret-looking names (``?api_key=``, ``&token=``, ``X-Amz-Signature``,
  ``X-Amz-Credential``, ``sig``, ``#access_token=``...) become ``***``;
- bearer tokens, AWS secret keys and long token-looking strings in free text are masked;
- phone numbers keep their last 2 digits (``+91********01``).

``redact`` walks dicts/lists; ``redact_text`` works on one string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Keys whose values are secret whatever they look like.
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|credential|"
    r"session[_-]?key|signature|cookie|^key$|_key$|dsn)",
    re.I,
)
# Keys that are URLs or names we keep, only masking what is inside.
_URL_KEY = re.compile(r"(url|uri|endpoint|host)$", re.I)
_NOT_SECRET_KEY = re.compile(r"^(ws_token_set|auth_ok|token_valid|.*_present|.*_configured|.*_count)$", re.I)

# Userinfo of a URL, masked whole: it ends at the LAST "@" of the URL's text before its host (a password may
# hold "@", "/", "?", "#" or ":"), so a password is never cut in two. ``user:`` is kept when there is a
# password; a userinfo without ":" (``https://TOKEN@host``) is masked entirely. Any scheme; also the
# malformed ``user:password@host`` without "://". Done per token (a run of characters without white space,
# quotes or angle brackets) in linear time: a regular expression that scans to the last "@" from every
# candidate start is quadratic on long tokens.
_TOKEN = re.compile(r"[^\s'\"<>`]+")
_HOST_START = re.compile(r"[A-Za-z0-9\[_%\-/]")
_USERINFO_START = re.compile(r"(?:^|(?<=[/=(]))[A-Za-z0-9._%+\-]*:(?!//)")
# A query or fragment value whose name looks secret (?api_key=, &X-Amz-Signature=, #access_token=, ;sig=).
_QUERY_SECRET = re.compile(r"(?P<pre>[?&;#](?P<name>[A-Za-z0-9_.\-]+)=)(?P<val>[^&#;\s'\"<>`]+)")
_QUERY_SECRET_PARTS = (
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "signature",
    "credential",
    "auth",
    "session",
    "cookie",
    "otp",
    "jwt",
    "nonce",
)
_QUERY_SECRET_NAMES = frozenset({"sig", "pass", "pw", "code", "hmac"})
_BEARER = re.compile(r"(?P<pre>\b(?:bearer|token|basic)\s+)(?P<tok>[A-Za-z0-9._~+/=\-]{8,})", re.I)
# key=value / key: value whose key holds a secret word. The key is matched whole and possessively, from the
# start of a run of key characters only, and the word looked for in it afterwards: a pattern that searched for
# the word inside ``[\w.-]*`` from every start was cubic on a long dotted token (a DoS of the redaction).
_KV_SECRET = re.compile(
    r"(?P<pre>(?<![\w.\-])(?P<key>[\w.\-]++)[\"']?\s*+[=:]\s*+[\"']?)(?P<val>[^\s\"',;&]++)"
)
_KV_SECRET_WORD = re.compile(r"password|passwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?token", re.I)
# ECS/SSM-style {"name": "TWILIO_AUTH_TOKEN", "value": "..."} printed as text.
_NAME_VALUE = re.compile(
    r"(?P<pre>[\"']name[\"']\s*:\s*[\"'](?P<key>[\w.\-]+)[\"']\s*,\s*[\"']value[\"']\s*:\s*[\"'])(?P<val>[^\"']*)",
    re.I,
)
# A phone number URL-encoded in a query string (To=%2B14155550123).
_PHONE_URLENCODED = re.compile(r"%2B(?P<digits>\d{10,15})(?!\d)", re.I)
# Long opaque tokens: JWTs, Meta EAA tokens, AWS secret access keys, hex/base64 blobs.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\b")
_META = re.compile(r"\bEAA[A-Za-z0-9]{20,}\b")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Phone numbers: E.164 or 10+ digit runs (with optional separators). Keep the last 2 digits.
_PHONE = re.compile(r"(?<![\w.:/\-])(?<!account )\+?\d(?:[\s\-().]?\d){9,14}(?![\w])")
# ISO timestamps and similar digit runs we must not treat as phone numbers.
_DATEISH = re.compile(r"^\d{4}-\d{2}-\d{2}")


def mask_phone(number: str) -> str:
    digits = [c for c in number if c.isdigit()]
    if len(digits) < 4:
        return number
    prefix = "+" if number.strip().startswith("+") else ""
    cc = "".join(digits[:2]) if prefix else ""
    hidden = len(digits) - len(cc) - 2
    return f"{prefix}{cc}{'*' * hidden}{''.join(digits[-2:])}"


def _phone_sub(m: re.Match[str]) -> str:
    text = m.group(0)
    if _DATEISH.match(text) or len(set(c for c in text if c.isdigit())) <= 1 and len(text) > 12:
        return text
    return mask_phone(text)


def redact_text(text: str) -> str:
    """Mask secrets and phone numbers in free text."""
    if not text or not isinstance(text, str):
        return text
    out = _TOKEN.sub(_mask_userinfo, text) if "@" in text else text
    out = _QUERY_SECRET.sub(_query_sub, out)
    out = _BEARER.sub(lambda m: m.group("pre") + MASK, out)
    out = _NAME_VALUE.sub(
        lambda m: (
            m.group("pre") + (MASK if m.group("val") and is_secret_key(m.group("key")) else m.group("val"))
        ),
        out,
    )
    out = _KV_SECRET.sub(
        lambda m: m.group("pre") + MASK if _KV_SECRET_WORD.search(m.group("key")) else m.group(0), out
    )
    out = _JWT.sub(MASK, out)
    out = _META.sub(MASK, out)
    out = _AWS_SECRET.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), out)
    out = _PHONE_URLENCODED.sub(lambda m: "%2B" + mask_phone("+" + m.group("digits"))[1:], out)
    out = _PHONE.sub(_phone_sub, out)
    return out


def _mask_userinfo(m: re.Match[str]) -> str:
    token = m.group(0)
    at = token.rfind("@")
    while at > 0 and not _HOST_START.match(token, at + 1):
        at = token.rfind("@", 0, at)
    if at <= 0:
        return token
    sep = token.find("://", 0, at)
    begin = sep
    while begin > 0 and (token[begin - 1].isalnum() or token[begin - 1] in "+.-"):
        begin -= 1
    if sep > 0 and begin < sep and token[begin].isalpha():
        start = sep + 3
        info = token[start:at]
        if not info or info == MASK:
            return token
        user, colon, password = info.partition(":")
        if colon and "@" not in user and "/" not in user:
            masked = f"{user}:{MASK if password else ''}"
        else:
            masked = MASK
        return token[:start] + masked + token[at:]
    # no "://": user:password@host, the user part starting the token or after "/", "=" or "(".
    found = _USERINFO_START.search(token, 0, at)
    if found is None:
        return token
    rest = token[found.end() : at]
    return token[: found.end()] + MASK + token[at:] if rest and rest != MASK else token


def is_secret_query_name(name: str) -> bool:
    """A URL query/fragment parameter whose value is a secret (api_key, token, X-Amz-Signature, sig...)."""
    low = name.lower()
    return low in _QUERY_SECRET_NAMES or any(part in low for part in _QUERY_SECRET_PARTS)


def _query_sub(m: re.Match[str]) -> str:
    return m.group("pre") + MASK if is_secret_query_name(m.group("name")) else m.group(0)


def _looks_random(s: str) -> bool:
    has_upper = any(c.isupper() for c in s)
    has_lower = any(c.islower() for c in s)
    has_digit = any(c.isdigit() for c in s)
    return has_upper and has_lower and has_digit and "/" not in s[:1]


def is_secret_key(key: str) -> bool:
    if _NOT_SECRET_KEY.match(key) or _URL_KEY.search(key):
        return False
    return bool(_SECRET_KEY.search(key))


def _is_aws_account(key: str, value: Any) -> bool:
    return (
        key.lower().endswith(("aws_account", "account_id"))
        and isinstance(value, str)
        and value.isdigit()
        and len(value) == 12
    )


def redact(value: Any, key: str | None = None) -> Any:
    """Recursively mask secrets in a JSON-like value. ``key`` is the name it is stored under."""
    if key is not None and _is_aws_account(key, value):
        return value  # the account id tells production from the sandbox: never masked as a phone number
    if key is not None and is_secret_key(key) and value not in (None, "", [], {}):
        if isinstance(value, bool):
            return value
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        out = {k: redact(v, str(k)) for k, v in value.items()}
        for name_key, value_key in (("name", "value"), ("Name", "Value")):  # ECS environment, SSM parameters
            name = value.get(name_key)
            if (
                isinstance(name, str)
                and value_key in out
                and is_secret_key(name)
                and value[value_key] not in (None, "")
            ):
                out[value_key] = MASK
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
