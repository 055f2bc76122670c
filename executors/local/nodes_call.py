"""Calls: argument evaluation, the user-function fast paths, ``super()``, method calls."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from .compiler_support import CompilerBase
from .errors import SecurityError
from .frame import MISSING as _MISS
from .frame import Frame
from .guards import _CHECKED_METHODS, _GROWING, _NO_ITER_TYPES, _SIZED_RESULT_TYPES
from .host_effects import CallOnly
from .policy import WATCHED_PLAIN
from .rules import (
    PLAIN_TYPES,
    SUPER_DUNDERS,
    USER_CODE_IDS,
    USER_MARK_NAME,
    is_dunder,
    mark_safe,
)

if TYPE_CHECKING:
    from .compiler import Fn
    from .scope import Scope

from .nodes_expr import _METHOD_FAST_TYPES, _NO_ITER_ARGS, _FunctionType, _MethodType

__all__ = ["CallMixin", "call_value"]


class CallMixin(CompilerBase):
    def e_Call(self, node: ast.Call, sc: Scope) -> Fn:
        func_node = node.func
        if (
            isinstance(func_node, ast.Name)
            and func_node.id == "super"
            and not node.args
            and not node.keywords
        ):
            return self.zero_arg_super(node, sc)
        if isinstance(func_node, ast.Attribute) and is_dunder(func_node.attr):
            func = self.super_dunder(func_node, sc)
        elif (
            isinstance(func_node, ast.Attribute)
            and func_node.attr[0] != "_"
            and func_node.attr not in ("format", "format_map")
        ):
            return self.method_call(node, sc)
        else:
            func = self.expr(func_node, sc)
        return self.make_call(func, node, sc)

    def make_call(self, func: Fn, node: ast.Call, sc: Scope) -> Fn:
        call_native = self.guards.call_native
        codes = USER_CODE_IDS
        simple = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if simple and len(node.args) <= 3:
            argf = [self.expr(a, sc) for a in node.args]
            if not argf:

                def call0(f: Frame) -> Any:
                    fn = func(f)
                    if type(fn) is _FunctionType and id(fn.__code__) in codes:
                        return fn()
                    return _call_slow(fn, [], None, call_native)

                return call0
            func_node = node.func
            if (
                len(argf) in (1, 2)
                and isinstance(func_node, ast.Name)
                and func_node.id not in self.protected
                and not is_dunder(func_node.id)
                and sc.resolve(func_node.id)[0] == "global"
            ):
                # f(x) / f(x, y) with f a global or builtin: the name lookup inlined.
                fname = func_node.id
                g_get = self.g.get
                b_get = self.builtins.get
                missing = self.name_missing
                miss = _MISS
                if len(argf) == 1:
                    a0 = argf[0]

                    def call_global1(f: Frame) -> Any:
                        fn = g_get(fname, miss)
                        if fn is miss:
                            fn = b_get(fname, miss)
                            if fn is miss:
                                fn = missing(fname)
                        x = a0(f)
                        if type(fn) is _FunctionType and id(fn.__code__) in codes:
                            return fn(x)
                        return _call_slow(fn, [x], None, call_native)

                    return call_global1
                a0, a1 = argf

                def call_global2(f: Frame) -> Any:
                    fn = g_get(fname, miss)
                    if fn is miss:
                        fn = b_get(fname, miss)
                        if fn is miss:
                            fn = missing(fname)
                    x = a0(f)
                    y = a1(f)
                    if type(fn) is _FunctionType and id(fn.__code__) in codes:
                        return fn(x, y)
                    return _call_slow(fn, [x, y], None, call_native)

                return call_global2
            if len(argf) == 1:
                a0 = argf[0]

                def call1(f: Frame) -> Any:
                    fn = func(f)
                    x = a0(f)
                    if type(fn) is _FunctionType and id(fn.__code__) in codes:
                        return fn(x)
                    return _call_slow(fn, [x], None, call_native)

                return call1
            if len(argf) == 2:
                a0, a1 = argf

                def call2(f: Frame) -> Any:
                    fn = func(f)
                    x = a0(f)
                    y = a1(f)
                    if type(fn) is _FunctionType and id(fn.__code__) in codes:
                        return fn(x, y)
                    return _call_slow(fn, [x, y], None, call_native)

                return call2
            a0, a1, a2 = argf

            def call3(f: Frame) -> Any:
                fn = func(f)
                x = a0(f)
                y = a1(f)
                z = a2(f)
                if type(fn) is _FunctionType and id(fn.__code__) in codes:
                    return fn(x, y, z)
                return _call_slow(fn, [x, y, z], None, call_native)

            return call3
        args = self.call_args(node, sc)

        def call(f: Frame) -> Any:
            fn = func(f)
            a, kw = args(f)
            return _call_slow(fn, a, kw, call_native)

        return call

    def method_call(self, node: ast.Call, sc: Scope) -> Fn:
        func_node = node.func
        assert isinstance(func_node, ast.Attribute)
        obj = self.expr(func_node.value, sc)
        name = func_node.attr
        get = self.attr_getter(func_node, name)
        args = self.call_args(node, sc)
        call_native = self.guards.call_native
        plain_fast = "_" not in name[:5] and name not in ("format", "format_map")
        simple = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        if simple and len(node.args) <= 2 and plain_fast:
            argf = [self.expr(a, sc) for a in node.args]
            n = len(argf)
            a0 = argf[0] if n > 0 else None
            a1 = argf[1] if n > 1 else None

            call_method = self.guards.call_method
            guard_slow = self.p.guard_slow
            hook = self.p.plain_hook
            codes = USER_CODE_IDS
            guards = self.guards
            unchecked = name not in _CHECKED_METHODS
            plain_args = _NO_ITER_TYPES
            growing, sized, max_size = _GROWING, _SIZED_RESULT_TYPES, guards.max_size

            def method_call_fast(f: Frame) -> Any:
                o = obj(f)
                builtin_owner = type(o) in _METHOD_FAST_TYPES
                user_func = None
                try:
                    m = getattr(o, name)
                    if not builtin_owner:  # the attribute policy of ``get`` (plain names)
                        tm = type(m)
                        if tm not in PLAIN_TYPES:
                            m = guard_slow(m)
                        elif tm is _MethodType:
                            func = m.__func__
                            if type(func) is _FunctionType and id(func.__code__) in codes:
                                user_func = func  # a sandbox method: called directly below
                            else:
                                m = hook(o, m, tm)
                        elif tm in WATCHED_PLAIN:
                            m = hook(o, m, tm)
                except CallOnly as e:
                    m = _called_here(e, name)  # os.listdir(...): a host function, called now
                if n == 0:
                    a: list[Any] = []
                elif n == 1:
                    a = [a0(f)]  # type: ignore[misc]
                else:
                    a = [a0(f), a1(f)]  # type: ignore[misc]
                if user_func is not None:
                    return user_func(m.__self__, *a)
                if builtin_owner:
                    if (
                        unchecked
                        and (n == 0 or type(a[0]) in plain_args)
                        and (n < 2 or type(a[1]) in plain_args)
                    ):
                        # counts.get(k, 0), s.strip(), xs.append(x): call_method inlined
                        r = m(*a)
                        to = type(o)
                        if to in growing and len(o) > max_size:
                            n_items = len(o)
                            o.clear()
                            raise guards.too_big(to.__name__, n_items)
                        if type(r) in sized and len(r) > 100_000:
                            guards.check_size("result of a native call", len(r))
                        return r
                    return call_method(o, m, name, a)
                return _call_slow(m, a, None, call_native)

            return method_call_fast

        def method_call(f: Frame) -> Any:
            o = obj(f)
            if plain_fast and type(o) in _METHOD_FAST_TYPES:
                m = getattr(o, name)
                a, kw = args(f)
                return call_native(m, a, kw)
            try:
                fn = get(o)
            except CallOnly as e:
                fn = _called_here(e, name)
            a, kw = args(f)
            t = type(fn)
            if (
                t is _MethodType
                and type(fn.__func__) is _FunctionType
                and id(fn.__func__.__code__) in USER_CODE_IDS
            ):
                return fn(*a, **kw) if kw else fn(*a)
            if t is _FunctionType and id(fn.__code__) in USER_CODE_IDS:
                return fn(*a, **kw) if kw else fn(*a)
            return call_native(fn, a, kw)

        return method_call

    def call_args(self, node: ast.Call, sc: Scope) -> Any:
        positional = self.sequence(node.args, sc)
        keywords = [(k.arg, self.expr(k.value, sc)) for k in node.keywords]
        if not keywords:
            if not node.args:
                return lambda f: ([], None)

            def pos_only(f: Frame) -> tuple[list[Any], None]:
                return positional(f), None

            return pos_only

        def with_kw(f: Frame) -> tuple[list[Any], dict[str, Any]]:
            kw: dict[str, Any] = {}
            a = positional(f)
            for name, fn in keywords:
                if name is None:
                    m = fn(f)
                    if not hasattr(m, "keys"):
                        raise TypeError("argument after ** must be a mapping")
                    for k in m.keys():  # noqa: SIM118 - the mapping protocol calls keys()
                        if not isinstance(k, str):
                            raise TypeError("keywords must be strings")
                        if k in kw:
                            raise TypeError(f"got multiple values for keyword argument {k!r}")
                        kw[k] = m[k]
                else:
                    if name in kw:
                        raise TypeError(f"got multiple values for keyword argument {name!r}")
                    kw[name] = fn(f)
            return a, kw

        return with_kw

    def super_dunder(self, node: ast.Attribute, sc: Scope) -> Fn:
        """``super().__init__`` and friends: dunder methods, on super objects only."""
        name = node.attr
        if name not in SUPER_DUNDERS:
            raise self.security(node, f"access to dunder attribute {name!r} is not allowed")
        obj = self.expr(node.value, sc)
        check_namespace = self.check_class_namespace

        def super_method(f: Frame) -> Any:
            o = obj(f)
            if type(o) is not super:
                raise SecurityError(
                    f"access to dunder attribute {name!r} is only allowed on super()"
                )
            method = getattr(o, name)
            thisclass = getattr(o, "__thisclass__", None)
            if name == "__new__" and isinstance(thisclass, type) and issubclass(thisclass, type):
                # A user metaclass creating a class: its namespace obeys the class-body rules.
                def checked_new(*args: Any, **kwargs: Any) -> Any:
                    if len(args) >= 4 and isinstance(args[3], dict):
                        check_namespace(args[3])
                    return method(*args, **kwargs)

                return mark_safe(checked_new)
            return method

        return super_method

    def zero_arg_super(self, node: ast.Call, sc: Scope) -> Fn:
        first = getattr(sc, "first_arg", None)
        if sc.kind != "function" or first is None:
            raise self.unsupported(node, "super() without arguments outside a method")
        load_first = self.load_name(node, first, sc)
        super_fn = self.load_name(node.func, "super", sc)
        real_super = self.builtins.get("super")

        def zero_super(f: Frame) -> Any:
            if super_fn(f) is not real_super:
                return super_fn(f)()
            cell = f.cls
            if cell is None or cell.value is None:
                raise RuntimeError("super(): __class__ cell not found")
            return super(cell.value, load_first(f))

        return zero_super


def _call_slow(fn: Any, a: list[Any], kw: dict[str, Any] | None, call_native: Any) -> Any:
    t = type(fn)
    if t is type and USER_MARK_NAME in fn.__dict__ and not kw and not issubclass(fn, type):
        for x in a:
            if type(x) not in _NO_ITER_ARGS:
                break
        else:
            return fn(*a)  # a sandbox class with plain arguments: __init__ is interpreted
    if t is _MethodType:
        func = fn.__func__
        if type(func) is _FunctionType and id(func.__code__) in USER_CODE_IDS:
            return func(fn.__self__, *a, **kw) if kw else func(fn.__self__, *a)
    elif t is _FunctionType and id(fn.__code__) in USER_CODE_IDS:
        return fn(*a, **kw) if kw else fn(*a)
    return call_native(fn, a, kw)


call_value = _call_slow


def _called_here(e: CallOnly, name: str) -> Any:
    """A host-effect callable looked up at a call site: called at once, never kept."""
    if getattr(e.value, "__name__", None) != name:
        raise e
    return e.value
