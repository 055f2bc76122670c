"""Tools: plain Python callables plus the metadata the model needs to call them.

``@tool`` reads the function's signature, type hints and Google-style docstring::

    @tool
    def add(a: int, b: int = 1) -> int:
        \"\"\"Add two numbers.

        Args:
            a: The first number.
            b: The second number.
        \"\"\"
        return a + b

The result is still callable like the function, so any executor can run it (the local one in
process, the sandboxed ones by calling back into the host).
"""

from __future__ import annotations

import functools
import inspect
import keyword
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, overload

from .exceptions import ToolDefinitionError

__all__ = ["Tool", "ToolInput", "tool", "tools_by_name"]

# Names every executor defines itself (executors.base.RESERVED_NAMES); a tool may not shadow them.
_RESERVED = frozenset({"final_answer"})

# JSON-schema-like type names, the vocabulary most models know from function calling.
_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    set: "array",
    dict: "object",
    bytes: "bytes",
    type(None): "null",
    Any: "any",
}

_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Examples?|Notes?)\s*:\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")


class ToolInput(TypedDict):
    type: str
    description: str


def _type_name(hint: Any) -> str:
    if hint is inspect.Parameter.empty:
        return "any"
    if hint in _TYPE_NAMES:
        return _TYPE_NAMES[hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(arg) for arg in typing.get_args(hint)]
        return " | ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return "string" if all(isinstance(a, str) for a in typing.get_args(hint)) else "any"
    if origin is not None and origin in _TYPE_NAMES:
        return _TYPE_NAMES[origin]
    if origin is not None and isinstance(origin, type):
        # collections.abc generics: Sequence[int] -> array, Mapping[str, int] -> object.
        if issubclass(origin, Mapping):
            return "object"
        if issubclass(origin, Iterable) and not issubclass(origin, str | bytes):
            return "array"
    return getattr(hint, "__name__", None) or str(hint)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str], str]:
    """Split a Google-style docstring into (summary, {arg: description}, returns)."""
    summary: list[str] = []
    args: dict[str, str] = {}
    returns: list[str] = []
    section = ""
    current: str | None = None
    arg_indent: int | None = None
    for line in inspect.cleandoc(doc).splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1).lower()
            current, arg_indent = None, None
            continue
        if not section:
            summary.append(line)
        elif section in ("args", "arguments", "parameters"):
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line.strip())
            # A new argument starts at the section's first indentation; deeper lines continue it.
            if match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
        elif section in ("returns", "return") and line.strip():
            returns.append(line.strip())
    return "\n".join(summary).strip(), args, " ".join(returns)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ToolDefinitionError(f"tool name {name!r} is not a valid Python identifier")
    if name.startswith("__") and name.endswith("__"):
        raise ToolDefinitionError(f"tool name {name!r} is reserved (dunder names are not allowed)")
    if name in _RESERVED:
        raise ToolDefinitionError(f"tool name {name!r} is provided by every executor")
    return name


@dataclass(frozen=True, eq=False)
class _Meta:
    name: str
    description: str
    inputs: dict[str, ToolInput]
    output_type: str
    signature: str


class Tool:
    """A callable with a name, a description, typed inputs and an output type.

    Calling the tool calls the wrapped function. Build one with :func:`tool`, or directly;
    metadata given explicitly replaces what would be read from the function.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        inputs: Mapping[str, ToolInput] | None = None,
        output_type: str | None = None,
    ) -> None:
        if not callable(function):
            raise ToolDefinitionError(f"a tool must wrap a callable, got {type(function).__name__}")
        self.function = function
        functools.update_wrapper(self, function)
        meta = _describe(function, name, description, inputs, output_type)
        self.name: str = meta.name
        self.description: str = meta.description
        self.inputs: dict[str, ToolInput] = meta.inputs
        self.output_type: str = meta.output_type
        self.signature: str = meta.signature
        # Executors that inspect the callable (names, signatures) see the tool's own name.
        self.__name__ = self.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.signature})"

    def executor_callable(self) -> Callable[..., Any]:
        """What to give an executor: the plain function, unless a subclass changed the call.

        Back ends that ship tools as source (e2b) need a real function, not a wrapper object.
        """
        if type(self).__call__ is Tool.__call__:
            return self.function
        return self

    def to_dict(self) -> dict[str, Any]:
        """The tool's description as JSON-safe data."""
        return {
            "name": self.name,
            "description": self.description,
            "inputs": {k: dict(v) for k, v in self.inputs.items()},
            "output_type": self.output_type,
        }

    def describe(self) -> str:
        """The tool as the system prompt shows it: a Python stub with a docstring."""
        doc = (self.description or "(no description)").splitlines()
        if self.inputs:
            doc += ["", "Args:"]
            for arg, spec in self.inputs.items():
                text = f"    {arg} ({spec['type']})"
                doc.append(f"{text}: {spec['description']}" if spec["description"] else text)
        body = "\n".join(f"    {line}" if line else "" for line in doc)
        return f'def {self.signature}:\n    """{body.lstrip()}\n    """'


