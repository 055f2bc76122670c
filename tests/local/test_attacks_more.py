# ruff: noqa: E501 - attack payloads are kept verbatim on one line
"""More attacks (red team, second round): metaclass and class-factory routes, tampering with
shared library classes, and native calls that compute or allocate without bound.

BLOCK entries must end in an error (an escape would make them run to the end); TAMPER entries
must leave the host's library state untouched; LIMIT entries run in a separate process with a
hard deadline and must stop promptly with an error (an escape hangs, crashes or succeeds).
"""

from __future__ import annotations

import collections.abc
import concurrent.futures
import copy
import decimal
import functools
import json
import numbers
import random
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from executors import create_executor
from executors.models import Execution

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ERRORS = {
    "SecurityError", "InterpreterError", "UnsupportedSyntaxError", "NameError", "AttributeError",
    "TypeError", "IndexError", "SyntaxError", "FinalAnswerSignal", "SizeLimitExceeded",
}  # fmt: skip


def run(code: str, imports: tuple[str, ...] = (), **kw: object) -> Execution:
    kw.setdefault("timeout_s", 5.0)
    with create_executor("local", additional_authorized_imports=list(imports), **kw) as ex:  # type: ignore[arg-type]
        return ex.run(code)


BLOCK = [
    ("meta_abc", "import abc\nX = abc.ABCMeta('X', (), {'__del__': lambda s: None})\nX", ()),
    (
        "meta_abc2",
        "import abc\nX = abc.ABCMeta('X', (), {'__getattribute__': lambda s, n: 1})\nX",
        (),
    ),
    (
        "meta_numbers",
        "import numbers\nX = type(numbers.Number)('X', (), {'__reduce__': lambda s: 1})\nX",
        (),
    ),
    (
        "meta_cabc",
        "import collections.abc as c\nX = type(c.Iterable)('X', (), {'__del__': print})\nX",
        (),
    ),
    (
        "meta_typing_proto",
        "import typing\nX = type(typing.Protocol)('X', (), {'__del__': print})\nX",
        (),
    ),
    (
        "meta_partial",
        "import abc, functools\nX = functools.partial(abc.ABCMeta, 'X', ())({'__del__': print})\nX",
        (),
    ),
    (
        "meta_map",
        "import abc\nX = list(map(abc.ABCMeta, ['X'], [()], [{'__del__': print}]))\nX",
        (),
    ),
    ("meta_enum_func", "import enum\nE = enum.Enum('E', {'__del__': 1, 'A': 2})\nE", ("enum",)),
    (
        "meta_dc_ns",
        "import dataclasses\nX = dataclasses.make_dataclass('X', ['a'], namespace={'__del__': print})\nX",
        ("dataclasses",),
    ),
    (
        "meta_dc_ns2",
        "import dataclasses\nX = dataclasses.make_dataclass('X', ['a'], namespace={'__reduce_ex__': print})\nX(1)",
        ("dataclasses",),
    ),
    ("meta_typeddict", "import typing\nX = typing.TypedDict('X', {'__del__': int})\nX.__del__", ()),
    ("meta_user_type_sub", "class M(type):\n    pass\nX = M('X', (), {'__del__': print})\nX", ()),
    ("meta_type_of_class", "class A:\n    pass\nX = type(A)('X', (), {'__del__': print})", ()),
    (
        "meta_copy_reduce",
        "import copy, abc\nX = copy.copy(abc.ABCMeta)('X', (), {'__del__': print})\nX",
        (),
    ),
    ("d_getattr_nul", "getattr(1, '__class__\\x00')", ()),
    ("d_opcall", "import operator\noperator.call(getattr, 1, '__class__')", ()),
    ("d_attrgetter_multi", "import operator\noperator.attrgetter('real', '__class__')(1)", ()),
    (
        "d_methodcaller_fm",
        "import operator\noperator.methodcaller('format_map', {'a': 1})('{a.__class__}')",
        (),
    ),
    (
        "d_format_map_dd",
        "import collections\n'{a.__class__}'.format_map(collections.defaultdict(int))",
        (),
    ),
    ("d_format_unbound", "str.format_map('{a.__class__}', {'a': 1})", ()),
    ("d_format_mro", "str.mro()[0].format('{0.__class__}', 1)", ()),
    ("d_format_partial", "import functools\nfunctools.partial(str.format, '{0.__class__}')(1)", ()),
    ("d_format_map_fn", "list(map('{0.__class__}'.format, [1]))", ()),
    ("d_format_nested", "'{0:{1.__class__}}'.format(1, 2)", ()),
    ("d_format_idx", "'{0[0].__class__}'.format([1])", ()),
    ("d_fstring_getattr", "f'{getattr(1, \"__class__\")}'", ()),
    ("d_classmethod_func", "classmethod(print).__func__", ()),
    ("d_property_fget_dunder", "property(lambda s: s).fget.__code__", ()),
    ("d_exc_context", "try:\n    1/0\nexcept Exception as e:\n    x = e.__context__", ()),
    (
        "d_exc_tb_attrgetter",
        "import operator\ntry:\n    1/0\nexcept Exception as e:\n    x = operator.attrgetter('__traceback__')(e)",
        (),
    ),
    ("d_gen_running", "g = (i for i in [1])\ng.gi_running", ()),
    ("d_gen_frame_getattr_default", "g = (i for i in [1])\ngetattr(g, 'gi_frame', None)", ()),
    ("d_gen_frame_hasattr", "g = (i for i in [1])\nhasattr(g, 'gi_frame')", ()),
    (
        "d_super_self_class",
        "class A:\n    def f(self):\n        return super().__self_class__\nA().f()",
        (),
    ),
    (
        "d_super_getattr",
        "class A:\n    def f(self):\n        return getattr(super(), '__class__')\nA().f()",
        (),
    ),
    (
        "d_prepare",
        "class M(type):\n    @classmethod\n    def __prepare__(m, n, b):\n        return {}\nclass A(metaclass=M):\n    pass",
        (),
    ),
    ("d_class_dict_via_user_mro", "class A:\n    pass\nA.mro()[1].__subclasses__()", ()),
    ("d_obj_sub_via_type_mro", "type.mro(int)[1].__subclasses__", ()),
    ("d_type_call_getattribute", "type.__getattribute__", ()),
    ("d_dir_builtin", "x = dir(1)\n[n for n in x if n.startswith('__')][0]", ()),
    (
        "d_subclasscheck_catch",
        "class M(type):\n    def __subclasscheck__(c, s):\n        return True\n    def __instancecheck__(c, s):\n        return True\nclass C(Exception, metaclass=M):\n    pass\ntry:\n    import os\nexcept C:\n    pass\n'caught'",
        (),
    ),
    (
        "d_subclasscheck_steal",
        "box = []\nclass M(type):\n    def __subclasscheck__(c, s):\n        box.append(s)\n        return False\n    def __instancecheck__(c, s):\n        box.append(s)\n        return False\nclass C(Exception, metaclass=M):\n    pass\ntry:\n    try:\n        import os\n    except C:\n        pass\nfinally:\n    pass\nbox[0]",
        (),
    ),
    (
        "d_forward_ref",
        "import typing\nfr = typing.get_args(typing.List['os'])[0]\nfr._evaluate(None, None, frozenset())",
        (),
    ),
    ("d_newtype", "import typing\nN = typing.NewType('N', int)\nN.__supertype__", ()),
    ("d_lru_wrapped", "import functools\nfunctools.lru_cache()(len).__wrapped__", ()),
    ("d_partial_func_raw", "import functools\nf = functools.partial(print).func\nf.__self__", ()),
    (
        "d_e_obj_internal",
        "try:\n    print.xyz\nexcept AttributeError as e:\n    x = e.obj\nx.__globals__",
        (),
    ),
    (
        "d_e_obj_fa",
        "try:\n    final_answer.xyz\nexcept AttributeError as e:\n    x = e.obj\ntype(x).zz = 1",
        (),
    ),
    ("d_copy_module", "import copy, math\ncopy.copy(math)", ()),
    ("d_deepcopy_module", "import copy, math\ncopy.deepcopy([math])", ()),
    ("d_builtins_name", "__builtins__", ()),
    ("d_builtins_assign", "__builtins__ = {}\n1", ()),
    ("d_import_assign", "__import__ = print\n1", ()),
    ("d_name_dunder_del", "del __name__", ()),
    ("d_class_doc_obj", "import random\nrandom.Random.random.__doc__.__class__", ()),
    ("x_vars_obj", "vars(1)", ()),
    ("x_getattr_mro", "getattr(int, '__mro__')", ()),
    ("x_getattr_bases", "getattr(int, '__bases__')[0].__subclasses__()", ()),
    ("x_attrgetter_sub", "import operator\noperator.attrgetter('__subclasses__')(object)()", ()),
    ("x_methodcaller_sub", "import operator\noperator.methodcaller('__subclasses__')(object)", ()),
    ("x_format_globals", "def f(): pass\n'{0.__globals__}'.format(f)", ()),
    ("x_format_builtins", "'{0.__self__}'.format(print)", ()),
    ("x_format_map_self", "'{p.__self__}'.format_map({'p': print})", ()),
    ("x_fmt_spec_attr", "'{0:{0.__class__}}'.format(1)", ()),
    ("x_gen_frame_fback", "def g():\n    yield 1\nit = g()\nnext(it)\nit.gi_frame.f_back", ()),
    (
        "x_gen_yieldfrom_frame",
        "def g():\n    yield 1\ndef h():\n    yield from g()\nx = h()\nnext(x)\nx.gi_yieldfrom.gi_frame",
        (),
    ),
    ("x_tb_via_with_traceback", "e = ValueError()\ne.with_traceback(None).__traceback__", ()),
    (
        "x_tb_frame_getattr",
        "try:\n    1/0\nexcept Exception as e:\n    getattr(getattr(e, '__traceback__'), 'tb_frame')",
        (),
    ),
    (
        "x_exc_cause",
        "try:\n    raise ValueError from KeyError()\nexcept Exception as e:\n    e.__cause__",
        (),
    ),
    (
        "x_stop_iteration_value",
        "def g():\n    return print\n    yield\ntry:\n    next(g())\nexcept StopIteration as e:\n    x = e.value\nx.__self__",
        (),
    ),
    (
        "x_class_getitem",
        "class A:\n    def __class_getitem__(cls, k):\n        return cls.__mro__\nA[0]",
        (),
    ),
    (
        "x_init_subclass_dict",
        "class A:\n    def __init_subclass__(cls):\n        cls.__dict__\nclass B(A):\n    pass",
        (),
    ),
    (
        "x_set_name_owner",
        "class D:\n    def __set_name__(self, owner, name):\n        self.o = owner.__dict__\nclass A:\n    d = D()",
        (),
    ),
    (
        "x_descriptor_get_owner",
        "class D:\n    def __get__(self, o, t):\n        return t.__base__\nclass A:\n    d = D()\nA.d",
        (),
    ),
    ("x_super_type_obj", "super(type, type).__getattribute__(int, '__subclasses__')", ()),
    (
        "x_super_obj_class",
        "class A:\n    def f(self):\n        return super(A, self).__class__\nA().f()",
        (),
    ),
    (
        "x_meta_new_del",
        "class M(type):\n    def __new__(m, n, b, ns):\n        ns['__reduce__'] = lambda s: 1\n        return super().__new__(m, n, b, ns)\nclass A(metaclass=M):\n    pass",
        (),
    ),
    (
        "x_meta_call_3",
        "class M(type):\n    pass\nclass A(metaclass=M):\n    pass\ntype(A)('X', (), {'__del__': print})",
        (),
    ),
    ("x_meta_attr_getattribute", "class M(type):\n    __getattribute__ = lambda c, n: 1\n", ()),
    (
        "x_decorator_returns_type3",
        "def deco(c):\n    return type(c.__name__, (), {'__del__': print})\n@deco\nclass A:\n    pass",
        (),
    ),
    ("x_decorator_getattr", "@getattr\ndef f():\n    pass", ()),
    ("x_lambda_code", "(lambda: 1).__code__.co_code", ()),
    ("x_func_closure_cell", "def f():\n    a = 1\n    return lambda: a\nf().__closure__", ()),
    ("x_func_builtins", "def f(): pass\nf.__builtins__", ()),
    ("x_func_globals_getattr", "def f(): pass\ngetattr(f, '__globals__')", ()),
    ("x_method_func", "class A:\n    def m(self): pass\nA().m.__func__", ()),
    ("x_method_self_getattr", "class A:\n    def m(self): pass\ngetattr(A().m, '__self__')", ()),
    ("x_str_join_dunder", "getattr(1, ''.join(['__', 'class', '__']))", ()),
    ("x_chr_dunder", "getattr(1, chr(95)*2 + 'class' + chr(95)*2)", ()),
    ("x_bytes_name", "getattr(1, b'__class__'.decode())", ()),
    (
        "x_str_sub_name",
        "class S(str):\n    def __eq__(self, o): return False\n    __hash__ = str.__hash__\ngetattr(1, S('__class__'))",
        (),
    ),
    ("x_setattr_user_dunder", "class A: pass\nsetattr(A, '__init__', print)", ()),
    ("x_setattr_user_class_dunder", "class A: pass\na = A()\nsetattr(a, '__class__', int)", ()),
    ("x_delattr_user", "class A: pass\ndelattr(A, '__init__')", ()),
    ("x_random_inst", "import random\nrandom.random.__self__", ()),
    ("x_random_getstate_os", "import random\ngetattr(random, '_urandom')", ()),
    ("x_collections_sys", "import collections\ncollections.abc.sys", ()),
    ("x_typing_sys_modules", "import typing\ntyping.sys.modules['os']", ()),
    ("x_re_sre", "import re\nre._compiler", ()),
    ("x_functools_reprlib", "import functools\nfunctools.recursive_repr.__globals__", ()),
    ("x_json_decoder_mod", "import json\njson.decoder", ()),
    ("x_json_scanner", "import json\njson.scanner", ()),
    ("x_datetime_time_mod", "import datetime\ndatetime.sys", ()),
    ("x_heapq_mod", "import heapq\nheapq._heapq", ()),
    ("x_statistics_random_os", "import statistics\nstatistics.random._os", ()),
    ("x_fractions_math_sys", "import fractions\nfractions.sys", ()),
    ("x_decimal_sys", "import decimal\ndecimal.sys", ()),
    ("x_string_re", "import string\nstring._re", ()),
    ("x_copy_weakref", "import copy\ncopy.weakref", ()),
    ("x_copy_reconstruct", "import copy\ncopy._reconstruct", ()),
    ("x_import_os_path", "from os import path", ()),
    ("x_import_star_sys", "from sys import *", ()),
    ("x_import_builtins_as", "import builtins as b", ()),
    ("x_importlib", "import importlib.util", ()),
    ("x_import_dotted_submodule", "import collections.abc\ncollections.abc.sys", ()),
    ("x_import_relative", "from .. import x", ()),
    ("x_import_pickle_via_copyreg", "import copyreg", ()),
    ("x_marshal", "import marshal", ()),
    ("x_gc", "import gc", ()),
    ("x_inspect", "import inspect", ()),
    ("x_ctypes", "import ctypes", ()),
    ("x_weakref", "import weakref", ()),
    ("x_types", "import types", ()),
    ("x_pathlib", "import pathlib", ()),
    ("x_shutil", "import shutil", ()),
    ("x_io", "import io", ()),
    ("x_codecs", "import codecs", ()),
    (
        "x_final_answer_fake",
        "class FinalAnswerSignal(BaseException):\n    def __init__(self, v):\n        self.value = v\nraise FinalAnswerSignal('forged')",
        (),
    ),
    ("x_final_answer_getattr", "getattr(final_answer, '__call__')", ()),
    ("x_final_answer_type_attr", "type(final_answer).x = 1", ()),
    ("x_final_answer_setattr", "setattr(final_answer, 'x', 1)", ()),
    ("x_exc_setattr_tb", "e = ValueError()\nsetattr(e, '__traceback__', None)", ()),
    ("x_print_file", "class F:\n    def write(self, s): pass\nprint(1, file=F())", ()),
    ("x_dir_module", "import math\n[n for n in dir(math) if n.startswith('_')][0]", ()),
    ("x_class_module_os", "class A:\n    __module__ = 'os'", ()),
    (
        "x_namedtuple_module",
        "import collections\nP = collections.namedtuple('P', 'a', module='os')\nP.__module__",
        (),
    ),
    ("x_enum_module", "import enum\nE = enum.Enum('E', 'A', module='os')\nE", ("enum",)),
    (
        "x_dataclass_field_factory_type",
        "import dataclasses\n@dataclasses.dataclass\nclass A:\n    x: list = dataclasses.field(default_factory=type)\nA().x.__class__",
        ("dataclasses",),
    ),
    (
        "x_typing_forwardref_eval",
        "import typing\ntyping.ForwardRef('__import__(\"os\")')._evaluate(None, None, frozenset())",
        (),
    ),
    (
        "x_get_type_hints_route",
        "import typing\nclass A:\n    x: 'os'\ntyping.get_type_hints(A)",
        (),
    ),
    ("x_partial_type3", "import functools\nfunctools.partial(type)('X', (), {})", ()),
    ("x_map_type3", "list(map(type, ['X'], [()], [{}]))", ()),
    ("x_sorted_key_type", "import abc\nsorted([1], key=abc.ABCMeta)", ()),
    (
        "x_defaultdict_meta",
        "import abc, collections\nd = collections.defaultdict(abc.ABCMeta)\nd[1]",
        (),
    ),
    (
        "x_reduce_meta",
        "import abc, functools\nfunctools.reduce(lambda a, b: abc.ABCMeta('X', (), {'__del__': print}), [1, 2])",
        (),
    ),
]


