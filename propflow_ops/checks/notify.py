"""Checks of the notifications runbook (SMS via Twilio, WhatsApp via Meta's Cloud API).

Pure: the outcomes of ``sources.twilio`` / ``sources.whatsapp`` / the log fetch
in (each a :class:`~propflow_ops.results.Fetched`: an HTTP answer of any status is the value, no answer the
error; the empty one, never asked or not configured, is ``skipped``), Findings and display tables out. Codes (CONTRACT 6): ``NOTIFY_CONFIG_MISSING``,
``TWILIO_AUTH_FAILED``, ``TWILIO_BALANCE_LOW``, ``WHATSAPP_API_FAILING``,
``NOTIFY_SEND_ERRORS`` and ``OTP_ENDPOINT_FAILING`` (only evaluated when the
``send-test-otp`` step ran: it sends a real SMS).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias, cast

import pandas as pd

from propflow_ops.checks import logs as log_checks
from propflow_ops.checks.logs import errors as error_lines
from propflow_ops.checks.logs import top_messages
from propflow_ops.errors import NoAnswer
from propflow_ops.findings import Finding
from propflow_ops.reach import unreachable
from propflow_ops.records import HttpAnswer, TaskSettings
from propflow_ops.remediation import StepOutcome
from propflow_ops.results import Fetched, frame, takes_fetched

#: The settings PropFlow's API needs to send SMS (Twilio) and WhatsApp (Meta) messages.
REQUIRED_SETTINGS: tuple[str, ...] = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "WHATSAPP_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
)
#: Below this balance (in the account's currency) TWILIO_BALANCE_LOW fails.
TWILIO_MIN_BALANCE = 20.0
#: Share of recent sends that failed above which NOTIFY_SEND_ERRORS fails ...
SEND_ERROR_THRESHOLD = 0.10
#: ... provided at least this many failed (one bad number is not an incident).
MIN_SEND_ERRORS = 3
FAILED_STATUSES: tuple[str, ...] = ("failed", "undelivered")

#: Twilio error codes: what they mean and what to do (https://www.twilio.com/docs/api/errors).
TWILIO_ERROR_CODES: dict[int, tuple[str, str]] = {
    20003: (
        "Authentication failed: the Account SID / Auth Token pair was rejected",
        "The token was rotated or the task definition holds a wrong or test credential: "
        "update TWILIO_AUTH_TOKEN (and the SID) in the task definition and redeploy.",
    ),
    20429: (
        "Too many requests: the account hit Twilio's API concurrency limit",
        "Back off and retry with jitter; spread bulk notifications over time.",
    ),
    21211: (
        "Invalid 'To' phone number: not a valid E.164 number",
        "The app stored or sent a malformed number; validate and normalise to E.164 (+<country><number>).",
    ),
    21408: (
        "Permission to send an SMS has not been enabled for the region of the 'To' number",
        "Enable the destination country in Twilio's Messaging Geo Permissions.",
    ),
    21606: (
        "The 'From' number is not a valid, SMS-capable number of this account",
        "Check TWILIO_FROM_NUMBER: it must be an SMS-capable number (or sender) owned by the account.",
    ),
    21608: (
        "Trial account: the 'To' number is not verified",
        "A trial account only sends to verified numbers: upgrade the account or verify the number.",
    ),
    21610: (
        "Attempt to send to an unsubscribed recipient (they replied STOP)",
        "Nothing to fix on our side: the user must reply START to opt back in; do not retry.",
    ),
    21612: (
        "Twilio cannot route a message from this 'From' number to this 'To' number",
        "Use a sender that can reach the destination country (local number or alphanumeric sender).",
    ),
    21614: (
        "The 'To' number is not a mobile number",
        "Landlines cannot receive SMS; ask the user for a mobile number.",
    ),
    30001: (
        "Queue overflow: too many messages queued for the sender",
        "Slow the send rate or add senders (a Messaging Service pool).",
    ),
    30002: (
        "Account suspended",
        "Contact Twilio support; check billing and compliance notices in the console.",
    ),
    30003: (
        "Unreachable destination handset: the phone is off or out of coverage",
        "Usually transient for that user; retry later. Many at once point at a carrier problem.",
    ),
    30004: (
        "Message blocked: the recipient or their carrier blocks messages from this sender",
        "The user must unblock the sender; check the sender's reputation if widespread.",
    ),
    30005: (
        "Unknown destination handset: the number does not exist or is no longer in service",
        "Ask the user to update their phone number; stop retrying it.",
    ),
    30006: ("Landline or unreachable carrier", "The number cannot receive SMS; ask for a mobile number."),
    30007: (
        "Message filtered by the carrier as spam or as violating its rules",
        "For India (+91) register the sender ID and templates under DLT; avoid URL shorteners and "
        "spam-like text; use a registered sender.",
    ),
    30008: ("Unknown error from the carrier", "Retry; if it persists for one carrier, open a Twilio ticket."),
    30034: (
        "US A2P 10DLC: the sending number is not registered to a campaign",
        "Register the number with an approved A2P 10DLC campaign.",
    ),
}
#: WhatsApp Cloud API (Graph) error codes seen in PropFlow's logs.
WHATSAPP_ERROR_CODES: dict[int, tuple[str, str]] = {
    190: (
        "Access token invalid or expired (OAuthException)",
        "Generate a new system-user token in Meta Business settings and update WHATSAPP_TOKEN.",
    ),
    131026: (
        "Message undeliverable: the recipient is not on WhatsApp or cannot receive this message",
        "Fall back to SMS for that user.",
    ),
    131047: (
        "Re-engagement required: more than 24 h since the user last wrote; only templates allowed",
        "Send an approved template message instead of free text.",
    ),
    131048: (
        "Spam rate limit hit: too many messages were blocked or flagged",
        "Check quality rating; slow down.",
    ),
    131056: (
        "Pair rate limit: too many messages to the same user in a short time",
        "Back off for that user.",
    ),
    130429: ("Cloud API throughput limit reached", "Spread sends over time; ask Meta for higher throughput."),
    132001: (
        "Template does not exist in this language or is not approved",
        "Check the template's name/locale.",
    ),
    368: ("The sender is temporarily blocked for policy violations", "See Business Support Home; appeal."),
}


def _short(text: Any, n: int = 160) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


# --- settings in the task definition -----------------------------------------------------------


@takes_fetched
def settings_table(
    settings: TaskSettings | BaseException | None, required: Sequence[str] = REQUIRED_SETTINGS
) -> pd.DataFrame:
    """One row per required setting: how the task definition holds it (names only, never values)."""
    names = settings.names if isinstance(settings, TaskSettings) else {}
    rows = []
    for name in required:
        state = names.get(name)
        rows.append(
            {
                "setting": name,
                "in_task_definition": {
                    "value": "yes (plain value)",
                    "secret": "yes (secret reference)",
                    "empty": "EMPTY",
                    None: "MISSING",
                }[state],
            }
        )
    return pd.DataFrame(rows, columns=["setting", "in_task_definition"])


@takes_fetched
def config_missing(
    settings: TaskSettings | BaseException | None, required: Sequence[str] = REQUIRED_SETTINGS
) -> Finding:
    """NOTIFY_CONFIG_MISSING: ``fail`` when a required setting is absent or empty in the running task definition
    (or ECS could not be reached to read it); ``error`` when ECS answered but the definition could not be read."""
    code, title = "NOTIFY_CONFIG_MISSING", "Notification settings in the task definition"
    if isinstance(settings, BaseException) and unreachable(settings):
        return Finding.fail(
            code,
            "ECS unreachable: the task definition cannot be read",
            f"{settings}; the settings cannot be verified",
        )
    if isinstance(settings, BaseException):
        return Finding.error(code, title, f"could not read the task definition: {settings}")
    if settings is None:
        return Finding.skipped(code, title, "the task definition was not read")
    missing = [n for n in required if n not in settings.names]
    empty = [n for n in required if settings.names.get(n) == "empty"]
    data = {
        "task_definition": settings.task_definition,
        "required": list(required),
        "settings_missing": missing,
        "settings_empty": empty,
    }
    if missing or empty:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if empty:
            parts.append("empty: " + ", ".join(empty))
        return Finding.fail(
            code,
            "Notification settings missing from the task definition",
            f"{settings.task_definition} lacks what the API needs to send messages ({'; '.join(parts)}). "
            "Add them (as secrets) to a new task definition revision and deploy it.",
            **data,
        )
    return Finding.ok(
        code,
        "Notification settings present in the task definition",
        f"{settings.task_definition} holds all {len(required)} required settings (values not shown).",
        **data,
    )


# --- Twilio ------------------------------------------------------------------------------------


#: What the Twilio and WhatsApp checks read: ``sources.twilio.request_json``'s result (or its value, or its error).
Answer: TypeAlias = Fetched[HttpAnswer] | HttpAnswer | BaseException | None
#: What :func:`twilio_send_errors` reads: ``sources.twilio.messages``'s result (or the frame, or the error).
Messages: TypeAlias = Fetched[pd.DataFrame] | pd.DataFrame | BaseException | None


def _fetched(x: Any) -> Fetched[Any]:
    """``x`` as a :class:`Fetched` (a bare value or error as the value or error of one; None as the empty one)."""
    if isinstance(x, Fetched):
        return x
    return Fetched(None, x) if isinstance(x, BaseException) else Fetched(x)


def _not_checked(code: str, title: str, got: Fetched[Any], provider: str) -> Finding | None:
    """``skipped`` for the empty :class:`Fetched` (not configured: its target names the missing variables; or never
    fetched), else None."""
    if got.empty:
        return Finding.skipped(code, title, f"{provider} not checked: {got.target or 'not fetched'}.")
    return None


def _unanswered(code: str, title: str, got: Fetched[Any], provider: str, unreachable: str) -> Finding | None:
    """The finding when ``got`` holds no :class:`HttpAnswer`: ``skipped`` (not checked), ``fail`` titled
    ``unreachable`` (no answer), ``error`` (the fetch failed otherwise: no time left); None for an answer."""
    skipped = _not_checked(code, title, got, provider)
    if skipped or isinstance(got.value, HttpAnswer):
        return skipped
    if not isinstance(got.error, NoAnswer):
        return Finding.error(code, title, got.error or f"unexpected value {type(got.value).__name__}")
    return Finding.fail(
        code,
        unreachable,
        f"{got.error} ({got.target})",
        http_status=None,
        latency_ms=round(got.seconds * 1000, 1) if got.seconds else None,
    )


def twilio_auth(result: Answer) -> Finding:
    """TWILIO_AUTH_FAILED from GET /Accounts/{sid}: ``fail`` on 401/403 (20003), a suspended/closed
    account, or when Twilio cannot be reached (so the credentials cannot be verified); ``error`` for a fetch that
    failed otherwise (no time left)."""
    code, title = "TWILIO_AUTH_FAILED", "Twilio credentials and account status"
    got = _fetched(result)
    unanswered = _unanswered(
        code, title, got, "Twilio", "Twilio API unreachable: credentials cannot be verified"
    )
    if unanswered:
        return unanswered
    answer = cast(HttpAnswer, got.value)  # _unanswered said it is one
    data: dict[str, Any] = {"http_status": answer.status, "latency_ms": answer.latency_ms}
    if answer.status in (401, 403):
        err = answer.body if isinstance(answer.body, dict) else {}
        meaning = TWILIO_ERROR_CODES.get(int(err.get("code") or 20003), TWILIO_ERROR_CODES[20003])
        return Finding.fail(
            code,
            "Twilio rejected the credentials",
            f"{answer.problem}. {meaning[0]}. {meaning[1]}",
            twilio_code=err.get("code"),
            **data,
        )
    if answer.problem:
        return Finding.fail(code, "Twilio account lookup failed", _short(answer.problem), **data)
    body = answer.body if isinstance(answer.body, dict) else {}
    status = str(body.get("status") or "unknown")
    data.update(account_status=status, account_type=body.get("type"))
    if status != "active":
        return Finding.fail(
            code,
            f"Twilio account is {status}",
            "Credentials work but the account cannot send: see Twilio console (billing, "
            "compliance notices) or contact Twilio support.",
            **data,
        )
    return Finding.ok(
        code,
        "Twilio credentials accepted, account active",
        f"account type {body.get('type') or '?'}, answered in {answer.latency_ms} ms",
        **data,
    )


def twilio_balance(result: Answer, *, min_balance: float = TWILIO_MIN_BALANCE) -> Finding:
    """TWILIO_BALANCE_LOW: ``fail`` when the balance is below ``min_balance``; ``error`` when it could not be read."""
    code, title = "TWILIO_BALANCE_LOW", "Twilio balance"
    got = _fetched(result)
    skipped = _not_checked(code, title, got, "Twilio")
    if skipped:
        return skipped
    answer = got.value
    if got.error is not None:
        return Finding.error(code, title, f"could not read the balance: {got.error}")
    if not isinstance(answer, HttpAnswer) or answer.problem or not isinstance(answer.body, dict):
        why = (
            answer.problem
            if isinstance(answer, HttpAnswer) and answer.problem
            else "no balance in the answer"
        )
        return Finding.error(code, title, f"could not read the balance: {why}")
    try:
        amount = float(answer.body.get("balance"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return Finding.error(code, title, f"unexpected balance value {answer.body.get('balance')!r}")
    currency = str(answer.body.get("currency") or "")
    data = {"balance": amount, "currency": currency, "min_balance": min_balance}
    if amount < min_balance:
        return Finding.fail(
            code,
            f"Twilio balance low: {amount:.2f} {currency}",
            f"below the {min_balance:g} {currency} threshold: sends start failing when it runs "
            "out. Top up in the Twilio console (Billing) and enable auto-recharge.",
            **data,
        )
    return Finding.ok(
        code,
        f"Twilio balance {amount:.2f} {currency}",
        f"at or above the {min_balance:g} {currency} threshold",
        **data,
    )


def _in_window(df: pd.DataFrame, column: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    if df.empty or column not in df:
        return df
    stamps = pd.to_datetime(df[column], utc=True)
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= stamps >= pd.Timestamp(start)
    if end is not None:
        mask &= stamps <= pd.Timestamp(end)
    return df[mask]


def failed_messages(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[frame["status"].astype("object").isin(FAILED_STATUSES)]


def error_code_table(
    messages: Messages, *, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Failed/undelivered Twilio messages in the window by error code: count, meaning, what to do (empty when the
    messages could not be listed)."""
    cols = ["error_code", "count", "statuses", "meaning", "what_to_do"]
    failed = failed_messages(_in_window(frame(messages), "date_created", start, end))
    if failed.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for err, group in failed.groupby(failed["error_code"].astype("object").fillna(-1), sort=False):
        known = TWILIO_ERROR_CODES.get(int(err))
        fallback = (
            str(group["error_message"].dropna().iloc[0]) if group["error_message"].notna().any() else "?"
        )
        rows.append(
            {
                "error_code": None if int(err) == -1 else int(err),
                "count": len(group),
                "statuses": ", ".join(sorted(set(group["status"].astype(str)))),
                "meaning": known[0] if known else fallback,
                "what_to_do": known[1]
                if known
                else "See https://www.twilio.com/docs/api/errors/" + str(int(err)),
            }
        )
    return (
        pd.DataFrame(rows, columns=cols)
        .sort_values("count", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def twilio_send_errors(
    messages: Messages,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    threshold: float = SEND_ERROR_THRESHOLD,
    min_errors: int = MIN_SEND_ERRORS,
) -> Finding:
    """NOTIFY_SEND_ERRORS from Twilio's message log: ``fail`` when more than ``threshold`` of the
    window's messages failed or were undelivered (and at least ``min_errors`` of them)."""
    code, title = "NOTIFY_SEND_ERRORS", "Recent Twilio messages that failed"
    got = _fetched(messages)
    skipped = _not_checked(code, title, got, "Twilio")
    if skipped:
        return skipped
    if got.error is not None or not isinstance(got.value, pd.DataFrame):
        return Finding.error(code, title, f"could not list Twilio messages: {got.error}")
    recent = _in_window(got.value, "date_created", start, end)
    failed = failed_messages(recent)
    total, n = len(recent), len(failed)
    share = n / total if total else 0.0
    table = error_code_table(recent)
    by_code = "; ".join(f"{r.count}x {r.error_code} ({r.meaning})" for r in table.itertuples())
    data = {
        "source": "twilio",
        "messages": total,
        "failed": n,
        "failed_share": round(share, 3),
        "threshold": threshold,
        "by_error_code": table[["error_code", "count"]].to_dict(orient="records"),
    }
    if n >= min_errors and share > threshold:
        return Finding.fail(
            code,
            f"Twilio: {n} of {total} recent messages failed ({share:.0%})",
            f"threshold {threshold:.0%}. By error code: {by_code}",
            **data,
        )
    return Finding.ok(
        code,
        f"Twilio: {n} of {total} recent messages failed",
        f"({share:.0%}; threshold {threshold:.0%})" + (f". {by_code}" if by_code else ""),
        **data,
    )


# --- WhatsApp -----------------------------------------------------------------------------------


def whatsapp_status(result: Answer) -> Finding:
    """WHATSAPP_API_FAILING from GET /{phone-number-id}: ``fail`` for an invalid/expired token (190),
    an unreachable API, any other API error or a number that is not CONNECTED; ``warn`` for a
    FLAGGED number or a RED quality rating; ``error`` for a fetch that failed otherwise (no time left)."""
    code, title = "WHATSAPP_API_FAILING", "WhatsApp Cloud API: token, number status, quality"
    got = _fetched(result)
    unanswered = _unanswered(code, title, got, "WhatsApp", "WhatsApp Cloud API unreachable")
    if unanswered:
        return unanswered
    answer = cast(HttpAnswer, got.value)  # _unanswered said it is one
    data: dict[str, Any] = {"http_status": answer.status, "latency_ms": answer.latency_ms}
    err = answer.body.get("error") if isinstance(answer.body, dict) else None
    err = err if isinstance(err, dict) else {}
    if err:
        data.update(
            graph_code=err.get("code"), graph_subcode=err.get("error_subcode"), graph_type=err.get("type")
        )
    if err.get("code") == 190 or answer.status == 401:
        sub = {
            463: "expired",
            460: "invalidated by a password change",
            467: "invalid",
            458: "revoked (app removed)",
        }.get(int(err.get("error_subcode") or 0), "invalid or expired")
        return Finding.fail(
            code,
            f"WhatsApp access token {sub}",
            f"{_short(answer.problem, 220)}. {WHATSAPP_ERROR_CODES[190][1]}",
            token_valid=False,
            **data,
        )
    if answer.problem:
        return Finding.fail(code, "WhatsApp Cloud API call failed", _short(answer.problem, 220), **data)
    body = answer.body if isinstance(answer.body, dict) else {}
    status = str(body.get("status") or "UNKNOWN")
    quality = str(body.get("quality_rating") or "UNKNOWN")
    data.update(
        token_valid=True,
        number_status=status,
        quality_rating=quality,
        messaging_limit_tier=body.get("messaging_limit_tier"),
        verified_name=body.get("verified_name"),
    )
    summary = f"number status {status}, quality {quality}, tier {body.get('messaging_limit_tier') or '?'}"
    if status not in ("CONNECTED", "FLAGGED"):
        return Finding.fail(
            code,
            f"WhatsApp number is {status}",
            f"{summary}: the number cannot send. See WhatsApp Manager for the reason.",
            **data,
        )
    if status == "FLAGGED" or quality == "RED":
        return Finding.warn(
            code,
            "WhatsApp number quality low",
            f"{summary}: messages still send, but Meta may lower the messaging limit. "
            "Review recent templates and block/report rates.",
            **data,
        )
    return Finding.ok(code, "WhatsApp token valid, number connected", summary, **data)


def whatsapp_table(result: Answer) -> pd.DataFrame:
    """The phone number's fields worth seeing (not the token); else one row saying why there are none."""
    got = _fetched(result)
    answer = got.value if isinstance(got.value, HttpAnswer) else None
    usable = answer is not None and not answer.problem and isinstance(answer.body, dict)
    body = answer.body if usable and answer is not None else {}
    keys = (
        "verified_name",
        "display_phone_number",
        "status",
        "quality_rating",
        "messaging_limit_tier",
        "code_verification_status",
        "name_status",
        "platform_type",
    )
    rows = [{"field": k, "value": body.get(k)} for k in keys if k in body]
    if not rows:
        if got.error is not None:
            why = str(got.error)
        elif answer is not None:
            why = answer.problem or "no phone number fields in the answer"
        else:
            why = got.target or "not fetched"
        rows = [{"field": "error", "value": why}]
    return pd.DataFrame(rows, columns=["field", "value"], dtype=object)


# --- logs ---------------------------------------------------------------------------------------


def _provider(df: pd.DataFrame) -> pd.Series:
    """The provider field, else the provider the message names (twilio/SMS, WhatsApp), else ``unknown``."""
    if len(df) == 0:
        return pd.Series([], index=df.index, dtype="object")
    return log_checks.provider_of(df).astype(str)


def _notification_lines(logs: pd.DataFrame) -> pd.DataFrame:
    """The notification lines (a provider, or a message about SMS/WhatsApp/notifications), whatever the dialect."""
    return logs[log_checks.is_notification(logs)]


@takes_fetched
def notification_errors(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """The error-level notification lines (empty when the logs could not be read), for a per-minute plot."""
    if isinstance(logs, BaseException) or logs is None or logs.empty:
        return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "provider": []})
    errs = error_lines(_notification_lines(logs)).copy()
    errs["provider"] = _provider(errs)
    return errs


@takes_fetched
def errors_by_provider(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """Notification log lines per provider: total, errors, error share, top error codes and message."""
    cols = ["provider", "lines", "errors", "error_share", "top_error_codes", "top_error"]
    if isinstance(logs, BaseException) or logs is None or logs.empty:
        return pd.DataFrame(columns=cols)
    logs = _notification_lines(logs)
    provider = _provider(logs)
    errs = error_lines(logs)
    rows = []
    for name in sorted(set(provider)):
        mine = logs[provider == name]
        mine_errs = errs[_provider(errs) == name] if len(errs) else errs
        codes = ""
        if len(mine_errs) and "error_code" in mine_errs:
            counts = mine_errs["error_code"].astype("object").dropna().astype(str).value_counts().head(5)
            codes = ", ".join(f"{c} x{n}" for c, n in counts.items())
        top = top_messages(mine_errs, 1) if len(mine_errs) else pd.DataFrame()
        rows.append(
            {
                "provider": name,
                "lines": len(mine),
                "errors": len(mine_errs),
                "error_share": round(len(mine_errs) / len(mine), 3) if len(mine) else 0.0,
                "top_error_codes": codes,
                "top_error": top["message"].iloc[0] if len(top) else "",
            }
        )
    return pd.DataFrame(rows, columns=cols).astype(
        {"provider": object, "top_error_codes": object, "top_error": object}
    )


@takes_fetched
def log_code_meanings(logs: pd.DataFrame | BaseException) -> pd.DataFrame:
    """The error codes the notification logs carry, per provider, with what each means."""
    cols = ["provider", "error_code", "count", "meaning"]
    if isinstance(logs, BaseException) or logs is None or logs.empty or "error_code" not in logs:
        return pd.DataFrame(columns=cols)
    errs = error_lines(_notification_lines(logs))
    errs = errs[errs["error_code"].notna()] if len(errs) else errs
    if errs.empty:
        return pd.DataFrame(columns=cols)
    work = pd.DataFrame({"provider": _provider(errs), "error_code": errs["error_code"].astype(str)})
    grouped = work.groupby(["provider", "error_code"]).size().rename("count").reset_index()

    def meaning(row: Any) -> str:
        table = WHATSAPP_ERROR_CODES if row.provider == "whatsapp" else TWILIO_ERROR_CODES
        try:
            return table.get(int(float(row.error_code)), ("unknown code", ""))[0]
        except ValueError:
            return "unknown code"

    grouped["meaning"] = [meaning(r) for r in grouped.itertuples()]
    return grouped.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)[cols]


@takes_fetched
def log_send_errors(
    logs: pd.DataFrame | BaseException,
    *,
    threshold: float = SEND_ERROR_THRESHOLD,
    min_errors: int = MIN_SEND_ERRORS,
) -> Finding:
    """NOTIFY_SEND_ERRORS from the API's notification log lines: ``fail`` when more than ``threshold``
    of them are errors (and at least ``min_errors``), for any provider."""
    code, title = "NOTIFY_SEND_ERRORS", "Notification errors in the API logs"
    if logs is None:  # never fetched
        return Finding.skipped(code, title, "the logs were not fetched")
    if isinstance(logs, BaseException) and unreachable(logs):
        return Finding.fail(
            code,
            "CloudWatch Logs unreachable: notification errors cannot be counted",
            f"{type(logs).__name__}: {str(logs).splitlines()[0] if str(logs) else ''}"[:300],
        )
    if isinstance(logs, BaseException):
        return Finding.error(code, title, logs)
    table = errors_by_provider(logs)
    data = {
        "source": "logs",
        "lines": int(table["lines"].sum()) if len(table) else 0,
        "threshold": threshold,
        "per_provider": table.to_dict(orient="records"),
        "logs": log_checks.summary(logs),
    }
    bad = table[(table["errors"] >= min_errors) & (table["error_share"] > threshold)] if len(table) else table
    summary = "; ".join(
        f"{r.provider}: {r.errors}/{r.lines} errors ({r.error_share:.0%})" for r in table.itertuples()
    )
    if len(bad):
        worst = bad.sort_values("errors", ascending=False).iloc[0]
        return Finding.fail(
            code,
            f"Notification errors in the logs ({', '.join(bad['provider'])})",
            f"{summary} (threshold {threshold:.0%}). Most frequent: {worst['top_error']}",
            **data,
        )
    if not len(table):
        return Finding.skipped(
            code,
            "No notification lines in the logs",
            "no line of the window is about a notification (provider, SMS, WhatsApp): "
            "nothing to judge from the logs",
            **data,
        )
    return Finding.ok(
        code,
        "Notification errors in the logs below the threshold",
        f"{summary} (threshold {threshold:.0%})",
        **data,
    )


# --- the OTP endpoint (only when the step ran) ---------------------------------------------------


def otp_endpoint(outcome: StepOutcome) -> Finding:
    """OTP_ENDPOINT_FAILING from the ``send-test-otp`` step: ``skipped`` unless it was applied;
    ``fail`` when the request could not be sent or the API answered other than 2xx."""
    code, title = "OTP_ENDPOINT_FAILING", "POST /api/v1/auth/login/otp"
    if not outcome.applied:
        return Finding.skipped(
            code,
            title,
            "not evaluated: the test sends a real SMS, so it runs only when "
            "the send-test-otp step is applied.",
        )
    if outcome.mode == "failed" or not isinstance(outcome.result, dict):
        return Finding.fail(code, "OTP endpoint could not be called", outcome.action.detail)
    res = outcome.result
    status = res.get("http_status")
    data = {k: res.get(k) for k in ("http_status", "latency_ms")}
    if isinstance(status, int) and 200 <= status < 300:
        return Finding.ok(
            code,
            f"OTP endpoint answered {status}",
            f"in {res.get('latency_ms')} ms; confirm the SMS arrived on the test phone.",
            **data,
        )
    return Finding.fail(
        code,
        f"OTP endpoint answered {status}",
        f"{_short(res.get('response'))}: users cannot log in with OTP. Check the API logs for "
        "the request and the Twilio checks above.",
        **data,
    )