def _describe(
    function: Callable[..., Any],
    name: str | None,
    description: str | None,
    inputs: Mapping[str, ToolInput] | None,
    output_type: str | None,
) -> _Meta:
    tool_name = _check_name(name if name is not None else getattr(function, "__name__", ""))
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"cannot read the signature of tool {tool_name!r}") from exc
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # an unresolvable forward reference, most often
        raise ToolDefinitionError(
            f"cannot resolve the type hints of tool {tool_name!r}: {exc}"
        ) from exc
    summary, arg_docs, returns = _parse_docstring(inspect.getdoc(function) or "")
    params = {
        n: p
        for n, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    unknown = set(arg_docs) - set(signature.parameters)
    if inputs is None and unknown:
        # A documented argument that does not exist is a typo the model would be misled by.
        raise ToolDefinitionError(
            f"tool {tool_name!r} documents arguments it does not take: {', '.join(sorted(unknown))}"
        )
    if inputs is None:
        inputs = {
            n: ToolInput(
                type=_type_name(hints.get(n, p.annotation)), description=arg_docs.get(n, "")
            )
            for n, p in params.items()
        }
    if output_type is None:
        output_type = _type_name(hints.get("return", signature.return_annotation))
    if description is None:
        description = summary
        if returns:
            description = f"{description}\nReturns: {returns}".strip()
    sig = f"{tool_name}({_render_params(signature, inputs)}) -> {output_type}"
    return _Meta(tool_name, description, dict(inputs), output_type, sig)


def _render_params(signature: inspect.Signature, inputs: Mapping[str, ToolInput]) -> str:
    """The parameter list with the tool's type names, keeping ``/`` and ``*`` markers."""
    params = list(signature.parameters.values())
    last_positional_only = max(
        (i for i, p in enumerate(params) if p.kind is p.POSITIONAL_ONLY), default=-1
    )
    rendered: list[str] = []
    star_written = False
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not star_written:
            rendered.append("*")
        if p.kind is p.VAR_POSITIONAL:
            text = f"*{p.name}"
        elif p.kind is p.VAR_KEYWORD:
            text = f"**{p.name}"
        else:
            text = p.name
            if p.name in inputs:
                text += f": {inputs[p.name]['type']}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        rendered.append(text)
        star_written = star_written or p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY)
        if i == last_positional_only:
            rendered.append("/")
    return ", ".join(rendered)


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a :class:`Tool`; use as ``@tool`` or ``@tool(name=...)``."""
    if function is not None:
        return function if isinstance(function, Tool) else Tool(function)

    def decorate(fn: Callable[..., Any]) -> Tool:
        return Tool(fn, name=name, description=description)

    return decorate


def tools_by_name(
    tools: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
) -> dict[str, Tool]:
    """Normalise tools given as a list (of tools or functions) or a name -> callable mapping."""
    result: dict[str, Tool] = {}
    items: Iterable[tuple[str | None, Callable[..., Any]]] = (
        tools.items() if isinstance(tools, Mapping) else ((None, t) for t in tools)
    )
    for key, value in items:
        if isinstance(value, Tool) and key in (None, value.name):
            made = value
        elif isinstance(value, Tool):
            made = Tool(
                value.function,
                name=key,
                description=value.description,
                inputs=value.inputs,
                output_type=value.output_type,
            )
        else:
            made = Tool(value, name=key)
        if made.name in result:
            raise ToolDefinitionError(f"two tools are named {made.name!r}")
        result[made.name] = made
    return result