@pytest.mark.parametrize(("name", "code", "imports"), BLOCK, ids=[b[0] for b in BLOCK])
def test_block(name: str, code: str, imports: tuple[str, ...]) -> None:
    r = run(code, imports)
    assert r.status == "error" and not r.is_final_answer, (name, r)
    assert r.error is not None and r.error.name in ALLOWED_ERRORS, (name, r.error)


def _host_state() -> dict[str, object]:
    return {
        "dispatch_table": dict(copy.dispatch_table),
        "unicode_ws": dict(textwrap.TextWrapper.unicode_whitespace_trans),
        "default_ctx": (decimal.DefaultContext.prec, dict(decimal.DefaultContext.traps)),
        "basic_ctx": decimal.BasicContext.prec,
        "int_is_mapping": isinstance(1, collections.abc.Mapping),
        "str_is_integral": issubclass(str, numbers.Integral),
        "int_is_sequence": issubclass(int, collections.abc.Sequence),
        "encoder": dict(vars(json.JSONEncoder)),
        "fraction": sorted(vars(__import__("fractions").Fraction)),
        "random": sorted(vars(random.Random)),
        "supports_int": dict(vars(typing.SupportsInt)),
        "mapping_abstract": collections.abc.Mapping.__abstractmethods__,
        "ordering": functools.total_ordering,
    }


