"""CloudWatch metrics -> a (timestamp, value) frame.

moto: Average/Maximum/Minimum/Sum/SampleCount work; percentiles (``p95``) do
not (empty or HTTP 500): compute percentiles from request logs instead.

API latency percentiles come from where the team keeps them: a custom
namespace/metric/dimensions (:func:`latency_percentiles`, :func:`dimensions`) or the
load balancer's ``TargetResponseTime`` (:func:`alb_response_time`, seconds -> ms);
``checks.latency.latency_per_minute`` picks the first that has data, else the logs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from propflow_ops.sources import aws

COLUMNS = ["timestamp", "value"]


def empty_series_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "value": pd.Series([], dtype="float64"),
        }
    )


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def metric_series(
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    period: int = 60,
    stat: str = "Average",
    client: Any = None,
) -> pd.DataFrame:
    """One metric statistic over [start, end] via GetMetricData (paginated), sorted by time.

    ``stat`` is a CloudWatch statistic (``Average``, ``Maximum``, ``Sum``, ``p95`` ...).
    Columns: ``timestamp`` datetime64[ns, UTC], ``value`` float64; no rows when
    CloudWatch has no data. ``df.attrs`` holds namespace/metric/stat/period and
    the query's ``status_code`` (``Complete`` / ``PartialData``) and messages.
    """
    return metric_stats(
        namespace, metric, dimensions, start, end, stats=(stat,), period=period, client=client
    )[stat]


def metric_stats(
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    stats: tuple[str, ...] | list[str],
    period: int = 60,
    client: Any = None,
) -> dict[str, pd.DataFrame]:
    """Several statistics of one metric (``p50``, ``p95``, ``p99`` say) in one GetMetricData call per page:
    stat -> the frame :func:`metric_series` describes."""
    cw = client or aws.client("cloudwatch")
    ids = {f"m{i}": stat for i, stat in enumerate(stats)}
    queries = [
        {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                },
                "Period": int(period),
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for qid, stat in ids.items()
    ]
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": _utc(start),
        "EndTime": _utc(end),
        "ScanBy": "TimestampAscending",
    }
    stamps: dict[str, list[datetime]] = {q: [] for q in ids}
    values: dict[str, list[float]] = {q: [] for q in ids}
    status_code: dict[str, str | None] = {q: None for q in ids}
    messages: dict[str, list[str]] = {q: [] for q in ids}
    token: str | None = None
    while True:
        if token:
            kwargs["NextToken"] = token
        resp = cw.get_metric_data(**kwargs)
        for result in resp.get("MetricDataResults", []):
            qid = result.get("Id")
            if qid not in ids:
                continue
            stamps[qid].extend(result.get("Timestamps", []))
            values[qid].extend(float(v) for v in result.get("Values", []))
            status_code[qid] = result.get("StatusCode", status_code[qid])
            messages[qid].extend(m.get("Value", "") for m in result.get("Messages", []) if m.get("Value"))
        new_token = resp.get("NextToken")
        if not new_token or new_token == token:
            break
        token = new_token
    out: dict[str, pd.DataFrame] = {}
    for qid, stat in ids.items():
        if stamps[qid]:
            df = pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(pd.Series(stamps[qid]), utc=True).astype(
                        "datetime64[ns, UTC]"
                    ),
                    "value": pd.Series(values[qid], dtype="float64"),
                }
            )
            df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
        else:
            df = empty_series_frame()
        df.attrs.update(
            namespace=namespace,
            metric=metric,
            dimensions=dict(dimensions),
            stat=stat,
            period=int(period),
            status_code=status_code[qid],
            messages=messages[qid],
        )
        out[stat] = df
    return out


PERCENTILES = ("p50", "p95", "p99")
#: The load balancer's per-request time from the target (seconds), in CloudWatch.
ALB_NAMESPACE = "AWS/ApplicationELB"
ALB_METRIC = "TargetResponseTime"


def dimensions(spec: str | dict[str, str] | None, default: dict[str, str]) -> dict[str, str]:
    """Metric dimensions from a parameter: ``"Service=propflow-api,Stage=prod"``, a JSON object, or a dict;
    empty means ``default``. Raises BadInput (exit 2) naming what is wrong."""
    from propflow_ops.incident import BadInput

    if spec is None or spec == "" or spec == {}:
        return dict(default)
    if isinstance(spec, dict):
        items = spec
    elif spec.strip().startswith("{"):
        import json

        try:
            items = json.loads(spec)
        except ValueError:
            raise BadInput(f"latency_dimensions: not valid JSON: {spec[:80]!r}") from None
        if not isinstance(items, dict):
            raise BadInput("latency_dimensions: expected an object of name: value")
    else:
        items = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise BadInput(f"latency_dimensions: expected Name=Value[,Name=Value], not {part.strip()!r}")
            items[name.strip()] = value.strip()
    bad = [k for k, v in items.items() if not isinstance(k, str) or not isinstance(v, str) or not k or not v]
    if bad or len(items) > 30:
        raise BadInput(
            f"latency_dimensions: names and values must be non-empty strings ({bad[:1] or 'too many'})"
        )
    return {str(k): str(v) for k, v in items.items()}


def label(namespace: str, metric: str, dims: dict[str, str]) -> str:
    return f"{namespace} {metric}" + (f" ({', '.join(f'{k}={v}' for k, v in dims.items())})" if dims else "")


def latency_percentiles(
    namespace: str,
    metric: str,
    dims: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    scale: float = 1.0,
    period: int = 60,
    client: Any = None,
) -> dict[str, pd.DataFrame]:
    """p50/p95/p99 of a latency metric (CloudWatch extended statistics), values times ``scale`` (1000 for a
    metric in seconds); each frame's ``attrs["label"]`` names the metric and its dimensions."""
    got = metric_stats(namespace, metric, dims, start, end, stats=PERCENTILES, period=period, client=client)
    name = label(namespace, metric, dims)
    for frame in got.values():
        if scale != 1.0 and len(frame):
            frame["value"] = frame["value"] * scale
        frame.attrs["label"] = name
        frame.attrs["scale"] = scale
    return got


def alb_response_time(
    load_balancer: str,
    start: datetime,
    end: datetime,
    *,
    target_group: str = "",
    period: int = 60,
    client: Any = None,
) -> dict[str, pd.DataFrame]:
    """The load balancer's ``TargetResponseTime`` p50/p95/p99 in milliseconds (CloudWatch has it in seconds).

    ``load_balancer`` is the ALB's dimension value (``app/propflow-alb/50dc6c495c0c9188``, the end of its
    ARN); ``target_group`` (``targetgroup/propflow-api/...``) narrows it to the API's targets."""
    dims = {"LoadBalancer": load_balancer}
    if target_group:
        dims["TargetGroup"] = target_group
    return latency_percentiles(
        ALB_NAMESPACE, ALB_METRIC, dims, start, end, scale=1000.0, period=period, client=client
    )
