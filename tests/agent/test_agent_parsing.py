"""Code extraction from model replies."""

from __future__ import annotations

import pytest

from agent import extract_code
from agent.parsing import cut_at_stop


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Thought: x\n```python\nprint(1)\n```", "print(1)"),
        ("```py\nx = 1\n```\ntrailing text", "x = 1"),
        ("```Python3\nx = 1\n```", "x = 1"),
        ("Thought: tags\n<code>\ny = 2\n</code>", "y = 2"),
        # A stop sequence cut the closing fence off.
        ("Thought\n```python\nfinal_answer(3)\n", "final_answer(3)"),
        # Indentation inside the code is kept, the common margin removed.
        ("  ```python\n  for i in range(2):\n      print(i)\n  ```",
         "for i in range(2):\n    print(i)"),
    ],
)
def test_extracts_code(reply, expected):
    assert extract_code(reply) == expected


def test_several_blocks_are_joined_in_order():
    reply = "```python\na = 1\n```\nthen\n```python\nb = a + 1\n```"
    assert extract_code(reply) == "a = 1\n\nb = a + 1"


@pytest.mark.parametrize(
    "reply",
    [
        "The answer is 4.",
        "```\nprint('untagged fence')\n```",  # no language: may be output, not code
        "```json\n{\"a\": 1}\n```",
        "```python\n\n```",
        "",
    ],
)
def test_no_code(reply):
    assert extract_code(reply) is None


def test_markdown_wins_over_tags():
    reply = "<code>x = 1</code>\n```python\ny = 2\n```"
    assert extract_code(reply) == "y = 2"


def test_cut_at_stop_drops_invented_observations():
    reply = ("Thought: go\n```python\nx = 1\n```\nObservation: x is 1\n"
             "Thought: more\n```python\nfinal_answer(x)\n```")
    cut = cut_at_stop(reply, ["Observation:"])
    assert cut == "Thought: go\n```python\nx = 1\n```"
    assert extract_code(cut) == "x = 1"


@pytest.mark.parametrize(
    "reply",
    [
        "```python\nprint('''\nObservation: inside a string\n''')\n```",
        "<code>\ntext = '''\nObservation: inside tags\n'''\n</code>",
        "Thought: no observation here\n```python\nx = 'Observation: mid-line'\n```",
    ],
)
def test_cut_at_stop_ignores_stops_inside_code(reply):
    assert cut_at_stop(reply, ["Observation:"]) == reply


def test_cut_at_stop_without_stops():
    assert cut_at_stop("a\nObservation: b", []) == "a\nObservation: b"
    assert cut_at_stop("a\nObservation: b", [""]) == "a\nObservation: b"