TAMPER = [
    (
        "tamper_dc",
        "import dataclasses, json\ndataclasses.dataclass(json.JSONEncoder)\n'tampered'",
        ("dataclasses",),
    ),
    (
        "tamper_total",
        "import functools, fractions\nfunctools.total_ordering(fractions.Fraction)\n'tampered'",
        (),
    ),
    ("tamper_final", "import typing, random\ntyping.final(random.Random)\n'tampered'", ()),
    ("tamper_ntc", "import typing, random\ntyping.no_type_check(random.Random)\n'tampered'", ()),
    ("tamper_rc", "import typing\ntyping.runtime_checkable(typing.SupportsInt)\n'tampered'", ()),
    (
        "tamper_abc_reg",
        "import collections.abc as c\nc.Mapping.register(int)\nisinstance(1, c.Mapping)",
        (),
    ),
    ("tamper_abc_reg2", "import numbers\nnumbers.Integral.register(str)\n'tampered'", ()),
    (
        "tamper_abc_reg3",
        "import abc, collections.abc as c\nabc.ABCMeta.register(c.Sequence, int)\n'tampered'",
        (),
    ),
    ("tamper_copy_dt", "import copy\ncopy.dispatch_table[list] = print\n'tampered'", ()),
    ("tamper_copy_dt2", "import copy\ncopy.dispatch_table.clear()\n'tampered'", ()),
    (
        "tamper_textwrap",
        "import textwrap\ntextwrap.TextWrapper.unicode_whitespace_trans[32] = 'X'\n'tampered'",
        (),
    ),
    ("tamper_decimal_default", "import decimal\ndecimal.DefaultContext.prec = 3\n'tampered'", ()),
    ("tamper_decimal_basic", "import decimal\ndecimal.BasicContext.prec = 3\n'tampered'", ()),
    (
        "tamper_decimal_traps",
        "import decimal\ndecimal.DefaultContext.traps[decimal.Inexact] = True\n'tampered'",
        (),
    ),
    (
        "tamper_abc_upd",
        "import abc, collections.abc as c\nabc.update_abstractmethods(c.Mapping)\n'tampered'",
        (),
    ),
    ("tamper_class_attr", "import json\njson.JSONEncoder.item_separator = ';'", ()),
    ("tamper_setattr_cls", "import random\nsetattr(random.Random, 'random', lambda s: 4)", ()),
    ("tamper_enum_unique", "import re\nre.RegexFlag._member_map_['X'] = 1\n'tampered'", ()),
]


