"""IPython's shell escapes and common magics, as E2B's Jupyter-based interpreter accepts them.

Agents and their frameworks write notebook syntax: smolagents' E2B executor installs packages
with ``!pip install ...``, and models copy ``%matplotlib inline`` or ``%%bash`` cells from
notebooks. The kernel first parses a cell as plain Python; only a cell that does not parse is
rewritten here, line for line (so tracebacks keep their line numbers), into calls of
:func:`line_magic` and :func:`cell_magic`. Supported:

* ``!cmd`` (output streams as it is printed; ``_exit_code`` is set), ``x = !cmd`` and
  ``!!cmd`` (the output as a list of lines); ``{expr}`` and ``$name`` expand as in IPython;
* ``%pip``, ``%cd``, ``%pwd``, ``%env``, ``%time``, ``%matplotlib`` (figures are always
  inline), and the shell aliases ``%ls %cat %cp %mv %rm %mkdir %rmdir``;
* cells ``%%bash``, ``%%sh``, ``%%script bash|sh``, ``%%writefile [-a] path``.

Anything else raises ``UsageError`` naming the magic, never runs as something else.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import tokenize
from typing import Any

__all__ = ["UsageError", "cell_magic", "line_magic", "transform"]

_ALIASES = frozenset({"ls", "cat", "cp", "mv", "rm", "mkdir", "rmdir"})

# A magic line: indentation, an optional assignment target, then ``!``, ``!!`` or ``%``.
_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?:(?P<target>[A-Za-z_][\w.]*(?:\[[^\]]*\])?)\s*=\s*)?"
    r"(?P<kind>!!|!|%)(?P<body>[^%=].*|)$"
)
_CELL = re.compile(r"^%%(?P<name>\w+)[ \t]*(?P<args>.*)$")
_NAME = re.compile(r"\$(\{(?P<braced>[A-Za-z_]\w*)\}|(?P<plain>[A-Za-z_]\w*))")


class UsageError(Exception):
    """A magic that selfbox does not know, or one used wrongly (IPython's name for it)."""


def transform(code: str) -> str | None:
    """The cell with its magics rewritten into Python; None when it has none."""
    lines = code.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None:
        cell = _CELL.match(lines[first])
        if cell is not None:
            body = "\n".join(lines[first + 1:]) + ("\n" if code.endswith("\n") else "")
            call = (f"__import__({__name__!r}, fromlist=['_']).cell_magic("
                    f"{cell['name']!r}, {cell['args'].strip()!r}, {body!r}, globals(), locals())")
            # One statement on the magic's line; the body's lines stay blank.
            return "\n" * first + call + "\n" * (len(lines) - first)
    out: list[str] = []
    index = 0
    in_strings = _lines_inside_strings(code)
    while index < len(lines):
        match = None if index in in_strings else _LINE.match(lines[index])
        if match is None or not match["body"].strip():
            out.append(lines[index])
            index += 1
            continue
        last = index
        if match["kind"] != "%":  # a shell command continues over trailing backslashes
            while lines[last].endswith("\\") and last + 1 < len(lines):
                last += 1
        out.append(_rewrite(match, "\n".join(lines[index:last + 1])))
        out.extend("" for _ in range(last - index))  # keep later lines where they were
        index = last + 1
    return "\n".join(out) + "\n" if out != lines else None


def _lines_inside_strings(code: str) -> set[int]:
    """Lines (0-based) that continue a multi-line string: never magics."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        pass  # notebook syntax may not tokenize to the end; what was seen still counts
    return inside


def _rewrite(match: re.Match[str], text: str) -> str:
    body = match["body"] + text[len(text.split("\n", 1)[0]):]
    body = body.replace("\\\n", " ")
    capture = match["target"] is not None or match["kind"] == "!!"
    call = (f"__import__({__name__!r}, fromlist=['_']).line_magic({match['kind']!r}, "
            f"{body.strip()!r}, {capture!r}, globals(), locals())")
    target = f"{match['target']} = " if match["target"] is not None else ""
    return f"{match['indent']}{target}{call}"


def expand(text: str, namespace: dict[str, Any]) -> str:
    """IPython's variable expansion: ``{expr}`` is evaluated, ``$name`` looked up; ``$$``
    and ``{{ }}`` are literal; an unknown ``$name`` stays as it is (for the shell)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i) or text.startswith("$$", i):
            out.append(char)
            i += 2
        elif char == "{":
            end = _closing_brace(text, i)
            if end < 0:
                out.append(char)
                i += 1
                continue
            out.append(str(eval(text[i + 1:end], namespace)))
            i = end + 1
        elif char == "$" and (name := _NAME.match(text, i)) is not None:
            key = name["braced"] or name["plain"]
            out.append(str(namespace[key]) if key in namespace else name.group(0))
            i = name.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def system(command: str, capture: bool = False, shell: str = "bash") -> Any:
    """Run a shell command; its output goes to the cell's output (or is returned as lines)."""
    sys.stdout.flush()
    sys.stderr.flush()
    executable = (shutil.which(shell) if shell == "bash" else None) or "/bin/sh"
    done = subprocess.run([executable, "-c", command], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else None, check=False)
    importlib.invalidate_caches()  # a package the command installed imports at once
    if capture:
        return done.stdout.decode("utf-8", "replace").splitlines()
    return done.returncode


