"""WhatsApp Cloud API (Meta Graph): the business phone number's status, quality rating and token validity.

Settings from the environment (CONTRACT 2): ``WHATSAPP_TOKEN``,
``WHATSAPP_PHONE_NUMBER_ID`` and ``PROPFLOW_META_GRAPH_URL`` (default
``https://graph.facebook.com/v21.0``). One GET on the phone number object tells
all three things: a 401 with OAuthException code 190 means the token is invalid
or expired; otherwise the answer carries ``status`` and ``quality_rating``.

Fetch only (no thresholds); never raises for network or API failures: :func:`phone_number` returns a
:class:`~propflow_ops.results.Fetched` as ``sources.twilio.request_json`` does (not configured: the empty one, its
target naming the missing variables).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from propflow_ops.records import HttpAnswer
from propflow_ops.results import Fetched
from propflow_ops.sources.twilio import TIMEOUT_S, not_configured, request_json

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"
PHONE_FIELDS = (
    "display_phone_number",
    "verified_name",
    "status",
    "quality_rating",
    "code_verification_status",
    "messaging_limit_tier",
    "name_status",
    "platform_type",
    "throughput",
)


@dataclass
class WhatsAppConfig:
    token: str = field(default="", repr=False)
    phone_number_id: str = ""
    graph_url: str = DEFAULT_GRAPH_URL

    @property
    def missing(self) -> list[str]:
        out = []
        if not self.token:
            out.append("WHATSAPP_TOKEN")
        if not self.phone_number_id:
            out.append("WHATSAPP_PHONE_NUMBER_ID")
        return out

    @property
    def configured(self) -> bool:
        return not self.missing


def config(env: Mapping[str, str] | None = None) -> WhatsAppConfig:
    env = os.environ if env is None else env
    return WhatsAppConfig(
        token=(env.get("WHATSAPP_TOKEN") or "").strip(),
        phone_number_id=(env.get("WHATSAPP_PHONE_NUMBER_ID") or "").strip(),
        graph_url=(env.get("PROPFLOW_META_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/"),
    )


def phone_number(cfg: WhatsAppConfig, *, timeout_s: float = TIMEOUT_S) -> Fetched[HttpAnswer]:
    """GET /{phone-number-id}?fields=...: status, quality_rating, verified name, messaging tier."""
    if not cfg.configured:
        return not_configured("whatsapp phone number", cfg.missing)
    pid = urllib.parse.quote(cfg.phone_number_id, safe="")
    url = f"{cfg.graph_url}/{pid}?" + urllib.parse.urlencode({"fields": ",".join(PHONE_FIELDS)})
    headers = {"Authorization": f"Bearer {cfg.token}", "Accept": "application/json"}
    return request_json("GET", url, headers=headers, timeout_s=timeout_s)


def graph_error(result: Fetched[HttpAnswer] | HttpAnswer) -> dict[str, object]:
    """The Graph error object of a failed call (``code``, ``error_subcode``, ``type``, ``message``), or {} (also
    when no answer came back)."""
    answer = result.value if isinstance(result, Fetched) else result
    body = answer.body if isinstance(answer, HttpAnswer) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return {k: err.get(k) for k in ("code", "error_subcode", "type", "message") if err.get(k) is not None}
    return {}
