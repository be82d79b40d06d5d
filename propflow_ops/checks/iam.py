"""IAM resource-policy evaluation (pure): may a principal perform an action on a resource under a policy?

The subset of IAM's policy logic that decides whether a principal may perform an action on a resource under
a resource policy (principal match incl. ``*`` and an account's root, action and resource wildcards, explicit
Deny over Allow). Elements it cannot evaluate faithfully (``NotAction``, ``NotPrincipal``, ``NotResource``)
raise :class:`UnsupportedPolicyError` with a clear message: a check then reports ``error`` rather than
guessing. Used by ``checks.s3`` (the uploads bucket's policy for the task role).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Keys the evaluator can decide a Condition on; values for a request the API makes over the SDK (TLS).
KNOWN_CONTEXT: dict[str, str] = {"aws:securetransport": "true"}


class UnsupportedPolicyError(ValueError):
    """The policy uses an element this evaluator does not decide (NotAction, NotPrincipal, ...)."""


# --------------------------------------------------------------------------------------------
# Policy evaluation (pure)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


@lru_cache(maxsize=512)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """IAM action match: case-insensitive, ``*`` and ``?`` wildcards (``s3:*``, ``s3:Put*``, ``*``)."""
    return bool(_wildcard(str(pattern), False).match(action))


def resource_matches(pattern: str, resource: str) -> bool:
    """ARN match: case-sensitive, ``*`` and ``?`` wildcards (``arn:aws:s3:::bucket/*``)."""
    return bool(_wildcard(str(pattern), True).match(resource))


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None


def _role_of_session(arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/session`` -> ``arn:aws:iam::A:role/R`` (other ARNs unchanged)."""
    m = re.match(r"^arn:(aws[\w-]*):sts::(\d+):assumed-role/([^/]+)/", arn)
    return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}" if m else arn


def principal_matches(principal: Any, principal_arn: str) -> tuple[bool, str]:
    """Does a statement's ``Principal`` include ``principal_arn``? Returns (match, how).

    ``"*"`` and ``{"AWS": "*"}`` match anyone; ``{"AWS": "arn:aws:iam::A:root"}`` or ``"A"`` match every
    principal of account A (the account delegates to its IAM policies); a role ARN matches the role and its
    assumed-role sessions. Service/Federated/CanonicalUser principals never match an IAM role.
    """
    arn = _role_of_session(principal_arn)
    account = _account_of(arn)
    if principal == "*":
        return True, "any principal (*)"
    if not isinstance(principal, Mapping):
        raise UnsupportedPolicyError(f"Principal must be '*' or an object, got {principal!r}")
    for value in _as_list(principal.get("AWS")):
        text = str(value)
        if text == "*":
            return True, "any AWS principal (AWS: *)"
        if text == arn:
            return True, "the role itself"
        if account and text in (account, f"arn:aws:iam::{account}:root"):
            return True, f"account {account} (root): delegated to the account's IAM policies"
        if "*" in text or "?" in text:
            if resource_matches(text, arn):
                return True, f"wildcard principal {text}"
    return False, ""


def _condition_verdict(condition: Any) -> bool | None:
    """True/False when every condition is decidable from :data:`KNOWN_CONTEXT`, None when not."""
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        return None
    for operator, tests in condition.items():
        op = str(operator)
        if op.lower() != "bool" or not isinstance(tests, Mapping):
            return None
        for key, wanted in tests.items():
            actual = KNOWN_CONTEXT.get(str(key).lower())
            if actual is None:
                return None
            if actual not in {str(w).lower() for w in _as_list(wanted)}:
                return False
    return True


@dataclass
class PolicyDecision:
    """The outcome of :func:`evaluate_policy` for one principal, action and resource."""

    decision: str  # allow | explicit_deny | implicit_deny
    allowed_by: list[str] = field(default_factory=list)
    denied_by: list[str] = field(default_factory=list)
    conditional: list[str] = field(default_factory=list)  # statements whose Condition could not be decided
    notes: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def _statements(policy: Mapping[str, Any] | str) -> list[Mapping[str, Any]]:
    doc = json.loads(policy) if isinstance(policy, str) else policy
    if not isinstance(doc, Mapping):
        raise UnsupportedPolicyError("policy is not a JSON object")
    stmts = _as_list(doc.get("Statement"))
    out = []
    for s in stmts:
        if not isinstance(s, Mapping):
            raise UnsupportedPolicyError(f"statement is not an object: {s!r}")
        out.append(s)
    return out


def _sid(statement: Mapping[str, Any], index: int) -> str:
    return str(statement.get("Sid") or f"statement #{index + 1}")


def evaluate_policy(
    policy: Mapping[str, Any] | str, principal_arn: str, action: str, resource: str
) -> PolicyDecision:
    """Evaluate a resource (bucket) policy: explicit Deny > Allow > implicit deny.

    A statement applies when its Principal, Action and Resource all match and its Condition holds (only
    ``Bool aws:SecureTransport`` is decided, for a TLS request; other conditions make the statement
    "conditional": listed, not counted). Raises :class:`UnsupportedPolicyError` for ``NotPrincipal``,
    ``NotAction`` or ``NotResource`` in a statement that could apply.
    """
    result = PolicyDecision("implicit_deny")
    for i, st in enumerate(_statements(policy)):
        sid = _sid(st, i)
        for element in ("NotPrincipal", "NotAction", "NotResource"):
            if element in st:
                raise UnsupportedPolicyError(
                    f"{sid} uses {element}; this evaluator does not decide {element} (review it by hand)"
                )
        effect = str(st.get("Effect", ""))
        if effect not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"{sid} has Effect {effect!r}; expected Allow or Deny")
        if "Principal" not in st:
            raise UnsupportedPolicyError(f"{sid} has no Principal (not a resource policy statement)")
        matched, how = principal_matches(st["Principal"], principal_arn)
        if not matched:
            continue
        if not any(action_matches(a, action) for a in _as_list(st.get("Action"))):
            continue
        if not any(resource_matches(r, resource) for r in _as_list(st.get("Resource"))):
            continue
        verdict = _condition_verdict(st.get("Condition"))
        if verdict is False:
            continue
        if verdict is None:
            result.conditional.append(f"{sid} ({effect}, condition not evaluated)")
            continue
        (result.denied_by if effect == "Deny" else result.allowed_by).append(sid)
        if how.startswith("account"):
            result.notes.append(f"{sid}: principal is {how}")
    if result.denied_by:
        result.decision = "explicit_deny"
    elif result.allowed_by:
        result.decision = "allow"
    return result
