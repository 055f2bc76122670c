"""Checked stand-ins for the parts of numpy / pandas / matplotlib that reach past the policy.

Why: authorizing these libraries must not give back what the policy takes away. Their readers
and writers take paths (file system access), some of them pickle (code execution), pandas'
expression engine resolves attributes natively (dunders), and a few settings import modules or
run programs (plotting backends, ``figure.hooks``, ``text.usetex``).

How: by the *name* of the callable, whichever route hands it out (module attribute, bound or
unbound method, value returned by native code), :meth:`Policy.guard_slow` and
:meth:`Policy.plain_hook` ask :func:`LibraryGuards.wrap` for a checked version when the
callable's module belongs to one of these libraries. No library is imported here, and no
library state is patched. :mod:`.host_audit` backs this up at the level of the process.
"""

from __future__ import annotations

import ast
import io
import re
import types
from collections.abc import Callable, Iterator
from typing import Any, cast

from .errors import SecurityError
from .rules import is_user_owned, mark_safe

__all__ = ["LIB_NAMES", "LIB_ROOTS", "LibraryGuards"]

LIB_ROOTS = frozenset({"numpy", "pandas", "matplotlib", "mpl_toolkits", "PIL"})

# Always refused: what they do has no in-memory form worth keeping.
_DENIED: dict[str, str] = {
    "fromfile": "reads files", "tofile": "writes files", "memmap": "maps files",
    "open_memmap": "maps files", "DataSource": "reads files and URLs",
    "dump": "pickles objects", "dumps": "pickles objects",
    "read_pickle": "unpickles data (code execution)", "to_pickle": "pickles objects",
    "read_hdf": "reads files", "to_hdf": "writes files", "HDFStore": "opens files",
    "read_sql": "opens databases", "read_sql_query": "opens databases",
    "read_sql_table": "opens databases", "to_sql": "writes databases",
    "read_clipboard": "uses the system clipboard", "to_clipboard": "uses the system clipboard",
    "read_gbq": "uses the network", "to_gbq": "uses the network",
    "read_iceberg": "reads catalogs", "to_iceberg": "writes catalogs",
    "read_spss": "reads files", "read_xml": "resolves XML entities and stylesheets",
    "from_custom_template": "reads template files", "to_html5_video": "runs programs",
    "to_jshtml": "writes files", "rc_file": "reads files", "rc_params_from_file": "reads files",
    "ctypes": "exposes raw memory", "set_usetex": "runs LaTeX",
}  # fmt: skip

# Readers/writers: their first positional argument and these keywords must be buffers or None.
_PATH_FUNCS = frozenset({
    "read_csv", "read_table", "read_fwf", "read_json", "read_excel", "read_feather",
    "read_orc", "read_parquet", "read_sas", "read_stata", "read_html", "to_csv", "to_json",
    "to_excel", "to_feather", "to_orc", "to_parquet", "to_stata", "to_html", "to_latex",
    "to_markdown", "to_string", "to_xml", "ExcelWriter", "ExcelFile", "save", "savez",
    "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt", "fromregex", "savefig",
    "print_figure", "imsave", "imread", "info",
})  # fmt: skip
_PATH_KWARGS = frozenset({
    "path", "path_or_buf", "path_or_buffer", "buf", "fname", "filename", "filename_or_obj",
    "file", "excel_writer", "io", "filepath_or_buffer", "fp", "output", "stylesheet",
})  # fmt: skip
_EXPR_FUNCS = frozenset({"eval", "query"})
_STR_DISPATCH = frozenset({"agg", "aggregate", "apply", "transform", "map", "applymap"})
_SETTINGS = frozenset({
    "use", "switch_backend", "rc", "rc_context", "context", "set_option", "option_context",
    "reset_option",
})  # fmt: skip
LIB_NAMES = frozenset(_DENIED) | _PATH_FUNCS | _EXPR_FUNCS | _STR_DISPATCH | _SETTINGS

# Names that a string may not designate in pandas' string dispatch (df.agg('name')) nor in an
# expression's attribute (they are the checked or refused names, or reach str.format).
_EXPR_DENIED_ATTRS = LIB_NAMES | {"format", "format_map", "pipe", "style", "plot"}
_BAD_RC = re.compile(
    r"^(backend|backend_fallback|interactive|toolbar|timezone|datapath|webagg\.|animation\.|"
    r"pgf\.|text\.latex\.|text\.usetex|ps\.usedistiller|savefig\.directory|figure\.hooks|tk\.|"
    r"macosx\.|docstring\.)"
)
_SAFE_BACKENDS = frozenset({"agg", "pdf", "svg", "ps", "cairo", "template"})
_PANDAS_OPTIONS_OK = ("display.", "mode.", "styler.", "future.", "compute.")


