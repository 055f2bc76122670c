"""``display()`` and the common rich objects, sent as results of the running cell."""

from __future__ import annotations

import base64
import json as _json
import os
import sys
from typing import Any

__all__ = ["HTML", "JSON", "SVG", "DisplayObject", "Image", "Javascript", "Latex", "Markdown",
           "Pretty", "clear_output", "display", "display_html", "display_json",
           "display_latex", "display_markdown", "display_png", "display_svg"]


def _hook() -> Any:
    return sys.modules.get("_selfbox_display")


def display(*objs: Any, raw: bool = False, **_ignored: Any) -> None:
    """Show each object as a result (``raw=True``: each object is a MIME bundle already)."""
    hook = _hook()
    if hook is not None:
        hook.show(*objs, raw=raw)
        return
    for obj in objs:  # outside a selfbox sandbox: plain Python's fallback
        print(repr(obj))


def clear_output(wait: bool = False) -> None:
    """Results already sent cannot be recalled; a no-op, as in a non-notebook frontend."""


class DisplayObject:
    _mime = "text/plain"

    def __init__(self, data: Any = None, url: str | None = None,
                 filename: str | None = None, **_ignored: Any) -> None:
        if filename is not None and data is None:
            with open(filename, "rb" if self._binary() else "r") as handle:
                data = handle.read()
        self.data, self.url, self.filename = data, url, filename

    def _binary(self) -> bool:
        return False

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {self._mime: self.data} if self.data is not None else {}

    def __repr__(self) -> str:
        return f"<IPython.core.display.{type(self).__name__} object>"


class HTML(DisplayObject):
    _mime = "text/html"


class Markdown(DisplayObject):
    _mime = "text/markdown"


class Latex(DisplayObject):
    _mime = "text/latex"


class SVG(DisplayObject):
    _mime = "image/svg+xml"


class Javascript(DisplayObject):
    _mime = "application/javascript"


class Pretty(DisplayObject):
    _mime = "text/plain"

    def __repr__(self) -> str:
        return str(self.data)


class JSON(DisplayObject):
    _mime = "application/json"

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        if isinstance(data, str) and "filename" not in kwargs:
            data = _json.loads(data)
        super().__init__(data, **kwargs)


class Image(DisplayObject):
    def __init__(self, data: Any = None, url: str | None = None, filename: str | None = None,
                 format: str | None = None, **kwargs: Any) -> None:
        if isinstance(data, str) and os.path.exists(data) and filename is None:
            data, filename = None, data
        self.format = (format or _format_of(filename or url or "")).lower().replace("jpg", "jpeg")
        super().__init__(data, url, filename, **kwargs)

    def _binary(self) -> bool:
        return True

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self.data is None:
            return {"text/html": f'<img src="{self.url}"/>'} if self.url else {}
        data = self.data
        if isinstance(data, bytes):
            data = base64.b64encode(data).decode("ascii")
        return {f"image/{self.format}": data}


def _format_of(name: str) -> str:
    extension = os.path.splitext(name)[1].lstrip(".")
    return extension if extension in ("png", "jpeg", "jpg", "gif", "webp") else "png"


def _display_as(mime: str) -> Any:
    def show(*objs: Any, raw: bool = False, **_ignored: Any) -> None:
        display(*({mime: obj} for obj in objs) if raw else objs, raw=raw)
    return show


display_html = _display_as("text/html")
display_markdown = _display_as("text/markdown")
display_latex = _display_as("text/latex")
display_json = _display_as("application/json")
display_svg = _display_as("image/svg+xml")
display_png = _display_as("image/png")
