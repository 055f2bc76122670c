"""Functions, lambdas, generators, classes and comprehensions."""

from __future__ import annotations

import ast
import contextlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .arity import MAX_ARITY, arity_factory
from .compiler_support import annotate, invoke
from .errors import InterpreterError, RecursionLimitExceeded, SecurityError
from .fngen import fuse_function
from .frame import BREAK, CONTINUE, RETURN, ClassCell, Frame
from .host_effects import HOST_ROOTS, home_root
from .nodes_gen import GenMixin
from .nodes_match import MatchMixin
from .rules import USER_MARK, USER_MARK_NAME, add_user_code, is_dunder

if TYPE_CHECKING:
    from .budget import Budget
    from .compiler import Fn
    from .scope import Scope

__all__ = ["DefMixin"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _names(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def make_binder(name: str, a: ast.arguments) -> Callable[..., dict[str, Any]]:
    posonly = [x.arg for x in a.posonlyargs]
    params = posonly + [x.arg for x in a.args]
    n = len(params)
    vararg = a.vararg.arg if a.vararg else None
    kwarg = a.kwarg.arg if a.kwarg else None
    kwonly = [x.arg for x in a.kwonlyargs]
    by_keyword = set(params[len(posonly) :]) | set(kwonly)
    simple = not posonly and vararg is None and kwarg is None and not kwonly

    def general(
        args: tuple[Any, ...],
        kw: dict[str, Any],
        defaults: tuple[Any, ...],
        kwdefaults: dict[str, Any],
    ) -> dict[str, Any]:
        l: dict[str, Any] = {}  # noqa: E741
        na = len(args)
        if na > n and vararg is None:
            given = "was" if na == 1 else "were"
            raise TypeError(
                f"{name}() takes {_plural(n, 'positional argument')} but {na} {given} given"
            )
        for i in range(min(na, n)):
            l[params[i]] = args[i]
        if vararg is not None:
            l[vararg] = tuple(args[n:])
        extra: dict[str, Any] = {}
        if kw:
            for k, v in kw.items():
                if k in by_keyword:
                    if k in l:
                        raise TypeError(f"{name}() got multiple values for argument {k!r}")
                    l[k] = v
                elif kwarg is not None:
                    extra[k] = v
                elif k in posonly:
                    raise TypeError(
                        f"{name}() got some positional-only arguments passed as keyword arguments: {k!r}"  # noqa: E501
                    )
                else:
                    raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
        first_default = n - len(defaults)
        missing = []
        for i in range(na, n):
            p = params[i]
            if p not in l:
                if i >= first_default:
                    l[p] = defaults[i - first_default]
                else:
                    missing.append(p)
        if missing:
            raise TypeError(
                f"{name}() missing {len(missing)} required positional argument{'s' if len(missing) > 1 else ''}: {_names(missing)}"  # noqa: E501
            )
        missing = []
        for k in kwonly:
            if k not in l:
                if k in kwdefaults:
                    l[k] = kwdefaults[k]
                else:
                    missing.append(k)
        if missing:
            raise TypeError(
                f"{name}() missing {len(missing)} required keyword-only argument{'s' if len(missing) > 1 else ''}: {_names(missing)}"  # noqa: E501
            )
        if kwarg is not None:
            l[kwarg] = extra
        return l

    if simple:

        def bind_simple(
            args: tuple[Any, ...],
            kw: dict[str, Any],
            defaults: tuple[Any, ...],
            kwdefaults: dict[str, Any],
        ) -> dict[str, Any]:
            if not kw and len(args) == n:
                return dict(zip(params, args, strict=False))
            return general(args, kw, defaults, kwdefaults)

        bind_simple.params = tuple(params)  # type: ignore[attr-defined]
        return bind_simple
    return general


def _function(
    binder: Any,
    body: Any,
    defaults: tuple[Any, ...],
    kwdefaults: dict[str, Any],
    up: Frame | None,
    cls: ClassCell | None,
    b: Budget,
    expr_body: bool,
) -> Callable[..., Any]:
    params = getattr(binder, "params", None)
    n = len(params) if params is not None else -1
    first_default = n - len(defaults) if params is not None else 1 << 30

    def user_function(*args: Any, **kwargs: Any) -> Any:
        b.left -= 1
        if b.left < 0:
            b.refill()
        na = len(args)
        if na == n and not kwargs:
            fr = Frame(dict(zip(params, args, strict=False)), up, cls)  # type: ignore[arg-type]
        elif first_default <= na < n and not kwargs:
            l = dict(zip(params, args, strict=False))  # type: ignore[arg-type]  # noqa: E741
            for i in range(na, n):
                l[params[i]] = defaults[i - first_default]  # type: ignore[index]
            fr = Frame(l, up, cls)
        else:
            fr = Frame(binder(args, kwargs, defaults, kwdefaults), up, cls)
        b.depth += 1
        if b.depth > b.max_depth:
            b.depth -= 1
            raise RecursionLimitExceeded(
                f"maximum recursion depth exceeded (max_recursion_depth={b.max_depth})"
            )
        try:
            r = body(fr)
        except BaseException as e:
            with contextlib.suppress(AttributeError):
                e.__dict__["@sb_open"] = True
            raise
        finally:
            b.depth -= 1
        if expr_body:
            return r
        if r is RETURN:
            return fr.ret
        return None

    return user_function


def _closing(exc: BaseException) -> bool:
    ctx = exc.__context__
    for _ in range(8):
        if ctx is None:
            return False
        if isinstance(ctx, GeneratorExit):
            return True
        ctx = ctx.__context__
    return False


def _generator_function(
    binder: Any,
    body: Any,
    defaults: tuple[Any, ...],
    kwdefaults: dict[str, Any],
    up: Frame | None,
    cls: ClassCell | None,
    b: Budget,
    expr_body: bool,
) -> Callable[..., Any]:
    def drive(fr: Frame) -> Any:
        # ``yield from body(fr)`` written out, so that the recursion depth counts while the
        # body runs (between a resume and the next yield) and not while it is suspended:
        # a chain of generators resuming each other is recursion on the host's C stack.
        gen = body(fr)
        value: Any = None
        error: BaseException | None = None
        while True:
            b.depth += 1
            if b.depth > b.max_depth:
                b.depth -= 1
                gen.close()
                raise _too_deep(b)
            try:
                item = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                b.depth -= 1
                error = None
            try:
                value = yield item
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                error = exc
                value = None

    def run(fr: Frame) -> Any:
        try:
            r = yield from drive(fr)
        except InterpreterError as exc:
            if _closing(exc):
                return None  # a budget stop while the generator is being closed: just close
            raise
        except BaseException as exc:
            with contextlib.suppress(AttributeError):
                exc.__dict__["@sb_open"] = True  # the caller's line goes into the traceback
            raise
        if r is RETURN:
            return fr.ret
        return None

    def user_generator(*args: Any, **kwargs: Any) -> Any:
        return run(Frame(binder(args, kwargs, defaults, kwdefaults), up, cls))

    return user_generator


_NA = object()  # "argument not given" in the generated fixed-arity functions


def _too_deep(b: Budget) -> RecursionLimitExceeded:
    return RecursionLimitExceeded(
        f"maximum recursion depth exceeded (max_recursion_depth={b.max_depth})"
    )


def _mark_open(e: BaseException) -> None:
    with contextlib.suppress(AttributeError):
        e.__dict__["@sb_open"] = True


class _Inline:
    """A single-``return`` body handed to the fixed-arity template as it is."""

    __slots__ = ("mark", "value")

    def __init__(self, value: Any, mark: Callable[[BaseException], None]) -> None:
        self.value = value
        self.mark = mark


def _annotating(pos: tuple[int, int, str]) -> Callable[[BaseException], None]:
    def mark(e: BaseException) -> None:
        annotate(e, pos)
        _mark_open(e)

    return mark


def _fixed_arity_function(
    binder: Any,
    body: Any,
    defaults: tuple[Any, ...],
    kwdefaults: dict[str, Any],
    up: Frame | None,
    cls: ClassCell | None,
    b: Budget,
    expr_body: bool,
) -> Callable[..., Any]:
    params = binder.params
    factory = arity_factory(len(params), len(defaults))
    mark, cost = _mark_open, 1
    if type(body) is _Inline:
        body, mark, cost = body.value, body.mark, 2
    fn: Callable[..., Any] = factory(
        params, binder, body, defaults, kwdefaults, up, cls, b, expr_body,
        Frame, RETURN, _NA, _too_deep, mark, cost,
    )  # fmt: skip
    return fn


for _factory in (_function, _generator_function):
    add_user_code(_factory(None, None, (), {}, None, None, None, False).__code__)  # type: ignore[arg-type]


class DefMixin(GenMixin, MatchMixin):
    def check_class_namespace(self, ns: Any) -> None:
        from .rules import CLASS_DUNDERS

        slots = ns.get("__slots__", ())
        for slot in [slots] if isinstance(slots, str) else list(slots):
            if not isinstance(slot, str) or not slot.isidentifier() or slot.startswith("__"):
                raise SecurityError(f"slot name {slot!r} is not allowed")
        for key in list(ns.keys()):
            if (
                isinstance(key, str)
                and key.startswith("__")
                and key.endswith("__")
                and key not in CLASS_DUNDERS
                and key not in ("__module__", "__qualname__", "__annotations__", "__orig_bases__")
                and not key.startswith("__orig")
            ):
                raise SecurityError(f"special name {key!r} cannot be defined in the sandbox")
            if isinstance(key, str) and is_dunder(key) and home_root(ns[key]) in HOST_ROOTS:
                # the host calls implicit dunders (repr, indexing...) whenever it likes
                raise SecurityError(
                    f"{key} cannot be bound to a callable of a host module in the sandbox"
                )

    def _frame_up(self, sc: Scope) -> Callable[[Frame], Frame | None]:
        """The frame a closure defined in ``sc`` should see as its enclosing function frame."""
        if sc.kind == "class":
            return lambda f: f.up
        if sc.is_function:
            return lambda f: f
        return lambda f: None

    def _function_parts(self, node: ast.FunctionDef | ast.Lambda, sc: Scope, name: str) -> Any:
        fsc = self.scopes[id(node)]
        args = node.args
        all_args = [*args.posonlyargs, *args.args]
        fsc.first_arg = all_args[0].arg if all_args else None
        for a in (*all_args, *args.kwonlyargs, args.vararg, args.kwarg):
            if a is not None:
                self.check_name(node, a.arg, fsc, store=True)
        defaults = [self.expr(d, sc) for d in args.defaults]
        kwdefaults = [
            (a.arg, self.expr(d, sc))
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=False)
            if d is not None
        ]
        binder = make_binder(name, args)
        inline: tuple[Any, Callable[[BaseException], None]] | None = None
        params = getattr(binder, "params", None)
        fused = None
        if self.fusing and not fsc.has_yield and params is not None and len(params) <= MAX_ARITY:
            fused = fuse_function(
                self, node, fsc, params, len(args.defaults),
                (_mark_open, _annotating), _too_deep,
            )  # fmt: skip
        if fused is not None:
            factory: Any = fused
            body: Any = None
            expr_body = False
        elif isinstance(node, ast.Lambda):
            body = self.expr(node.body, fsc)
            factory = _function
            expr_body = True
        elif fsc.has_yield:
            body = self.gen_block(node.body, fsc)
            factory = _generator_function
            expr_body = False
        elif (
            len(node.body) == 1
            and isinstance(node.body[0], ast.Return)
            and node.body[0].value is not None
        ):
            # def f(...): return <expr> -- evaluated like a lambda body (no block, no signal)
            ret = node.body[0]
            value = self.expr(ret.value, fsc)
            pos = (ret.lineno, ret.col_offset, fsc.name)
            b_ = self.b

            def return_body(fr: Frame) -> Any:
                b_.left -= 1
                try:
                    return value(fr)
                except BaseException as e:
                    annotate(e, pos)
                    raise

            body = return_body
            factory = _function
            expr_body = True
            # with the fixed-arity template the expression is the body itself: one host call
            # less per call; the template counts the same two operations and annotates the
            # same position
            inline = (value, _annotating(pos))
        else:
            body = self.block(node.body, fsc)
            factory = _function
            expr_body = False
        if factory is _function and len(getattr(binder, "params", (0,) * 99)) <= MAX_ARITY:
            factory = _fixed_arity_function
            if inline is not None:
                body = _Inline(*inline)
        up = self._frame_up(sc)
        b = self.b
        qualname = name if sc.kind == "module" else f"{sc.name}.{name}"
        doc = None
        if not isinstance(node, ast.Lambda) and node.body and isinstance(node.body[0], ast.Expr):
            first_value = node.body[0].value
            if isinstance(first_value, ast.Constant) and isinstance(first_value.value, str):
                doc = first_value.value

        def create(f: Frame) -> Any:
            fn = factory(
                binder,
                body,
                tuple(d(f) for d in defaults),
                {k: d(f) for k, d in kwdefaults},
                up(f),
                f.cls,
                b,
                expr_body,
            )
            fn.__name__ = name
            fn.__qualname__ = qualname
            fn.__module__ = "__selfbox__"
            fn.__doc__ = doc
            fn.__dict__[USER_MARK_NAME] = USER_MARK
            return fn

        return create

    def s_FunctionDef(self, node: ast.FunctionDef, sc: Scope) -> Fn:
        create = self._function_parts(node, sc, node.name)
        decorators = [self.expr(d, sc) for d in node.decorator_list]
        store = self.store_name(node, node.name, sc)
        call_native = self.guards.call_native

        def define(f: Frame) -> None:
            decs = [d(f) for d in decorators]
            fn = create(f)
            for dec in reversed(decs):
                fn = invoke(dec, [fn], call_native)
            store(f, fn)

        return define

    def e_Lambda(self, node: ast.Lambda, sc: Scope) -> Fn:
        fn: Fn = self._function_parts(node, sc, "<lambda>")
        return fn

    def s_ClassDef(self, node: ast.ClassDef, sc: Scope) -> Fn:
        csc = self.scopes[id(node)]
        name = node.name
        bases = self.sequence(node.bases, sc)
        keywords = [(k.arg, self.expr(k.value, sc)) for k in node.keywords]
        if any(k is None for k, _ in keywords):
            raise self.unsupported(node, "**kwargs in a class statement")
        decorators = [self.expr(d, sc) for d in node.decorator_list]
        body = self.block(node.body, csc)
        store = self.store_name(node, name, sc)
        up = self._frame_up(sc)
        call_native = self.guards.call_native
        qualname = name if sc.kind == "module" else f"{sc.name}.{name}"
        check_namespace = self.check_class_namespace
        first = node.body[0] if node.body else None
        doc = (
            first.value.value
            if isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
            else None
        )

        def define_class(f: Frame) -> None:
            decs = [d(f) for d in decorators]
            bs = tuple(bases(f))
            kw = {k: v(f) for k, v in keywords}
            for base in bs:
                if not isinstance(base, type) and not hasattr(base, "__mro_entries__"):
                    raise TypeError(f"bases must be classes, not {type(base).__name__}")
            resolved = types.resolve_bases(bs)
            meta = kw.get("metaclass")
            if meta is not None and not (isinstance(meta, type) and issubclass(meta, type)):
                raise SecurityError("metaclass must be a class derived from type")
            meta, ns, kwds = types.prepare_class(name, resolved, cast(dict[str, Any], kw))
            ns["__module__"] = "__selfbox__"
            ns["__qualname__"] = qualname
            if doc is not None:
                ns["__doc__"] = doc
            if resolved != bs:
                ns["__orig_bases__"] = tuple(bs)
            cell = ClassCell()
            cf = Frame(ns, up(f), cell)
            body(cf)
            check_namespace(ns)
            cls = meta(name, resolved, ns, **kwds)
            cell.value = cls
            type.__setattr__(cls, USER_MARK_NAME, USER_MARK)
            for dec in reversed(decs):
                cls = invoke(dec, [cls], call_native)
            store(f, cls)

        return define_class


_ = (annotate, BREAK, CONTINUE)
