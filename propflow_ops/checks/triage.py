"""Triage: one finding per component from the cheapest signals, and which runbooks to run first.

Each component's judgement reuses the runbooks' own checks on the signals the sweep fetched
(``propflow_ops.sources.triage``) and folds them into one finding: the worst status of the
sub-checks (fail > error > warn > ok > skipped, ``findings.STATUS_ORDER``), the sub-checks kept in ``data["checks"]``.
A sub-check that is ``fail`` or ``warn`` points at the runbook that owns its code; the
recommendations are ordered by the runbooks' default severity (P0 first) and, within a severity,
the dependency first (the database before the API that needs it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from propflow_ops import codes
from propflow_ops.checks import api as api_checks
from propflow_ops.checks import db as db_checks
from propflow_ops.checks import ecs as ecs_checks
from propflow_ops.checks import latency as latency_checks
from propflow_ops.checks import logs as log_checks
from propflow_ops.checks import migration as migration_checks
from propflow_ops.checks import notify as notify_checks
from propflow_ops.checks import redis as redis_checks
from propflow_ops.checks import s3 as s3_checks
from propflow_ops.checks import websocket as ws_checks
from propflow_ops.findings import STATUS_ORDER, Finding, Status
from propflow_ops.reach import unreachable
from propflow_ops.records import AlembicSignals, DatabaseSignals, HttpAnswer
from propflow_ops.results import Fetched, takes_fetched, unwrap
from propflow_ops.runbooks import RUNBOOKS
from propflow_ops.signals import TriageSignals

RECENT_MINUTES = 15
ERROR_RATE_PCT = 5.0  # share of request lines answered 5xx in the recent window
ERRORS_PER_MIN = 5.0  # error-level log lines per minute in the recent window
LATENCY_P95_MS = 500.0

COMPONENTS: tuple[tuple[str, str], ...] = (
    ("TRIAGE_API", "API"),
    ("TRIAGE_ECS", "ECS"),
    ("TRIAGE_DATABASE", "Database"),
    ("TRIAGE_REDIS", "Redis"),
    ("TRIAGE_WEBSOCKET", "WebSocket"),
    ("TRIAGE_S3", "S3 uploads"),
    ("TRIAGE_ERRORS", "Errors/latency"),
    ("TRIAGE_NOTIFICATIONS", "Notifications"),
    ("TRIAGE_MIGRATIONS", "Migrations"),
)
LABELS = dict(COMPONENTS)

# Where errors in the logs come from (the ``event`` field) -> the runbook that owns them.
EVENT_OWNERS = {
    "request": "api-down",
    "startup": "api-down",
    "db": "db-connection",
    "upload": "photo-upload",
    "ws_connect": "websocket",
    "ws_disconnect": "websocket",
    "ws_reconnect": "websocket",
    "notification": "notifications",
    "migration": "migration",
}
# /health bodies that name a failing dependency: the API process answered, the dependency is the problem.
HEALTH_DEPENDENCIES = {
    "database": "db-connection",
    "db": "db-connection",
    "postgres": "db-connection",
    "redis": "websocket",
    "cache": "websocket",
}
# Within one severity, the dependency first.
TIE_ORDER = (
    "db-connection",
    "api-down",
    "migration",
    "photo-upload",
    "notifications",
    "api-latency",
    "websocket",
)


def owner(code: str) -> str | None:
    """The runbook that owns a sub-check's code (the registry, ``propflow_ops.codes``)."""
    return codes.runbook_of(code)


def _err(value: Any) -> BaseException | None:
    return value if isinstance(value, BaseException) else None


def _unfetched(value: Any) -> bool:
    """The empty :class:`Fetched` (never fetched, or not configured): its checks are ``skipped``."""
    return isinstance(value, Fetched) and value.empty