def _module_root(obj: Any) -> str:
    mod = getattr(obj, "__module__", None)
    objclass = getattr(obj, "__objclass__", None)
    if not isinstance(mod, str) and isinstance(objclass, type):
        mod = objclass.__module__
    if not isinstance(mod, str):
        owner = getattr(obj, "__self__", None)
        mod = owner.__name__ if isinstance(owner, types.ModuleType) else type(owner).__module__
    return mod.split(".", 1)[0] if isinstance(mod, str) else ""


def _is_buffer(value: Any) -> bool:
    """In-memory buffers and the sandbox's own objects are fine; paths and files are not."""
    if value is None or isinstance(value, (io.StringIO, io.BytesIO)) or is_user_owned(value):
        return True
    return type(value).__name__ == "ExcelWriter" and _module_root(type(value)) == "pandas"


def _check_paths(what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    bad = [args[0]] if args and not _is_buffer(args[0]) else []
    bad += [v for k, v in kwargs.items() if k in _PATH_KWARGS and not _is_buffer(v)]
    if bad:
        raise SecurityError(
            f"{what} reads or writes files, which the sandbox does not allow "
            "(use an io.StringIO/io.BytesIO buffer, or no path to get the text back)"
        )
    if kwargs.get("allow_pickle"):
        raise SecurityError(f"{what} with allow_pickle=True is not allowed (pickle runs code)")


def _check_rc_key(key: Any, value: Any = None) -> None:
    if not isinstance(key, str) or _BAD_RC.match(key):
        raise SecurityError(f"setting matplotlib rcParams[{key!r}] is not allowed in the sandbox")
    if key == "axes.prop_cycle" and isinstance(value, str):
        raise SecurityError("axes.prop_cycle must be given as a cycler, not as a string")


def _check_rc_mapping(rc: Any) -> None:
    if rc is None:
        return
    if isinstance(rc, SafeRcParams):
        return
    if not isinstance(rc, dict) and not hasattr(rc, "items"):
        raise SecurityError("matplotlib settings must be given as a dict")
    for k, v in rc.items():
        _check_rc_key(k, v)


def _check_expr(what: str, expr: Any, kwargs: dict[str, Any]) -> set[str]:
    """pandas' engine resolves ``a.b`` with the native getattr and calls what it finds."""
    if not isinstance(expr, str):
        raise SecurityError(f"{what} takes the expression as a string")
    if "__" in expr:
        raise SecurityError(f"{what}: expressions may not contain '__'")
    target = kwargs.get("target")
    if target is not None and _module_root(type(target)) != "pandas":
        raise SecurityError(f"{what}: target must be a DataFrame")
    # pandas' own preprocessing: `backticked names` and @locals are not Python syntax
    text = re.sub(r"`[^`]*`", "_bt", expr).replace("@", "")
    try:
        tree = ast.parse(text.strip())
    except SyntaxError as exc:
        raise SecurityError(f"{what}: the expression could not be checked ({exc.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith("_") or node.attr in _EXPR_DENIED_ATTRS
        ):
            raise SecurityError(f"{what}: attribute {node.attr!r} is not allowed in expressions")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _check_dispatch(what: str, func: Any) -> None:
    """``df.agg('name')`` looks ``name`` up with the native getattr (on the frame, then numpy)."""
    if isinstance(func, str):
        if func.startswith("_") or func in _EXPR_DENIED_ATTRS or func.startswith(("to_", "read_")):
            raise SecurityError(f"{what}({func!r}) is not allowed in the sandbox")
    elif isinstance(func, (list, tuple)):
        for f in func:
            _check_dispatch(what, f)
    elif isinstance(func, dict):
        for f in func.values():
            _check_dispatch(what, f)


class SafeRcParams:
    """matplotlib's rcParams, with writes limited to keys that neither import modules, run
    programs nor name directories."""

    __slots__ = ("_rc",)
    _rc: Any

    def __init__(self, rc: Any) -> None:
        object.__setattr__(self, "_rc", rc)

    def __getitem__(self, key: Any) -> Any:
        return self._rc[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        _check_rc_key(key, value)
        self._rc[key] = value

    def __contains__(self, key: Any) -> bool:
        return key in self._rc

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._rc))

    def __len__(self) -> int:
        return len(self._rc)

    def __repr__(self) -> str:
        return repr(self._rc)

    def __str__(self) -> str:
        return str(self._rc)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._rc.get(key, default)

    def keys(self) -> list[str]:
        return list(self._rc.keys())

    def values(self) -> list[Any]:
        return list(self._rc.values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._rc.items())

    def copy(self) -> dict[str, Any]:
        return dict(self._rc.items())

    def find_all(self, pattern: str) -> dict[str, Any]:
        return dict(self._rc.find_all(pattern).items())

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        _check_rc_mapping(new)
        self._rc.update(new)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self._rc:
            self[key] = default
        return self._rc[key]


