"""Turn Python values into MIME bundles (the value of a cell's last expression, figures)."""

from __future__ import annotations

import base64
import io
import json
import sys
from typing import Any

from .charts import figure_chart

MAX_TEXT_CHARS = 1_000_000


def _clip(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS] + f"... [{len(text) - MAX_TEXT_CHARS} characters clipped]"
    return text


def _is_figure(value: Any) -> bool:
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(value, figure_module.Figure)


def figure_png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def bundle(value: Any) -> dict[str, Any]:
    """The MIME bundle of ``value``: ``text/plain`` always, richer forms when it offers them."""
    data: dict[str, Any] = {}
    if _is_figure(value):
        data["image/png"] = figure_png(value)  # draws it, which also fills in tick labels
        try:
            chart = figure_chart(value)
        except Exception:  # the picture matters more than the data behind it
            chart = None
        if chart is not None:
            data["e2b/chart"] = chart
    hook = getattr(value, "_repr_mimebundle_", None)
    if callable(hook) and not isinstance(value, type):
        try:
            produced = hook()
            if isinstance(produced, tuple):
                produced = produced[0]
            if isinstance(produced, dict):
                data.update({k: v for k, v in produced.items() if isinstance(k, str)})
        except Exception:
            pass
    for mime, method in (
        ("text/html", "_repr_html_"),
        ("text/markdown", "_repr_markdown_"),
        ("image/svg+xml", "_repr_svg_"),
        ("text/latex", "_repr_latex_"),
        ("application/json", "_repr_json_"),
        ("image/png", "_repr_png_"),
        ("image/jpeg", "_repr_jpeg_"),
    ):
        if mime in data or isinstance(value, type):
            continue
        method_fn = getattr(value, method, None)
        if not callable(method_fn):
            continue
        try:
            produced = method_fn()
        except Exception:
            continue
        if produced is None:
            continue
        if isinstance(produced, bytes):
            produced = base64.b64encode(produced).decode("ascii")
        data[mime] = produced
    try:
        data["text/plain"] = _clip(repr(value))
    except Exception as exc:  # a broken __repr__ must not lose the rest of the cell
        data["text/plain"] = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    for key, item in list(data.items()):
        if isinstance(item, str):
            data[key] = _clip(item)
        elif key == "application/json":
            try:
                json.dumps(item)
            except (TypeError, ValueError):
                del data[key]
    return data


def plain_json(value: Any, depth: int = 0) -> tuple[bool, Any]:
    """``(True, value)`` when ``value`` is JSON data (no custom classes), else ``(False, None)``."""
    if depth > 100:
        return False, None
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, int):
        return (abs(value) < 2**63), value
    if isinstance(value, float):
        return (value == value and value not in (float("inf"), float("-inf"))), value
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            ok, converted = plain_json(item, depth + 1)
            if not ok:
                return False, None
            out.append(converted)
        return True, out
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            ok, converted = plain_json(item, depth + 1)
            if not isinstance(key, str) or not ok:
                return False, None
            result[key] = converted
        return True, result
    return False, None


def open_figures() -> list[Any]:
    """Matplotlib figures still open (only if the user imported pyplot)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    return [pyplot.figure(num) for num in pyplot.get_fignums()]


def close_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