@pytest.mark.parametrize(("name", "code", "imports"), TAMPER, ids=[t[0] for t in TAMPER])
def test_shared_library_state_untouched(name: str, code: str, imports: tuple[str, ...]) -> None:
    before = _host_state()
    r = run(code, imports)
    assert _host_state() == before, (name, r)
    assert r.text != "True", r  # tamper_abc_reg: isinstance(1, Mapping) inside the sandbox


LIMIT = [
    ("r_in_count", "import itertools\n-1 in itertools.count()", ()),
    ("r_in_iter", "-1 in iter(int, 1)", ()),
    ("r_iadd_count", "import itertools\nx = []\nx += itertools.count()", ()),
    ("r_slice_assign", "import itertools\nx = []\nx[:] = itertools.count()", ()),
    ("r_dict_ior", "import itertools\nd = {}\nd |= zip(itertools.count(), itertools.count())", ()),
    ("r_star_print", "import itertools\nprint(*itertools.count())", ()),
    ("r_star_list", "import itertools\n[*itertools.count()]", ()),
    ("r_star_set", "import itertools\n{*itertools.count()}", ()),
    ("r_star_tuple", "import itertools\n(*itertools.count(),)", ()),
    ("r_star_call_user", "import itertools\ndef f(*a):\n    return 1\nf(*itertools.count())", ()),
    ("r_tee", "import itertools\nitertools.tee(range(1), 10**9)", ()),
    ("r_to_bytes", "(1).to_bytes(10**10, 'big')", ()),
    ("r_getrandbits", "import random\nrandom.getrandbits(10**10)", ()),
    ("r_randbytes", "import random\nrandom.randbytes(10**10)", ()),
    ("r_choices", "import random\nrandom.choices([1], k=10**9)", ()),
    ("r_sample", "import random\nrandom.sample(range(10**10), 10**9)", ()),
    ("r_round_neg", "round(1, -10**8)", ()),
    ("r_powmod", "pow(3, 2**999_999, 2**999_999 + 1)", ()),
    ("r_frac_pow", "import fractions\nfractions.Fraction(2) ** fractions.Fraction(10**10)", ()),
    ("r_int_pow_frac", "import fractions\n2 ** fractions.Fraction(10**10)", ()),
    (
        "r_frac_sq",
        "import fractions\nx = fractions.Fraction(3, 2)\nfor i in range(40):\n    x = x * x",
        (),
    ),
    (
        "r_intsub_sq",
        "class I(int):\n    pass\nx = I(2**999_999)\nwhile True:\n    x = I(x * x)",
        (),
    ),
    ("r_index_mul", "class N:\n    def __index__(self):\n        return 10**10\n'a' * N()", ()),
    ("r_index_list", "class N:\n    def __index__(self):\n        return 10**10\n[0] * N()", ()),
    ("r_index_bytes", "class N:\n    def __index__(self):\n        return 10**10\nbytes(N())", ()),
    (
        "r_index_center",
        "class N:\n    def __index__(self):\n        return 10**10\n'x'.center(N())",
        (),
    ),
    (
        "r_index_fact",
        "import math\nclass N:\n    def __index__(self):\n        return 10**7\nmath.factorial(N())",
        (),
    ),
    ("r_op_mul", "import operator\noperator.mul('a', 10**10)", ()),
    ("r_op_pow", "import operator\noperator.pow(2, 10**10)", ()),
    ("r_op_lshift", "import operator\noperator.lshift(1, 10**10)", ()),
    ("r_op_imul", "import operator\noperator.imul([0], 10**10)", ()),
    ("r_op_ipow", "import operator\noperator.ipow(2, 10**10)", ()),
    (
        "r_reduce_mul",
        "import functools, operator\nfunctools.reduce(operator.mul, [2**999_999]*200)",
        (),
    ),
    ("r_prod", "import math\nmath.prod([2**999_999]*200)", ()),
    ("r_perm", "import math\nmath.perm(10**6)", ()),
    ("r_comb", "import math\nmath.comb(10**6, 5 * 10**5)", ()),
    ("r_lcm", "import math\nmath.lcm(*range(1, 3*10**5))", ()),
    ("r_translate", "('a' * 10**6).translate({97: 'b' * 10**6})", ()),
    ("r_re_sub_empty", "import re\nre.sub('', 'x' * 10**5, 'a' * 10**5)", ()),
    ("r_re_sub", "import re\nre.sub('a', 'x' * 10**4, 'a' * 10**6)", ()),
    ("r_concat_loop", "x = 'a' * 10**7\nwhile True:\n    y = x + 'b'", ()),
    ("r_mul_loop", "x = 2**500_000\nwhile True:\n    y = x * x", ()),
    ("r_div_loop", "x = 2**999_999\nz = 3**400_000\nwhile True:\n    y = x // z", ()),
    ("r_hash_deep", "x = ()\nfor i in range(10**7):\n    x = (x,)\nhash(x)", ()),
    ("r_template", "import string\nstring.Template('$a' * 10**6).substitute(a='x' * 10**4)", ()),
    ("r_format_many", "('{a}' * 10**6).format(a='x' * 10**4)", ()),
    ("r_format_width_many", "('{0:>100000}' * 10**5).format(1)", ()),
    ("r_percent_many", "('%s' * 10**6) % tuple(['x' * 10**4] * 10**6)", ()),
    ("r_json_dumps", "import json\njson.dumps(['x' * 10**6] * 10**4)", ()),
    ("r_repr_amp", "repr(['x' * 10**6] * 10**4)", ()),
    ("r_str_amp", "str(['x' * 10**6] * 10**4)", ()),
    ("r_print_amp", "print(['x' * 10**6] * 10**4)", ()),
    ("r_last_expr_amp", "['x' * 10**6] * 10**4", ()),
    ("r_fstring_amp", "x = ['x' * 10**6] * 10**4\nf'{x}'", ()),
    ("r_decimal_int", "import decimal\nint(decimal.Decimal('1e999999'))", ()),
    ("r_fraction_str", "import fractions\nfractions.Fraction('1e99999999')", ()),
    ("r_fstring_width", "f'{1:{10**9}}'", ()),
    ("r_sleep_neg", "import time\ntime.sleep(float('inf'))", ()),
    (
        "r_deque_maxlen",
        "import collections, itertools\ncollections.deque(itertools.count(), maxlen=1)",
        (),
    ),
    ("r_sorted_count", "import itertools\nsorted(itertools.count())", ()),
    ("r_str_join_gen", "''.join(iter(['x' * 10**6] * 10**4))", ()),
    ("r_bytes_join_gen", "b''.join(iter([b'x' * 10**6] * 10**4))", ()),
    ("r_list_extend_gen", "import itertools\nx = []\nx.extend(itertools.repeat(0))", ()),
    ("r_set_update", "import itertools\ns = set()\ns.update(itertools.count())", ()),
    (
        "r_dict_update_zip",
        "import itertools\nd = {}\nd.update(zip(itertools.count(), itertools.count()))",
        (),
    ),
    ("r_max_key", "import itertools\nmax(itertools.count(), key=lambda x: x)", ()),
    (
        "r_heapq_merge",
        "import heapq, itertools\nlist(heapq.merge(itertools.count(), itertools.count()))",
        (),
    ),
    ("r_counter_elems", "import collections\nlist(collections.Counter(a=10**12).elements())", ()),
    ("r_statistics", "import statistics\nstatistics.mean(range(10**12))", ()),
    ("r_zip_strict", "import itertools\ndict(zip(itertools.count(), itertools.count()))", ()),
    ("r_all_gen", "import itertools\nall(itertools.repeat(1))", ()),
    ("r_enumerate", "import itertools\nfor i, x in enumerate(itertools.count()):\n    pass", ()),
    (
        "r_nested_comp",
        "[(a, b, c) for a in range(10**4) for b in range(10**4) for c in range(10**4)]",
        (),
    ),
    ("r_recursion_gen", "def g(n):\n    yield from g(n + 1)\nnext(g(0))", ()),
    (
        "r_repr_recursion",
        "class A:\n    def __repr__(self):\n        return repr(self)\nrepr(A())",
        (),
    ),
    (
        "r_eq_recursion",
        "class A:\n    def __eq__(self, o):\n        return self == o\nA() == A()",
        (),
    ),
    (
        "r_sort_cmp",
        "import functools\nsorted(range(10**6), key=functools.cmp_to_key(lambda a, b: b - a))",
        (),
    ),
    ("r_bytearray_grow", "b = bytearray()\nwhile True:\n    b += b'x' * 10**6", ()),
    (
        "r_deque_grow",
        "import collections\nd = collections.deque()\nwhile True:\n    d.extend([0] * 10**6)",
        (),
    ),
    ("r_list_copy_amp", "x = [0] * 10**7\ny = [x[:] for _ in range(10**4)]", ()),
    ("r_dict_mul", "x = {i: i for i in range(10**6)}\ny = [dict(x) for _ in range(10**4)]", ()),
    ("r_tuple_sum", "x = (0,) * 10**6\nwhile True:\n    x = x + x", ()),
    ("r_bigint_str", "str(2**999_999)", ()),
    ("r_format_hex", "x = 2**999_999\nwhile True:\n    y = format(x, 'x')", ()),
    ("r_expandtabs_tab", "('\\t' * 10**5).expandtabs(10**5)", ()),
    ("r_zfill_bytes", "b'1'.zfill(10**10)", ()),
    ("r_ljust_unbound", "bytes.ljust(b'1', 10**10)", ()),
    ("r_replace_count", "('a' * 10**5).replace('a', 'b' * 10**5)", ()),
    ("r_bytes_replace", "(b'a' * 10**5).replace(b'a', b'b' * 10**5)", ()),
    ("r_hex_sep", "(b'x' * 10**7).hex(':', 1) * 1", ()),
]