def line_magic(kind: str, text: str, capture: bool, globals_: dict[str, Any],
               locals_: dict[str, Any]) -> Any:
    namespace = {**globals_, **locals_}
    if kind != "%":
        if capture:
            return system(expand(text, namespace), capture=True)
        globals_["_exit_code"] = system(expand(text, namespace))
        return None
    name, _, args = text.partition(" ")
    args = args.strip()
    if name in _ALIASES:
        return _shell_result(globals_, system(expand(f"{name} {args}", namespace), capture),
                             capture)
    if name == "pip":
        command = f"{sys.executable} -m pip {expand(args, namespace)}"
        return _shell_result(globals_, system(command, capture), capture)
    if name == "cd":
        target = os.path.expanduser(expand(args, namespace) or "~")
        os.chdir(target)
        print(os.getcwd())
        return None
    if name == "pwd":
        return os.getcwd()
    if name == "env":
        return _env(expand(args, namespace))
    if name == "matplotlib":
        return None  # figures are always shown inline
    if name == "time":
        return _time(args, globals_, locals_)
    raise UsageError(f"Line magic function `%{name}` not found (selfbox offers %pip, %cd, "
                     "%pwd, %env, %time, %matplotlib, %ls, %cat, %cp, %mv, %rm, %mkdir, "
                     "%rmdir and !shell commands)")


def _shell_result(globals_: dict[str, Any], result: Any, capture: bool) -> Any:
    if capture:
        return result
    globals_["_exit_code"] = result
    return None


def _env(args: str) -> Any:
    if not args:
        return dict(os.environ)
    if "=" in args or " " in args:
        key, _, value = args.partition("=") if "=" in args else args.partition(" ")
        os.environ[key.strip()] = value.strip()
        print(f"env: {key.strip()}={value.strip()}")
        return None
    try:
        return os.environ[args]
    except KeyError:
        raise UsageError(f"Environment does not have key: {args}") from None


def _time(statement: str, globals_: dict[str, Any], locals_: dict[str, Any]) -> Any:
    start, cpu = time.perf_counter(), time.process_time()
    try:
        code = compile(statement, "<timed>", "eval")
    except SyntaxError:
        exec(compile(statement, "<timed>", "exec"), globals_, locals_)
        value = None
    else:
        value = eval(code, globals_, locals_)
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - start
    print(f"CPU times: total: {_human(cpu_s)}\nWall time: {_human(wall_s)}")
    return value


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if seconds * scale >= 1:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def cell_magic(name: str, args: str, body: str, globals_: dict[str, Any],
               locals_: dict[str, Any]) -> None:
    namespace = {**globals_, **locals_}
    if name in ("bash", "sh") or (name == "script" and args in ("bash", "sh")):
        globals_["_exit_code"] = system(body, shell=name if name != "script" else args)
        return
    if name == "writefile":
        words = expand(args, namespace).split()
        append = "-a" in words or "--append" in words
        paths = [w for w in words if w not in ("-a", "--append")]
        if len(paths) != 1:
            raise UsageError("%%writefile takes one path: %%writefile [-a] path")
        path = os.path.expanduser(paths[0])
        existed = os.path.exists(path)
        with open(path, "a" if append else "w", encoding="utf-8") as handle:
            handle.write(body)
        verb = "Appending to" if append else ("Overwriting" if existed else "Writing")
        print(f"{verb} {paths[0]}")
        return
    raise UsageError(f"Cell magic `%%{name}` not found (selfbox offers %%bash, %%sh, "
                     "%%script bash|sh and %%writefile)")
