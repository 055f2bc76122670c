"""The data behind a matplotlib figure, in the shape E2B's SDK reads as ``Result.chart``.

E2B's interpreter sends, beside a figure's PNG, what was plotted (``e2b/chart``): line and
scatter points, bar values, pie wedges, one chart per axes (a "superchart" when there are
several), so that a front end can draw it interactively. Figures that are none of these kinds
get no chart, never a wrong one.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["figure_chart"]

MAX_POINTS = 20_000  # beyond this the PNG alone is sent: the chart would dwarf it
_SCALES = {"linear", "log", "symlog", "logit", "function", "functionlog", "asinh"}


def figure_chart(figure: Any) -> dict[str, Any] | None:
    axes = [ax for ax in figure.get_axes() if ax.get_visible()]
    charts = [chart for chart in map(_axes_chart, axes) if chart is not None]
    if not charts or len(charts) != len(axes) or _size(charts) > MAX_POINTS:
        return None
    if len(charts) == 1:
        return charts[0]
    suptitle = getattr(figure, "_suptitle", None)
    return {"type": "superchart", "title": suptitle.get_text() if suptitle else None,
            "elements": charts}


def _axes_chart(ax: Any) -> dict[str, Any] | None:
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.patches import Rectangle, Wedge

    lines = [line for line in ax.lines if line.get_visible()]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    others = [c for c in ax.collections if not isinstance(c, PathCollection)]
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    loose = [p for p in ax.patches if not isinstance(p, (Wedge, Rectangle))]
    if others or loose or any(line.get_label() == "_nolegend_" for line in lines):
        return None  # fills, box plots, ...: kinds the SDK's chart models cannot describe
    title = ax.get_title() or None
    if wedges and not (lines or scatters or bars):
        return {"type": "pie", "title": title, "elements": [
            {"label": w.get_label(), "angle": _number(abs(w.theta2 - w.theta1)),
             "radius": _number(w.r)} for w in wedges]}
    base = {"title": title, "x_label": ax.get_xlabel() or None,
            "y_label": ax.get_ylabel() or None, "x_unit": None, "y_unit": None}
    if bars and not (lines or scatters or wedges):
        return {"type": "bar", **base, "elements": _bar_elements(ax, bars)}
    if wedges or bars:
        return None
    if lines and not scatters:
        kind, elements = "line", [
            {"label": line.get_label(), "points": _points(ax, line.get_xydata())}
            for line in lines]
    elif scatters and not lines:
        kind, elements = "scatter", [
            {"label": c.get_label(), "points": _points(ax, c.get_offsets())} for c in scatters]
    else:
        return None
    return {"type": kind, **base, **_ticks(ax, "x"), **_ticks(ax, "y"), "elements": elements}


def _size(charts: list[dict[str, Any]]) -> int:
    return sum(len(e.get("points", ())) or 1 for chart in charts for e in chart["elements"])


def _bar_elements(ax: Any, containers: list[Any]) -> list[dict[str, Any]]:
    horizontal = any(getattr(c, "orientation", "vertical") == "horizontal" for c in containers)
    axis = ax.yaxis if horizontal else ax.xaxis
    labels = {_round(tick): label.get_text()
              for tick, label in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=False)}
    elements = []
    for container in containers:
        group = container.get_label()
        for bar in container:
            if horizontal:
                where, value = bar.get_y() + bar.get_height() / 2, bar.get_width()
            else:
                where, value = bar.get_x() + bar.get_width() / 2, bar.get_height()
            elements.append({"label": labels.get(_round(where), _plain(where)),
                             "group": group, "value": _number(value)})
    return elements


def _is_date_axis(ax: Any, name: str) -> bool:
    import matplotlib.dates as mdates

    axis = ax.xaxis if name == "x" else ax.yaxis
    formatter = axis.get_major_formatter()
    return isinstance(formatter, (mdates.AutoDateFormatter, mdates.DateFormatter,
                                  mdates.ConciseDateFormatter))


def _ticks(ax: Any, name: str) -> dict[str, Any]:
    axis = ax.xaxis if name == "x" else ax.yaxis
    dates = _is_date_axis(ax, name)
    scale = "datetime" if dates else axis.get_scale()
    return {
        f"{name}_scale": scale if dates or scale in _SCALES else "unknown",
        f"{name}_ticks": [_date(t) if dates else _number(t) for t in axis.get_ticklocs()],
        f"{name}_tick_labels": [label.get_text() for label in axis.get_ticklabels()],
    }


def _points(ax: Any, xy: Any) -> list[list[Any]]:
    x_dates, y_dates = _is_date_axis(ax, "x"), _is_date_axis(ax, "y")
    return [[_date(x) if x_dates else _number(x), _date(y) if y_dates else _number(y)]
            for x, y in xy]


def _date(value: Any) -> str | None:
    import matplotlib.dates as mdates

    number = _number(value)
    return None if number is None else mdates.num2date(number).isoformat()


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> str:
    number = _number(value)
    return "" if number is None else f"{number:g}"


def _round(value: Any) -> float:
    return round(float(value), 6)