SafeRcParams.__module__ = "selfbox.library"  # not an 'executors' class: the policy hands it out


class LibraryGuards:
    """Per-interpreter cache of checked versions (id of the real callable -> safe one)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self._cache: dict[int, tuple[Any, Any]] = {}  # id(real) -> (real, safe): real kept alive
        # the sandbox's module-level variables: what @name / bare names mean in pandas' eval
        self.user_globals: dict[str, Any] = {}

    def wrap(self, value: Any, name: str) -> Any:
        """``value`` (a function, class, bound method...) named ``name``: its checked version,
        or ``value`` itself when it is not one of the libraries' (``map``, user ``save``...)."""
        if isinstance(value, types.MethodType):
            func = value.__func__
            if _module_root(func) not in LIB_ROOTS or is_user_owned(func):
                return value
            return types.MethodType(self._safe(func, name, bound=True), value.__self__)
        if is_user_owned(value) or _module_root(value) not in LIB_ROOTS:
            return value
        if isinstance(value, types.BuiltinMethodType) and not isinstance(
            value.__self__, types.ModuleType
        ):
            if name in _DENIED:  # arr.tofile, arr.dump: refuse whoever calls them
                return self._refuser(_qualname(value, name), _DENIED[name])
            return value
        return self._safe(value, name, bound=False)

    def _refuser(self, what: str, reason: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise SecurityError(f"{what} {reason}, which the sandbox does not allow")

        refused.__name__ = refused.__qualname__ = what.rsplit(".", 1)[-1]
        self.policy.safe_ids.add(id(refused))
        return cast("Callable[..., Any]", mark_safe(refused))

    def _safe(self, real: Any, name: str, bound: bool) -> Any:
        hit = self._cache.get(id(real))
        if hit is not None and hit[0] is real:
            return hit[1]
        what = _qualname(real, name)
        safe: Any
        if name in _DENIED:
            safe = self._refuser(what, _DENIED[name])
        else:
            check = _make_check(self, what, name, real)
            if check is None:
                return real
            if bound:

                def safe(self_: Any, /, *args: Any, **kwargs: Any) -> Any:
                    args, kwargs = check(args, kwargs)
                    return real(self_, *args, **kwargs)

            else:

                def safe(*args: Any, **kwargs: Any) -> Any:
                    args, kwargs = check(args, kwargs)
                    return real(*args, **kwargs)

            safe.__name__ = name
            safe.__qualname__ = what
            safe.__doc__ = getattr(real, "__doc__", None)
            mark_safe(safe)
            self.policy.safe_ids.add(id(safe))
        self._cache[id(real)] = (real, safe)
        return safe


Check = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def _qualname(real: Any, name: str) -> str:
    mod = getattr(real, "__module__", None) or _module_root(real)
    root = str(mod).split(".", 1)[0]
    qual = getattr(real, "__qualname__", name) or name
    return f"{root}.{qual}"


def _make_check(lg: LibraryGuards, what: str, name: str, real: Any) -> Check | None:
    mod = str(getattr(real, "__module__", "") or "")
    if name in _PATH_FUNCS:
        if name == "info" and _module_root(real) != "numpy":
            return None

        def paths(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            _check_paths(what, a, k)
            if name in ("load", "save", "savez", "savez_compressed") and mod.startswith("numpy"):
                k = {**k, "allow_pickle": False}
            return a, k

        return paths
    if name in _EXPR_FUNCS:
        if not mod.startswith("pandas"):
            return None

        def expr(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            text = a[0] if a else k.get("expr")
            names = _check_expr(what, text, k)
            if "level" in k:
                raise SecurityError(f"{what}: level= is not allowed in the sandbox")
            # pandas would look variables up in the caller's *Python* frame (ours): give it
            # the sandbox's variables instead, and no frame at all.
            k = dict(k)
            if k.get("local_dict") is None:
                g = lg.user_globals
                k["local_dict"] = {n: g[n] for n in names if n in g}
            if k.get("global_dict") is None:
                k["global_dict"] = {}
            return a, k

        return expr
    if name in _STR_DISPATCH:
        if not mod.startswith("pandas"):
            return None

        def dispatch(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            _check_dispatch(what, a[0] if a else k.get("func", k.get("arg")))
            return a, k

        return dispatch
    return _settings_check(what, name, mod)


def _settings_check(what: str, name: str, mod: str) -> Check | None:
    if name in ("use", "switch_backend") and not mod.startswith("matplotlib.style"):
        if not mod.startswith("matplotlib"):
            return None

        def backend(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            b = a[0] if a else k.get("backend", k.get("newbackend"))
            if not isinstance(b, str) or b.lower() not in _SAFE_BACKENDS:
                raise SecurityError(f"{what}({b!r}): only non-interactive backends are allowed")
            return a, k

        return backend
    if name in ("use", "context"):  # matplotlib.style: names of library styles, or dicts

        def style(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            s = a[0] if a else k.get("style")
            for one in s if isinstance(s, (list, tuple)) else [s]:
                if isinstance(one, str):
                    if "/" in one or "\\" in one or one.endswith(".mplstyle"):
                        raise SecurityError(f"{what}: style files are not allowed")
                    import matplotlib.style as mstyle

                    _check_rc_mapping(mstyle.library.get(one))
                else:
                    _check_rc_mapping(one)
            return a, k

        return style
    if name == "rc":

        def rc(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            groups = a[0] if a else k.get("group")
            for g in [groups] if isinstance(groups, str) else list(groups or ()):
                for key, v in k.items():
                    _check_rc_key(f"{g}.{key}", v)
            return a, k

        return rc
    if name == "rc_context":

        def rc_context(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            if len(a) > 1 or k.get("fname") is not None:
                raise SecurityError(f"{what}: fname (a file) is not allowed")
            _check_rc_mapping(a[0] if a else k.get("rc"))
            return a, k

        return rc_context
    if name in ("set_option", "option_context", "reset_option") and mod.startswith("pandas"):

        def options(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            keys = a[::2] if name != "reset_option" else a[:1]
            for pat in [*keys, *k]:
                _check_pandas_option(what, pat, a, k)
            for v in [*a[1::2], *k.values()]:
                if callable(v):  # display.float_format & co.: the host would call it later
                    raise SecurityError(f"{what}: option values cannot be callables")
            return a, k

        return options
    return None


def _check_pandas_option(what: str, pat: Any, a: tuple[Any, ...], k: dict[str, Any]) -> None:
    from pandas._config import config  # only reached once pandas is in use

    if not isinstance(pat, str):
        raise SecurityError(f"{what}: option names must be strings")
    if pat == "all":
        return
    try:
        key = config._get_single_key(pat)
    except Exception:
        raise SecurityError(f"{what}: unknown or ambiguous option {pat!r}") from None
    if not key.startswith(_PANDAS_OPTIONS_OK):
        raise SecurityError(f"{what}({key!r}) is not allowed in the sandbox")


def wrap_value(guards: LibraryGuards, value: Any) -> Any:
    """Library *objects* that need a checked face (rcParams, the plot accessor)."""
    t = type(value)
    if t.__name__ == "RcParams" and t.__module__ == "matplotlib":
        return SafeRcParams(value)
    if t.__name__ == "PlotAccessor" and t.__module__.startswith("pandas"):
        return SafePlot(value, guards.policy)
    return value


class SafePlot:
    """``df.plot``: the backend is matplotlib (others are imported by name)."""

    __slots__ = ("_acc", "_policy")
    _acc: Any
    _policy: Any

    def __init__(self, acc: Any, policy: Any) -> None:
        object.__setattr__(self, "_acc", acc)
        object.__setattr__(self, "_policy", policy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _check_backend(kwargs)
        return self._policy.guard(self._acc(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        real = self._policy.get_attr(self._acc, name)
        if not callable(real):
            return real

        def kind(*args: Any, **kwargs: Any) -> Any:
            _check_backend(kwargs)
            return real(*args, **kwargs)

        kind.__name__ = name
        self._policy.safe_ids.add(id(kind))
        return mark_safe(kind)

    def __repr__(self) -> str:
        return repr(self._acc)


SafePlot.__module__ = "selfbox.library"


def _check_backend(kwargs: dict[str, Any]) -> None:
    b = kwargs.get("backend")
    if b is not None and b != "matplotlib":
        raise SecurityError("plotting backends other than matplotlib are not allowed")
