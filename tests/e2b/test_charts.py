"""Result.chart through the real SDK: the data behind matplotlib figures, as E2B sends it."""

from __future__ import annotations

from typing import Any

import pytest
from e2b_code_interpreter.charts import (
    BarChart,
    ChartType,
    LineChart,
    PieChart,
    ScaleType,
    ScatterChart,
    SuperChart,
)

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def _chart(sbx: Any, code: str) -> Any:
    execution = sbx.run_code("import matplotlib.pyplot as plt\n" + code)
    assert execution.error is None, execution.error
    [result] = execution.results
    assert result.png  # the picture is always there
    return result.chart


def test_line_chart(sbx: Any) -> None:
    chart = _chart(sbx, "plt.plot([1, 2, 3], [4, 5, 6], label='up')\nplt.title('Growth')\n"
                        "plt.xlabel('day')\nplt.ylabel('count')\nplt.show()")
    assert isinstance(chart, LineChart) and chart.type == ChartType.LINE
    assert (chart.title, chart.x_label, chart.y_label) == ("Growth", "day", "count")
    assert chart.x_scale == ScaleType.LINEAR and chart.x_tick_labels
    [line] = chart.elements
    assert line.label == "up" and line.points == [(1.0, 4.0), (2.0, 5.0), (3.0, 6.0)]


def test_dates_scatter_bar_and_pie(sbx: Any) -> None:
    dated = _chart(sbx, "import datetime\nplt.plot([datetime.date(2024, 1, 1), "
                        "datetime.date(2024, 1, 2)], [1, 2])\nplt.show()")
    assert dated.x_scale == ScaleType.DATETIME
    assert dated.elements[0].points[0] == ("2024-01-01T00:00:00+00:00", 1.0)

    scatter = _chart(sbx, "plt.scatter([1, 2], [3, 4], label='pts')\nplt.show()")
    assert isinstance(scatter, ScatterChart)
    assert scatter.elements[0].points == [(1.0, 3.0), (2.0, 4.0)]

    bar = _chart(sbx, "plt.bar(['A', 'B'], [3, 5], label='sales')\nplt.show()")
    assert isinstance(bar, BarChart)
    assert [(e.label, e.group, e.value) for e in bar.elements] == [
        ("A", "sales", 3.0), ("B", "sales", 5.0)]

    pie = _chart(sbx, "plt.pie([1, 3], labels=['small', 'big'])\nplt.show()")
    assert isinstance(pie, PieChart)
    assert [(e.label, round(e.angle)) for e in pie.elements] == [("small", 90), ("big", 270)]


def test_several_axes_make_a_superchart_and_unknown_kinds_none(sbx: Any) -> None:
    chart = _chart(sbx, "fig, (a, b) = plt.subplots(1, 2)\na.plot([1, 2])\n"
                        "b.bar([1, 2], [3, 4])\nfig.suptitle('Both')\nplt.show()")
    assert isinstance(chart, SuperChart) and chart.title == "Both"
    assert [c.type for c in chart.elements] == [ChartType.LINE, ChartType.BAR]
    assert _chart(sbx, "plt.fill_between([1, 2], [1, 2])\nplt.show()") is None
    assert _chart(sbx, "plt.boxplot([[1, 2, 3], [2, 3, 4]])\nplt.show()") is None