_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
from executors import create_executor
code, imports = json.loads(sys.argv[1])
t = time.perf_counter()
with create_executor("local", additional_authorized_imports=imports, timeout_s=3.0) as ex:
    r = ex.run(code)
print(json.dumps([r.status, r.error.name if r.error else None, time.perf_counter() - t]))
"""


def _run_child(code: str, imports: tuple[str, ...]) -> tuple[str, object, float]:
    try:
        p = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps([code, list(imports)]), str(ROOT)],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return ("HANG", None, 20.0)
    if p.returncode != 0 or not p.stdout.strip():
        return ("CRASH", p.stderr[-500:], 0.0)
    status, err, dur = json.loads(p.stdout.strip().splitlines()[-1])
    return (status, err, dur)


@pytest.fixture(scope="module")
def limit_results() -> dict[str, tuple[str, object, float]]:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_run_child, code, imps) for name, code, imps in LIMIT}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize(("name", "code", "imports"), LIMIT, ids=[x[0] for x in LIMIT])
def test_limit_in_process(
    name: str,
    code: str,
    imports: tuple[str, ...],
    limit_results: dict[str, tuple[str, object, float]],
) -> None:
    status, err, dur = limit_results[name]
    assert status in ("error", "timeout", "output_truncated"), (name, status, err)
    assert dur < 8.0, (name, status, err, dur)


def test_catastrophic_regex_is_killed_with_process_isolation() -> None:
    # In-process, a regex that backtracks forever holds the GIL: only a child process can be
    # stopped. The process back end must return promptly.
    r = run("import re\nre.match('(a+)+$', 'a' * 40 + 'b')", isolation="process", timeout_s=2.0)
    assert r.status == "timeout" and r.duration_s < 6, r