def fold(code: str, subs: Sequence[Finding], *, what: str) -> Finding:
    """One component finding from its sub-checks: the worst status (the one order of ``findings.STATUS_ORDER``:
    fail, error, warn, ok, skipped; a check that could not run outranks a risk), the problems in the detail."""
    if not subs:
        return Finding.skipped(code, what, "nothing to check")
    worst = min(subs, key=lambda f: STATUS_ORDER[f.status])
    problems = [f for f in subs if f.status in (Status.FAIL, Status.WARN, Status.ERROR)]
    checks = [
        {
            "code": f.code,
            "status": f.status.value,
            "title": f.title,
            "detail": f.detail[:300],
            "runbook": f.data.get("runbook") or owner(f.code),
        }
        for f in subs
    ]
    if problems:
        detail = "; ".join(
            f"{f.code} {f.status.value}: {f.title}"
            for f in sorted(problems, key=lambda f: STATUS_ORDER[f.status])
        )
        title = f"{what}: {worst.title}"
    elif worst.status is Status.SKIPPED:
        detail = "; ".join(f"{f.code}: {f.detail}" for f in subs)
        title = f"{what}: not checked"
    else:
        detail = "; ".join(f.title for f in subs)
        title = f"{what}: ok"
    return Finding(code, worst.status, title, detail, {"checks": checks})


# ---------------------------------------------------------------- components


def api(health: api_checks.Probe) -> Finding:
    """TRIAGE_API: /health (one attempt, short timeout; ``health``: the Fetched of ``sources.http.probe``)."""
    return fold("TRIAGE_API", [api_checks.health(health)], what="API /health")


def ecs(
    service: Mapping[str, Any] | BaseException | None,
    stopped: Any,
    *,
    since: datetime | None = None,
    end: datetime | None = None,
) -> Finding:
    """TRIAGE_ECS: running vs desired, the deployment's rollout, tasks stopped recently (OOM)."""
    subs = [ecs_checks.service_degraded(service), ecs_checks.deployment_failed(service)]
    if isinstance(stopped, pd.DataFrame) and stopped.empty:
        # checks.ecs.task_oom trips over an empty frame (pandas drops the columns): say it here
        subs.append(
            Finding.ok(
                "ECS_TASK_OOM",
                "No task stopped for out-of-memory",
                "no task stopped recently",
                stopped_tasks=0,
            )
        )
    elif _err(stopped):
        subs.append(Finding.error("ECS_TASK_OOM", "Tasks stopped for OutOfMemory", stopped))
    else:
        subs.append(ecs_checks.task_oom(stopped, start=since, end=end))
    return fold("TRIAGE_ECS", subs, what="ECS service")


def database(
    rds: Any,
    probe: DatabaseSignals | Fetched[DatabaseSignals] | BaseException | None,
    task: Any,
    *,
    idle_in_transaction_s: float = db_checks.IDLE_IN_TRANSACTION_S,
    long_query_s: float = db_checks.LONG_RUNNING_QUERY_S,
    pool_pct: float = db_checks.POOL_EXHAUSTED_PCT,
    now: datetime | None = None,
) -> Finding:
    """TRIAGE_DATABASE: RDS status and backups, SELECT 1, sessions against max_connections, idle-in-transaction
    and long queries from one pg_stat_activity read, and the task definition's DATABASE_URL host. ``probe``: the
    sweep's :class:`~propflow_ops.records.DatabaseSignals` (or the error of a probe that did not finish); ``rds``
    the instance (``{}``: not found), or its Fetched (empty: not fetched)."""
    if _unfetched(rds):
        subs = [
            Finding.skipped("RDS_NOT_AVAILABLE", "RDS instance status", "the instance was not described"),
            Finding.skipped(
                "DB_RPO_AT_RISK",
                f"Point-in-time recovery against the {db_checks.RPO_MINUTES:g} min RPO",
                "the instance was not described",
            ),
        ]
        rds = None
    else:
        rds = rds.outcome if isinstance(rds, Fetched) else rds
        subs = [db_checks.rds_available(rds), db_checks.rpo_at_risk(rds, now=now)]
    probe = probe.outcome if isinstance(probe, Fetched) else probe
    if isinstance(probe, BaseException):
        subs.append(Finding.error("DB_UNREACHABLE", "Database answers SELECT 1", probe))
    else:
        signals = probe if isinstance(probe, DatabaseSignals) else DatabaseSignals()
        subs.append(db_checks.connectivity(signals.ping, configured=signals.configured))
        if signals.configured and signals.ping.value is not None:
            activity, max_conn = signals.activity.outcome, signals.max_connections.outcome
            subs.append(db_checks.pool_exhausted(activity, max_conn, threshold_pct=pool_pct))
            subs.append(db_checks.idle_in_transaction(activity, max_idle_s=idle_in_transaction_s, now=now))
            subs.append(db_checks.long_running_queries(activity, max_query_s=long_query_s, now=now))
    if isinstance(task, BaseException):
        subs.append(Finding.error("DB_URL_MISMATCH", "DATABASE_URL against the RDS endpoint", str(task)))
    elif isinstance(task, Mapping):
        url = (task.get("env") or {}).get("DATABASE_URL")
        label = str(task.get("arn") or "").rsplit("/", 1)[-1]
        subs.append(db_checks.url_mismatch({"url": url, "task_definition": label}, rds))
    return fold("TRIAGE_DATABASE", subs, what="Database")


