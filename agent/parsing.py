"""Find the code in a model's reply: Markdown fences (```python / ```py) or ``<code>`` tags."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["cut_at_stop", "extract_code"]

# A fenced block opened by ```python / ```py / ```python3 (any case); the closing fence may be
# missing when a stop sequence cut the reply short, so the block may also run to the end.
_FENCED = re.compile(
    r"```[ \t]*(?:python3?|py)[ \t]*\r?\n(.*?)(?:\r?\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE
)
# smolagents' format: <code> ... </code> (the closing tag likewise optional at the very end).
_TAGGED = re.compile(r"<code>(.*?)(?:</code>|\Z)", re.DOTALL)


def extract_code(text: str) -> str | None:
    """Return the code in ``text``, or ``None`` if it has no code block.

    Several blocks are joined in order: models sometimes split one action across blocks.
    """
    blocks = [m.group(1) for m in _FENCED.finditer(text)]
    if not blocks:
        blocks = [m.group(1) for m in _TAGGED.finditer(text)]
    blocks = [b.strip("\r\n").rstrip() for b in blocks]
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        return None
    return "\n\n".join(_dedent(b) for b in blocks)


def _dedent(block: str) -> str:
    # Blocks inside list items are indented as a whole; strip the common margin only.
    lines = block.splitlines()
    margins = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    margin = min(margins, default=0)
    return "\n".join(line[margin:] for line in lines)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Cut ``text`` at the first stop sequence that starts a line outside a code block.

    For servers that ignore ``stop``: a model that goes on to write its own "Observation:"
    would otherwise feed invented results (and the code that follows them) into the run.
    """
    cut = len(text)
    for stop in stops:
        if not stop:
            continue
        for match in re.finditer(rf"^[ \t]*{re.escape(stop)}", text, re.MULTILINE):
            # An even number of fences before the match: it is outside any code block.
            if text.count("```", 0, match.start()) % 2 == 0 and _outside_tags(text, match.start()):
                cut = min(cut, match.start())
                break
    return text[:cut].rstrip() if cut < len(text) else text


def _outside_tags(text: str, index: int) -> bool:
    return text.count("<code>", 0, index) <= text.count("</code>", 0, index)
