"""@tool: metadata from signatures, hints and Google-style docstrings; name validation."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from agent import Tool, ToolDefinitionError, tool
from agent.tools import tools_by_name
from executors.base import validate_tools


def test_metadata_from_signature_and_docstring():
    @tool
    def search(query: str, limit: int = 5, exact: bool | None = None) -> list[str]:
        """Search the web.

        Returns the titles of the best pages.

        Args:
            query: What to look for; may span
                several lines.
            limit (int): How many results.
            exact: Match the words exactly.

        Returns:
            Page titles.
        """
        return [query] * limit

    assert isinstance(search, Tool)
    assert search.name == "search"
    assert search.description.startswith("Search the web.\n\nReturns the titles")
    assert "Returns: Page titles." in search.description
    assert search.inputs == {
        "query": {"type": "string", "description": "What to look for; may span several lines."},
        "limit": {"type": "integer", "description": "How many results."},
        "exact": {"type": "boolean | null", "description": "Match the words exactly."},
    }
    assert search.output_type == "array"
    assert search.signature == (
        "search(query: string, limit: integer = 5, exact: boolean | null = None) -> array"
    )
    # Still a plain callable, with the function's identity.
    assert search("x", limit=2) == ["x", "x"]
    assert search.__name__ == "search" and search.__doc__.startswith("Search the web.")


def test_type_names():
    @tool
    def f(a: float, b: dict[str, int], c: Literal["x", "y"], d: Any, e, g: tuple[int, ...]) -> None:
        """F."""

    types = {k: v["type"] for k, v in f.inputs.items()}
    assert types == {"a": "number", "b": "object", "c": "string", "d": "any", "e": "any",
                     "g": "array"}
    assert f.output_type == "null"


def test_decorator_with_arguments_overrides_name_and_description():
    @tool(name="add_numbers", description="Adds.")
    def add(a: int, b: int) -> int:
        return a + b

    assert add.name == "add_numbers" and add.description == "Adds."
    assert add(2, 3) == 5
    assert add.inputs["a"] == {"type": "integer", "description": ""}


@pytest.mark.parametrize("bad", ["final_answer", "class", "__init__", "1abc", "with space", ""])
def test_invalid_names_are_rejected(bad):
    def f() -> None:
        """F."""

    with pytest.raises(ToolDefinitionError):
        tool(name=bad)(f)


def test_documenting_a_missing_argument_is_an_error():
    def f(a: int) -> int:
        """F.

        Args:
            a: A.
            b: Not an argument.
        """
        return a

    with pytest.raises(ToolDefinitionError, match="b"):
        tool(f)


def test_unresolvable_hint_is_a_definition_error():
    def f(a: NoSuchType) -> int:  # type: ignore[name-defined]  # noqa: F821
        """F."""
        return 1

    f.__annotations__ = {"a": "NoSuchType"}
    with pytest.raises(ToolDefinitionError, match="type hints"):
        tool(f)


def test_tool_errors_are_value_errors_too():
    assert issubclass(ToolDefinitionError, ValueError)


def test_describe_renders_a_stub():
    @tool
    def greet(name: str) -> str:
        """Say hello.

        Args:
            name: Who to greet.
        """
        return f"hello {name}"

    text = greet.describe()
    assert text.startswith("def greet(name: string) -> string:\n")
    assert '"""Say hello.' in text
    assert "        name (string): Who to greet." in text
    compile(text + "\n    pass\n", "<stub>", "exec")  # the stub is valid Python syntax


def test_tools_pass_executor_validation():
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    checked = validate_tools(tools_by_name([ping]))
    assert checked["ping"]() == "pong"


def test_tools_by_name_accepts_mappings_and_detects_duplicates():
    def f() -> int:
        """F."""
        return 1

    tools = tools_by_name({"renamed": f})
    assert list(tools) == ["renamed"] and tools["renamed"].name == "renamed"
    renamed_tool = tools_by_name({"other": tool(f)})
    assert renamed_tool["other"].name == "other" and renamed_tool["other"]() == 1
    with pytest.raises(ToolDefinitionError, match="two tools"):
        tools_by_name([f, tool(f)])


def test_tool_is_idempotent_and_to_dict_is_plain_data():
    @tool
    def f(x: int) -> int:
        """Double.

        Args:
            x: A number.
        """
        return 2 * x

    assert tool(f) is f
    assert f.to_dict() == {
        "name": "f",
        "description": "Double.",
        "inputs": {"x": {"type": "integer", "description": "A number."}},
        "output_type": "integer",
    }


def test_non_callable_is_rejected():
    with pytest.raises(ToolDefinitionError):
        Tool(42)  # type: ignore[arg-type]


def test_signature_keeps_positional_only_and_keyword_only_markers():
    @tool
    def f(a: int, /, b: str, *, c: bool = False, **extra: int) -> None:
        """F."""

    assert f.signature == "f(a: integer, /, b: string, *, c: boolean = False, **extra) -> null"

    @tool
    def g(*items: str, sep: str = ",") -> str:
        """G."""
        return sep.join(items)

    assert g.signature == "g(*items, sep: string = ',') -> string"
    assert list(g.inputs) == ["sep"]
    assert g("a", "b") == "a,b"
