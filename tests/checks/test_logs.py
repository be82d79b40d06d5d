from __future__ import annotations

from datetime import timedelta

from checks.logframes import NOW, frame, line
from propflow_ops.checks import logs

START = NOW - timedelta(minutes=60)


def baseline(minutes: int = 60, errors_every: int = 20) -> list[dict]:
    out = []
    for m in range(minutes, 0, -1):
        out += [line(m - 0.1 * i) for i in range(5)]
        if m % errors_every == 0:
            out.append(line(m, "ERROR", "Internal Server Error", error_type="KeyError"))
    return out


def test_matching_is_case_insensitive_regex_and_counts():
    df = frame(
        [
            line(3, "ERROR", "FATAL: sorry, too many clients already"),
            line(2, "ERROR", "QueuePool limit of size 20 overflow 10 reached"),
            line(1, "INFO", "request completed"),
        ]
    )
    assert logs.count_matching(df, r"queuepool limit|too many clients") == 2
    assert logs.count_matching(df, "nothing like this") == 0
    assert len(logs.errors(df)) == 2


def test_per_minute_zero_fills_the_window():
    df = frame([line(5.5, "ERROR", "x"), line(5.4, "ERROR", "x"), line(1, "ERROR", "y")])
    counts = logs.per_minute(df, start=NOW - timedelta(minutes=10), end=NOW)
    assert len(counts) == 11
    assert counts.sum() == 3
    assert counts.max() == 2


def test_top_messages_folds_numbers_and_ids():
    df = frame(
        [
            line(3, "ERROR", "timeout after 30.5 ms on req-abc123"),
            line(2, "ERROR", "timeout after 3001 ms on req-ff01"),
            line(1, "ERROR", "other"),
        ]
    )
    top = logs.top_messages(df, 5)
    assert top.iloc[0]["count"] == 2
    assert "<n>" in top.iloc[0]["message"] and "<id>" in top.iloc[0]["message"]


def test_error_spike_fails_on_a_burst_and_not_on_the_baseline():
    healthy = frame(baseline())
    assert logs.error_spike(healthy, start=START, end=NOW).status == "ok"
    burst = [
        line(m - 0.01 * i, "ERROR", "502 Bad Gateway: upstream worker killed")
        for m in range(10, 0, -1)
        for i in range(8)
    ]
    f = logs.error_spike(frame(baseline() + burst), start=START, end=NOW)
    assert f.status == "fail"
    assert f.data["peak_per_minute"] >= 8
    assert "502 Bad Gateway" in f.detail


def test_error_spike_threshold_is_a_parameter_and_fetch_errors_are_errors():
    burst = [line(1 - 0.01 * i, "ERROR", "boom") for i in range(4)]
    df = frame(baseline() + burst)
    assert logs.error_spike(df, start=START, end=NOW).status == "ok"
    assert logs.error_spike(df, start=START, end=NOW, per_minute_threshold=3).status == "fail"
    assert logs.error_spike(RuntimeError("logs unreachable")).status == "error"


def test_pattern_finding():
    df = frame([line(2, "WARNING", "slow query: 1200 ms SELECT 1")])
    f = logs.pattern_finding(df, "DB_SLOW_QUERIES", "slow query", what="slow query")
    assert (f.status, f.data["count"]) == ("fail", 1)
    assert logs.pattern_finding(df, "X_Y", "nope", what="nope").status == "ok"
    assert logs.pattern_finding(df, "X_Y", "slow", what="slow", status="warn").status == "warn"


def test_summary_is_computed_once_per_frame_and_never_handed_to_another():
    df = frame(baseline(20))
    first = logs.summary(df)
    first["kinds"]["error"] = -1  # a caller changing its copy changes nothing for the next
    again = logs.summary(df)
    assert again["kinds"]["error"] == 1 and again["lines"] == len(df) and again == logs.summary(df)
    errors_only = df[logs.is_error(df)]  # a frame derived from it has its own
    assert logs.summary(errors_only)["lines"] == len(errors_only) < again["lines"]
    grown = df.copy()
    df["level"] = "ERROR"  # the same object, changed (a column set): computed again
    assert logs.summary(df)["kinds"]["error"] == len(df)
    key = id(grown)
    assert logs.summary(grown)["lines"] == len(grown) and key in logs._summaries
    del grown  # a frame's entry goes with it
    assert key not in logs._summaries