def redis(cache: Mapping[str, Any] | BaseException | None, probe: redis_checks.Probe) -> Finding:
    """TRIAGE_REDIS: ElastiCache status, PING, memory and clients from one INFO (``probe``: the
    :class:`~propflow_ops.results.Fetched` of ``sources.elasticache.redis_probe``, a
    :class:`~propflow_ops.records.RedisProbe` whose target is the host)."""
    subs = [
        redis_checks.check_cluster(cache),
        redis_checks.check_reachable(probe),
        redis_checks.check_memory(probe),
        redis_checks.check_clients(probe),
    ]
    return fold("TRIAGE_REDIS", subs, what="Redis")


def websocket(
    handshake: ws_checks.Handshake,
    logs: pd.DataFrame | BaseException,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Finding:
    """TRIAGE_WEBSOCKET: one handshake to /ws/<token> (the Fetched of ``sources.http.ws_handshake``: no answer
    is its ``fail``, a fetch that could not run its ``error``), and the reconnect rate in the logs."""
    subs = [
        ws_checks.check_handshake(handshake, url_shown="/ws/<token>"),
        ws_checks.check_reconnect_spike(logs, start=start, end=end),
    ]
    return fold("TRIAGE_WEBSOCKET", subs, what="WebSocket")


def s3(
    bucket_name: str,
    bucket: Any,
    policy: Any,
    task: Any,
    sample: Any,
    referenced: Any,
    logs: pd.DataFrame | BaseException,
    *,
    recent: datetime | None = None,
) -> Finding:
    """TRIAGE_S3: the bucket exists, the task role may PutObject, the policy is not over-broad, a first-page
    sample for orphans, upload errors in the recent logs."""
    subs = [s3_checks.check_bucket(bucket, bucket_name)]
    exists = s3_checks.bucket_exists(bucket)
    if bucket is None:  # never asked: a policy of None would read as "no policy"
        for code, title in (("S3_WRITE_DENIED", "Bucket policy"), ("S3_POLICY_OVERBROAD", "Bucket policy")):
            subs.append(Finding.skipped(code, title, "the bucket was not asked"))
    elif isinstance(policy, BaseException):
        subs.append(Finding.error("S3_WRITE_DENIED", "Bucket policy", policy))
    else:
        subs.append(s3_checks.check_write_access(policy, task, bucket=bucket_name, bucket_exists=exists))
        subs.append(s3_checks.check_policy_overbroad(policy, bucket_exists=exists))
    orphans = s3_checks.check_orphans(sample, referenced, bucket_exists=exists)[0]
    if isinstance(sample, Mapping) and sample.get("truncated"):
        orphans.detail += " (first 1000 keys only: a sample)"
    subs.append(orphans)
    subs.append(s3_checks.check_upload_errors(_recent(logs, recent)))
    return fold("TRIAGE_S3", subs, what="S3 uploads")


def _recent(logs: pd.DataFrame | BaseException, since: datetime | None) -> pd.DataFrame | BaseException:
    if isinstance(logs, BaseException) or since is None or logs is None or logs.empty:
        return logs
    ts = pd.to_datetime(logs["timestamp"], utc=True)
    return logs[ts >= pd.Timestamp(since)].reset_index(drop=True)


#: Where an error line comes from when it carries no ``event`` field, read from what it says (first match).
CONTENT_SOURCES = (
    ("migration", r"alembic|migration|already exists|running upgrade"),
    ("upload", r"upload"),
    ("ws_disconnect", r"websocket|/ws/"),
    ("notification", r"twilio|whatsapp|\bsms\b|notification"),
    ("db", r"psycopg|sqlalchemy|queuepool|too many clients|database|connection refused|connection slots"),
    ("startup", r"startup|sigkill|out of memory|worker|exiting"),
)


def _source_of(errs: pd.DataFrame) -> pd.Series:
    """Each error line's source: its ``event`` when it is one we know, else read from its path/message."""
    event = (
        errs["event"].astype("object").where(errs["event"].notna(), "").astype(str)
        if "event" in errs
        else pd.Series("", index=errs.index, dtype="object")
    )
    out = event.where(event.isin(list(EVENT_OWNERS)), "")
    text = pd.Series("", index=errs.index, dtype="object")
    for col in ("path", "message"):
        if col in errs:
            text = text + " " + errs[col].astype("object").where(errs[col].notna(), "").astype(str)
    for name, pattern in CONTENT_SOURCES:
        hit = text.str.contains(pattern, case=False, regex=True)
        out = out.where((out != "") | ~hit, name)
    return out.where(out != "", "request")


def error_sources(logs: pd.DataFrame) -> pd.DataFrame:
    """Error lines (error level, 5xx, exceptions) by where they come from (the ``event``, else what the line
    says), with the runbook that owns each."""
    cols = ["event", "errors", "runbook"]
    if logs is None or logs.empty:
        return pd.DataFrame(columns=cols)
    errs = log_checks.errors(logs)
    if errs.empty:
        return pd.DataFrame(columns=cols)
    counts = _source_of(errs).value_counts()
    return pd.DataFrame(
        {
            "event": counts.index.astype(str),
            "errors": counts.values.astype(int),
            "runbook": [EVENT_OWNERS.get(str(e), "api-down") for e in counts.index],
        },
        columns=cols,
    )


def errors(
    logs: pd.DataFrame | BaseException,
    *,
    since: datetime | None = None,
    end: datetime | None = None,
    error_rate_pct: float = ERROR_RATE_PCT,
    errors_per_min: float = ERRORS_PER_MIN,
    latency_p95_ms: float = LATENCY_P95_MS,
) -> Finding:
    """TRIAGE_ERRORS: over the recent window, 5xx share of requests, error lines per minute (by where they
    come from) and the p95 latency per minute from the request lines."""
    if logs is None:  # never fetched
        why = "the logs were not fetched"
        subs = [
            Finding.skipped("ERRORS_RATE_HIGH", "API error rate", why),
            Finding.skipped("API_LATENCY_HIGH", "API p95 latency", why),
        ]
        return fold("TRIAGE_ERRORS", subs, what="Errors and latency")
    if isinstance(logs, BaseException):
        return fold(
            "TRIAGE_ERRORS",
            [
                Finding.error("ERRORS_RATE_HIGH", "API error rate", logs),
                Finding.error("API_LATENCY_HIGH", "API p95 latency", logs),
            ],
            what="Errors and latency",
        )
    recent = _recent(logs, since)
    minutes = max(1.0, ((end - since).total_seconds() / 60) if since and end else float(RECENT_MINUTES))
    req = latency_checks.requests(recent)
    status = pd.to_numeric(req["status"], errors="coerce") if len(req) else pd.Series(dtype="float64")
    n5xx = int((status >= 500).sum())
    share = 100.0 * n5xx / len(req) if len(req) else 0.0
    sources = error_sources(recent)
    n_err = int(sources["errors"].sum()) if len(sources) else 0
    per_min = n_err / minutes
    top = sources.sort_values("errors", ascending=False).head(3)
    where = ", ".join(f"{r.event} {r.errors}" for r in top.itertuples()) or "none"
    data = {
        "requests": len(req),
        "requests_5xx": n5xx,
        "error_rate_pct": round(share, 1),
        "error_lines": n_err,
        "errors_per_min": round(per_min, 1),
        "by_event": sources.to_dict(orient="records"),
        "minutes": round(minutes, 1),
    }
    if share >= error_rate_pct or per_min >= errors_per_min:
        main = str(top.iloc[0]["runbook"]) if len(top) else "api-down"
        rate = Finding.fail(
            "ERRORS_RATE_HIGH",
            f"{per_min:.1f} error lines/min, {share:.0f}% of requests 5xx",
            f"last {minutes:.0f} min: {n_err} error lines ({where}); {n5xx}/{len(req)} requests "
            f"5xx (thresholds {errors_per_min:g}/min, {error_rate_pct:g}%)",
            runbook=main,
            **data,
        )
    else:
        rate = Finding.ok(
            "ERRORS_RATE_HIGH",
            f"error rate normal ({per_min:.1f}/min, {share:.1f}% 5xx)",
            f"last {minutes:.0f} min: {n_err} error lines ({where})",
            **data,
        )
    per_minute = latency_checks.per_minute_from_logs(recent)
    if per_minute.empty:
        lat = Finding.skipped("API_LATENCY_HIGH", "API p95 latency", "no request lines in the recent window")
    else:
        lat = latency_checks.latency_high(per_minute, recent, threshold_ms=latency_p95_ms)
    return fold("TRIAGE_ERRORS", [rate, lat], what="Errors and latency")


def notifications(
    settings: Any,
    account: notify_checks.Answer,
    balance: notify_checks.Answer,
    whatsapp: notify_checks.Answer,
    otp_route: Any,
    logs: pd.DataFrame | BaseException,
    *,
    since: datetime | None = None,
    min_balance: float = notify_checks.TWILIO_MIN_BALANCE,
) -> Finding:
    """TRIAGE_NOTIFICATIONS: settings in the task definition, Twilio auth and balance, WhatsApp token, the
    notification error rate in the recent logs, and the OTP route answering a validation probe (``account``,
    ``balance``, ``whatsapp``: the Fetched of ``sources.twilio`` / ``sources.whatsapp``)."""
    subs: list[Finding] = [
        notify_checks.config_missing(settings),  # ECS unreachable is its fail, not an error
        notify_checks.twilio_auth(account),
        notify_checks.whatsapp_status(whatsapp),
        notify_checks.twilio_balance(balance, min_balance=min_balance),
    ]
    subs.append(notify_checks.log_send_errors(_notification_lines(_recent(logs, since))))
    subs.append(otp_route_probe(otp_route))
    return fold("TRIAGE_NOTIFICATIONS", subs, what="Notifications")


def _notification_lines(logs: pd.DataFrame | BaseException) -> pd.DataFrame | BaseException:
    if isinstance(logs, BaseException) or logs is None or logs.empty:
        return logs
    return logs[log_checks.is_notification(logs)].reset_index(drop=True)


def otp_route_probe(probe: api_checks.Probe) -> Finding:
    """OTP_ENDPOINT_FAILING from a POST with an empty body (the Fetched of ``sources.http.probe``): the route
    should refuse it (4xx) without sending; a 5xx or no answer means the endpoint itself is failing; a 3xx (never
    followed) is a warn: something else answers for the route. It cannot tell that an SMS would be delivered:
    the notifications runbook's send-test-otp step does that."""
    code, title = "OTP_ENDPOINT_FAILING", "OTP route answers a validation probe"
    got, facts = api_checks.answer_of(probe)
    if isinstance(got, BaseException):
        if not unreachable(got):
            return Finding.error(code, title, got)
        data = {"status": None, "latency_ms": facts["latency_ms"]}
        return Finding.fail(code, "OTP route unreachable", str(got), **data)
    if got is None:
        return Finding.skipped(code, title, "no API URL")
    status = got.status
    data = {"status": status, "latency_ms": got.latency_ms}
    if int(status) >= 500:
        return Finding.fail(
            code,
            f"OTP route answers {status}",
            f"POST {{}} (no phone, nothing sent) answered HTTP {status}; a healthy route refuses it with 4xx",
            **data,
        )
    if (
        300 <= int(status) < 400
    ):  # not followed (credentials go to their own host only): the route is elsewhere
        return Finding.warn(
            code,
            f"OTP route redirects (HTTP {status})",
            f"POST {{}} was answered with {got.problem or 'a redirect'}; the app's route should "
            "refuse it with 4xx itself (a maintenance page, a login wall or a misrouted load balancer "
            "answers this way)",
            **data,
        )
    return Finding.ok(
        code,
        f"OTP route up (HTTP {status} to an empty request)",
        "validation probe only: no phone number, nothing sent",
        **data,
    )


def migrations(alembic: AlembicSignals | BaseException | None, logs: pd.DataFrame | BaseException) -> Finding:
    """TRIAGE_MIGRATIONS: alembic heads vs the database revision, 'already exists' in the logs, schema drift."""
    if alembic is None:  # never fetched
        subs = [Finding.skipped("MIGRATION_PENDING", "Alembic state", "not fetched")]
        return fold("TRIAGE_MIGRATIONS", subs, what="Migrations")
    if isinstance(alembic, BaseException):
        return fold(
            "TRIAGE_MIGRATIONS",
            [Finding.error("MIGRATION_PENDING", "Alembic state", alembic)],
            what="Migrations",
        )
    state, drift = alembic.state, alembic.drift
    subs = [
        migration_checks.pending(state),
        migration_checks.multiple_heads(state),
        migration_checks.unknown_revision(state),
        migration_checks.object_exists(logs)
        if logs is not None
        else Finding.skipped("MIGRATION_OBJECT_EXISTS", "'already exists' errors in the logs", "not fetched"),
        index_only_drift(migration_checks.schema_drift(drift), drift),
    ]
    return fold("TRIAGE_MIGRATIONS", subs, what="Migrations")


def index_only_drift(finding: Finding, drift: Any) -> Finding:
    """Drift that is only indexes is not a failed migration: a missing index makes queries scan, which is
    the latency runbook's (DB_MISSING_INDEX). Tables and columns that differ stay the migration runbook's."""
    diffs = getattr(unwrap(drift), "diffs", None)
    if finding.status is not Status.FAIL or not isinstance(diffs, pd.DataFrame) or diffs.empty:
        return finding
    if not diffs["change"].astype(str).str.contains("index").all():
        return finding
    names = ", ".join(str(n) for n in diffs["name"])
    return Finding.warn(
        "SCHEMA_DRIFT",
        f"Only indexes differ from the models ({names})",
        "the models declare indexes the database lacks (or the reverse): queries may scan; "
        "the api-latency runbook checks DB_MISSING_INDEX",
        runbook="api-latency",
        differences=diffs.to_dict(orient="records"),
    )


# ---------------------------------------------------------------- recommendations

# Probes that go through the API itself: when /health fails without naming a dependency, the API is down
# and these fail with it; they do not point at their own runbooks then.
THROUGH_THE_API = ("WS_HANDSHAKE_FAILING", "OTP_ENDPOINT_FAILING", "API_LATENCY_HIGH")


def health_dependencies(health: Any) -> list[str]:
    """Dependencies a 5xx /health body names as failing (the API process itself answered; ``health``: the
    :class:`~propflow_ops.records.HttpAnswer` of ``sources.http.probe``, or its Fetched)."""
    if isinstance(health, Fetched):
        health = health.value
    if not isinstance(health, HttpAnswer) or health.ok or not isinstance(health.body, Mapping):
        return []
    if int(health.status) < 500:
        return []
    return [
        k
        for k, v in health.body.items()
        if k.lower() in HEALTH_DEPENDENCIES and str(v).lower() not in ("ok", "up", "healthy", "true")
    ]


@takes_fetched
def recommendations(findings: Iterable[Finding], *, health: Any = None) -> list[tuple[str, str]]:
    """(runbook, reason) for every runbook a failing or warning sub-check points at, most severe first."""
    reasons: dict[str, list[str]] = {}
    findings = list(findings)
    deps = health_dependencies(health)
    api_down = not deps and any(
        sub["code"] == "API_HEALTH_FAILING" and sub["status"] == "fail"
        for comp in findings
        for sub in comp.data.get("checks", [])
    )
    for comp in findings:
        for sub in comp.data.get("checks", []):
            if sub["status"] not in ("fail", "warn"):
                continue
            if api_down and sub["code"] in THROUGH_THE_API:
                reasons.setdefault("api-down", []).append(f"{sub['code']} fails with the API")
                continue
            slug = sub.get("runbook")
            if sub["code"] == "API_HEALTH_FAILING" and deps:
                for dep in deps:
                    reasons.setdefault(HEALTH_DEPENDENCIES[dep.lower()], []).append(
                        f"/health answers {health.status} naming {dep} (the API process is up)"
                    )
                continue
            if slug:
                reasons.setdefault(slug, []).append(f"{sub['code']} {sub['status']}: {sub['title']}")
    order = {s: i for i, s in enumerate(TIE_ORDER)}
    ranked = sorted(reasons, key=lambda s: (RUNBOOKS[s].severity, order.get(s, 99)))
    return [(s, f"{RUNBOOKS[s].severity}: " + "; ".join(dict.fromkeys(reasons[s]))) for s in ranked]


def grid_rows(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Rows for plots.status_grid: one tile per component."""
    by_code = {f.code: f for f in findings}
    return [
        {
            "component": label,
            "status": by_code[code].status.value if code in by_code else "skipped",
            "title": by_code[code].title if code in by_code else "",
        }
        for code, label in COMPONENTS
    ]


def summary_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """Component, status, what was seen, and the sub-checks that are not ok."""
    rows = []
    for f in findings:
        bad = [c["code"] for c in f.data.get("checks", []) if c["status"] in ("fail", "warn", "error")]
        rows.append(
            {
                "component": LABELS.get(f.code, f.code),
                "code": f.code,
                "status": f.status.value,
                "seen": f.title,
                "not ok": ", ".join(bad),
            }
        )
    return pd.DataFrame(rows, columns=["component", "code", "status", "seen", "not ok"])


def recent_start(end: datetime, minutes: int = RECENT_MINUTES) -> datetime:
    return end - timedelta(minutes=minutes)


def judge(
    signals: TriageSignals,
    *,
    idle_in_transaction_s: float = db_checks.IDLE_IN_TRANSACTION_S,
    long_query_s: float = db_checks.LONG_RUNNING_QUERY_S,
    pool_pct: float = db_checks.POOL_EXHAUSTED_PCT,
    latency_p95_ms: float = LATENCY_P95_MS,
    error_rate_pct: float = ERROR_RATE_PCT,
    errors_per_min: float = ERRORS_PER_MIN,
    recent_minutes: int = RECENT_MINUTES,
    bucket: str = "propflow-uploads",
) -> list[Finding]:
    """Every component's finding from the sweep's signals (:class:`~propflow_ops.signals.TriageSignals`), in grid
    order; each signal is judged as its value or its error."""
    s = signals
    end = s.end
    since = recent_start(end, recent_minutes)
    logs = s.logs.outcome
    task = s.task.outcome
    return [
        api(s.health),
        ecs(s.service.outcome, s.stopped.outcome, since=since, end=end),
        database(
            s.rds,
            s.database,
            task,
            idle_in_transaction_s=idle_in_transaction_s,
            long_query_s=long_query_s,
            pool_pct=pool_pct,
            now=end,
        ),
        redis(s.cache.outcome, s.redis),
        websocket(s.ws, logs, start=s.start, end=end),
        s3(
            bucket,
            s.bucket.outcome,
            s.policy.outcome,
            task,
            s.sample.outcome,
            s.referenced.outcome,
            logs,
            recent=since,
        ),
        errors(
            logs,
            since=since,
            end=end,
            error_rate_pct=error_rate_pct,
            errors_per_min=errors_per_min,
            latency_p95_ms=latency_p95_ms,
        ),
        notifications(
            s.settings.outcome,
            s.twilio_account,
            s.twilio_balance,
            s.whatsapp,
            s.otp_route,
            logs,
            since=since,
        ),
        migrations(s.alembic.outcome, logs),
    ]


@takes_fetched
def trend_frames(
    logs: pd.DataFrame | BaseException, *, since: datetime, end: datetime
) -> dict[str, pd.DataFrame]:
    """Per-minute p95 latency and error lines over the recent window, as timestamp/value frames for plots."""
    empty = pd.DataFrame(columns=["timestamp", "value"])
    if isinstance(logs, BaseException) or logs is None or logs.empty:
        return {"p95_ms": empty, "errors_per_min": empty}
    recent = _recent(logs, since)
    assert isinstance(recent, pd.DataFrame)
    pm = latency_checks.per_minute_from_logs(recent)
    p95 = pm[["timestamp", "p95"]].rename(columns={"p95": "value"}) if len(pm) else empty
    level = (
        recent["level"].astype("string").fillna("").str.upper() if "level" in recent else pd.Series(dtype=str)
    )
    errs = recent[level.isin(["ERROR", "CRITICAL", "FATAL"])] if len(level) else recent.iloc[0:0]
    minutes = pd.date_range(pd.Timestamp(since).floor("1min"), pd.Timestamp(end).floor("1min"), freq="1min")
    counts = (
        pd.to_datetime(errs["timestamp"], utc=True)
        .dt.floor("1min")
        .value_counts()
        .reindex(minutes, fill_value=0)
        if len(errs)
        else pd.Series(0, index=minutes)
    )
    return {
        "p95_ms": p95,
        "errors_per_min": pd.DataFrame({"timestamp": counts.index, "value": counts.values}),
    }


def record_recommendations(ev: Any, recs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Put the recommendations into the evidence (in order) and return them as a table."""
    for slug, reason in recs:
        ev.recommend(slug, reason)
    return pd.DataFrame(
        [
            {"order": i + 1, "runbook": s, "severity": RUNBOOKS[s].severity, "why": r}
            for i, (s, r) in enumerate(recs)
        ],
        columns=["order", "runbook", "severity", "why"],
    )
