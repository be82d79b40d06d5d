"""matplotlib figures from DataFrames: a UTC time axis, the threshold as a line, the window shaded.

Every function returns a ``Figure`` (the notebook's last expression displays it) and never raises on empty
data: an empty frame gives a small figure saying there was no data, so a report never loses its layout.
Colours read on JupyterLab's light and dark themes (figures carry their own white background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

THRESHOLD_COLOUR = "#b71c1c"
SERIES_COLOURS = ("#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037")
STATUS_COLOURS = {
    "ok": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#b71c1c",
    "error": "#6a1b9a",
    "skipped": "#9e9e9e",
}


def _figure(title: str, height: float = 3.0) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(9, height), facecolor="white")
    ax.set_facecolor("white")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, alpha=0.3)
    plt.close(fig)  # displayed by returning it; not kept in pyplot's state
    return fig, ax


def _no_data(ax: Any, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="#616161")
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Any) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.set_xlabel("UTC")


def timeseries(
    frames: Mapping[str, pd.DataFrame] | pd.DataFrame,
    *,
    title: str,
    ylabel: str = "",
    threshold: float | None = None,
    threshold_label: str | None = None,
    x: str = "timestamp",
    y: str = "value",
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Lines over time; ``frames`` is one frame or {label: frame}, each with ``x`` and ``y`` columns."""
    fig, ax = _figure(title)
    series = {"": frames} if isinstance(frames, pd.DataFrame) else dict(frames)
    drawn = 0
    for i, (label, df) in enumerate(series.items()):
        if df is None or df.empty or x not in df or y not in df:
            continue
        ax.plot(df[x], df[y], label=label or None, color=SERIES_COLOURS[i % len(SERIES_COLOURS)], lw=1.5)
        drawn += 1
    if not drawn:
        _no_data(ax, "no data in the window")
        return fig
    if threshold is not None:
        ax.axhline(
            threshold,
            color=THRESHOLD_COLOUR,
            ls="--",
            lw=1.2,
            label=threshold_label or f"threshold {threshold:g}",
        )
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    _time_axis(ax)
    if drawn > 1 or threshold is not None:
        ax.legend(loc="upper left", fontsize=8)
    return fig


def per_minute(
    df: pd.DataFrame,
    *,
    title: str,
    by: str | None = None,
    ts: str = "timestamp",
    freq: str = "1min",
    threshold: float | None = None,
    ylabel: str = "events / min",
) -> Figure:
    """Stacked bars of event counts per minute (optionally split by a column)."""
    fig, ax = _figure(title)
    if df is None or df.empty:
        _no_data(ax, "no matching events in the window")
        return fig
    counts = count_per_minute(df, by=by, ts=ts, freq=freq)
    bottom = None
    width = pd.Timedelta(freq).total_seconds() / 86400 * 0.9
    for i, col in enumerate(counts.columns):
        ax.bar(
            counts.index,
            counts[col],
            width=width,
            bottom=bottom,
            label=str(col),
            color=SERIES_COLOURS[i % len(SERIES_COLOURS)],
        )
        bottom = counts[col] if bottom is None else bottom + counts[col]
    if threshold is not None:
        ax.axhline(threshold, color=THRESHOLD_COLOUR, ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax.set_ylabel(ylabel)
    _time_axis(ax)
    if len(counts.columns) > 1 or threshold is not None:
        ax.legend(loc="upper left", fontsize=8)
    return fig


def count_per_minute(
    df: pd.DataFrame, *, by: str | None = None, ts: str = "timestamp", freq: str = "1min"
) -> pd.DataFrame:
    """Counts per time bucket, one column per value of ``by`` (or a single ``count`` column)."""
    if df.empty:
        return pd.DataFrame()
    keyed = df.set_index(ts)
    if by is None:
        return keyed.resample(freq).size().to_frame("count")
    return (
        keyed.groupby([pd.Grouper(freq=freq), keyed[by].astype("string").fillna("?")])
        .size()
        .unstack(fill_value=0)
    )


def bars(
    values: Mapping[str, float] | pd.Series, *, title: str, xlabel: str = "", threshold: float | None = None
) -> Figure:
    """Horizontal bars, largest at the top (slowest endpoints, error types...)."""
    series = pd.Series(values, dtype="float64").sort_values()
    fig, ax = _figure(title, height=max(2.0, 0.35 * len(series) + 1))
    if series.empty:
        _no_data(ax, "nothing to show")
        return fig
    ax.barh([str(i) for i in series.index], series.values, color=SERIES_COLOURS[0])
    if threshold is not None:
        ax.axvline(threshold, color=THRESHOLD_COLOUR, ls="--", lw=1.2, label=f"threshold {threshold:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(xlabel)
    return fig


def status_grid(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "Component status",
    label: str = "component",
    status: str = "status",
    note: str = "title",
) -> Figure:
    """One coloured tile per component: readable at a glance (triage)."""
    n = max(len(rows), 1)
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig, ax = plt.subplots(figsize=(2.4 * cols, 1.1 * nrows + 0.5), facecolor="white")
    plt.close(fig)
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlim(0, cols)
    ax.set_ylim(0, nrows)
    ax.axis("off")
    for i, row in enumerate(rows):
        r, c = divmod(i, cols)
        st = str(row.get(status, "skipped"))
        colour = STATUS_COLOURS.get(st, "#9e9e9e")
        ax.add_patch(plt.Rectangle((c + 0.04, nrows - r - 0.96), 0.92, 0.9, color=colour))
        text_colour = "black" if st == "warn" else "white"
        ax.text(
            c + 0.5,
            nrows - r - 0.42,
            str(row.get(label, "")),
            ha="center",
            va="center",
            color=text_colour,
            fontsize=10,
            weight="bold",
        )
        ax.text(
            c + 0.5, nrows - r - 0.72, st.upper(), ha="center", va="center", color=text_colour, fontsize=8
        )
    return fig
