"""Deferred host callbacks: with os (or any host module) authorized, nothing the sandbox leaves
behind can run in the host later (fork hooks, atexit, signals, threads, finalizers, registries,
implicit dunders, lazy iterators, library settings). Both isolation modes.

The rules under test (executors/local/host_effects.py): no host-effect callable is a value
(process control is not reachable at all), and host-runtime code is never handed a callable or
an object of the sandbox. The enumeration tests walk every public callable of the host-runtime
modules, so a registrar nobody listed is covered too.
"""

from __future__ import annotations

import atexit
import copyreg
import gc
import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executors import create_executor
from executors.base import Executor
from executors.local.errors import SecurityError
from executors.local.host_effects import (
    _VALUE_OK,
    HOST_ROOTS,
    check_host_call,
    home_root,
    never_reachable,
)
from executors.local.policy import Policy
from executors.local.rules import USER_MARK, USER_MARK_NAME, is_user_owned

HOST_MODULES = [
    "os", "posix", "sys", "signal", "atexit", "threading", "_thread", "weakref", "codecs",
    "copyreg", "logging", "logging.handlers", "gc", "faulthandler", "functools", "collections",
    "concurrent.futures", "sched", "asyncio", "shutil", "subprocess", "pathlib", "io",
    "tempfile", "socket", "multiprocessing", "tracemalloc", "unittest", "warnings", "inspect",
    "contextvars", "select", "pickle", "importlib", "traceback", "posixpath",
]  # fmt: skip


@pytest.fixture(scope="module", params=["none", "process"])
def hx(request: pytest.FixtureRequest) -> Iterator[Executor]:
    with create_executor(
        "local",
        additional_authorized_imports=HOST_MODULES,
        isolation=request.param,
        timeout_s=10.0,
    ) as executor:
        yield executor


def _refused(ex: Executor, code: str) -> str:
    r = ex.run(code)
    assert r.status == "error", (code, r.text, r.stdout)
    assert r.error is not None and r.error.name == "SecurityError", (code, r.error)
    return r.error.value


PRELUDE = (
    "import os, sys, functools, collections\n"
    "class Obj:\n    def method(self):\n        return 1\n"
    "def fn(*a, **k):\n    return 1\n"
    "obj = Obj()\n"
)

# Every API of the issue that stores a callable for the host to call later, each with a
# sandbox function, a native callable and (where it applies) a sandbox object.
REGISTRARS = [
    'os.register_at_fork(after_in_child=functools.partial(os.system, "touch /tmp/x"))',
    "os.register_at_fork(after_in_child=fn)",
    "os.register_at_fork(before=print)",
    "import atexit\natexit.register(fn)",
    "import atexit\natexit.register(print, 'x')",
    "import signal\nsignal.signal(signal.SIGUSR1, fn)",
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)",
    "import signal\nsignal.setitimer(signal.ITIMER_REAL, 100)",
    "import threading\nthreading.excepthook = fn",
    "import threading\nthreading.settrace(fn)",
    "import threading\nthreading.setprofile(print)",
    "import threading\nthreading.Thread(target=fn).start()",
    "import threading\nthreading.Timer(100, print).start()",
    "import threading\nclass T(threading.Thread):\n    def run(self):\n        pass\nT().start()",
    "import _thread\n_thread.start_new_thread(fn, ())",
    "sys.excepthook = fn",
    "sys.displayhook = fn",
    "sys.breakpointhook = fn",
    "sys.unraisablehook = fn",
    "sys.addaudithook(fn)",
    "sys.settrace(fn)",
    "sys.setprofile(print)",
    "sys.set_asyncgen_hooks(firstiter=fn)",
    "import weakref\nweakref.finalize(obj, fn)",
    "import weakref\nweakref.finalize(obj, print, 'x')",
    "import weakref\nweakref.ref(obj, fn)",
    "import weakref\nlist(map(weakref.finalize, [obj], [print]))",
    "import weakref\nfunctools.partial(weakref.finalize, obj)",
    "import codecs\ncodecs.register(fn)",
    "import codecs\ncodecs.register_error('x', print)",
    "import copyreg\ncopyreg.pickle(Obj, fn)",
    "import copyreg\ncopyreg.constructor(print)",
    "import logging\nlogging.getLogger().addFilter(fn)",
    "import logging\nlogging.getLogger().addFilter(print)",
    "import logging\nclass H(logging.Handler):\n    def emit(self, r):\n        pass\n"
    "logging.getLogger().addHandler(H())",
    "import logging\nclass L(logging.Logger):\n    pass\nlogging.setLoggerClass(L)",
    "import logging\nlogging.setLogRecordFactory(fn)",
    "import logging\nlogging.basicConfig(handlers=[obj])",
    "import faulthandler\nfaulthandler.dump_traceback_later(100, file=obj)",
    "import concurrent.futures\nconcurrent.futures.ThreadPoolExecutor().submit(fn)",
    "import asyncio\nasyncio.new_event_loop().call_later(100, fn)",
    "import sched\nsched.scheduler().enter(100, 1, fn)",
    "import unittest\nunittest.addModuleCleanup(fn)",
    # implicit callers: a defaultdict factory, a class dunder, a lazy map handed on later
    'collections.defaultdict(functools.partial(os.remove, "/tmp/x"))',
    "collections.defaultdict(os.remove)",
    "import weakref\nclass A:\n    __getitem__ = weakref.finalize\n",
    "class A:\n    __repr__ = os.getpid\n",
    'lazy = map(os.remove, ["/tmp/x"])',
    'import pathlib\natexit_target = pathlib.Path("/tmp/x").unlink',
    'import logging\nlog = logging.getLogger("x").info',
]


@pytest.mark.parametrize("code", REGISTRARS)
def test_deferred_host_callbacks_are_refused(hx: Executor, code: str) -> None:
    _refused(hx, PRELUDE + code)


PROCESS_CONTROL = [
    "os.system", "os.popen", "os.execv", "os.execvpe", "os.spawnv", "os.spawnlp", "os.fork",
    "os.forkpty", "os.kill", "os.killpg", "os.abort", "os.posix_spawn", "os.register_at_fork",
    "posix.system", "posix.fork", "posix.kill", "os.setuid", "os.umask", "os.putenv",
    "os.chdir", "os.nice", "sys.setrecursionlimit", "sys.set_int_max_str_digits",
    "sys.setswitchinterval", "gc.disable", "gc.freeze", "tracemalloc.start",
    "faulthandler.enable", "logging.disable", "logging.basicConfig",
]  # fmt: skip


@pytest.mark.parametrize("name", PROCESS_CONTROL)
def test_process_control_and_host_settings_are_unreachable(hx: Executor, name: str) -> None:
    mod = name.split(".")[0]
    _refused(hx, f"import {mod}\nf = {name}")
    _refused(hx, f"import {mod}\n{name}(0)")
    _refused(hx, f"import {mod}\ngetattr({mod}, {name.split('.')[1]!r})")
    _refused(hx, f"from {mod} import {name.split('.')[1]}")


def test_host_functions_are_called_in_place_not_kept(hx: Executor) -> None:
    r = hx.run('import os\nlen(os.listdir(".")) >= 0 and os.path.join("a", "b")')
    assert r.ok and r.text == "'a/b'", r
    r = hx.run('import os\nsorted(["a", "b"], key=os.path.basename)')  # os.path: no effects
    assert r.ok and r.text == "['a', 'b']", r
    r = hx.run("import os\nf = os.getcwd\nf() == os.getcwd()")  # a read-only helper
    assert r.ok and r.text == "True", r
    r = hx.run('import logging\nlogging.getLogger("selfbox-test").debug("x %s", 1)\n1')
    assert r.ok, r
    r = hx.run("import threading\nisinstance(1, threading.Thread)")
    assert r.ok and r.text == "False", r
    for code in ("import os\nf = os.remove", "from os import remove", "import os\n[os.unlink]"):
        assert "only be called" in _refused(hx, code)


def test_host_registries_are_copies_and_module_hooks_read_only(hx: Executor) -> None:
    meta, hooks, gc_cbs = list(sys.meta_path), list(sys.path_hooks), list(gc.callbacks)
    table = dict(copyreg.dispatch_table)
    r = hx.run(
        "import sys, gc, copyreg\nsys.meta_path.append(1)\nsys.path_hooks.append(2)\n"
        "gc.callbacks.append(print)\ncopyreg.dispatch_table[int] = print\n"
        "len(sys.meta_path) - len(sys.meta_path)"
    )
    assert r.ok, r
    assert (sys.meta_path, sys.path_hooks, gc.callbacks) == (meta, hooks, gc_cbs)
    assert dict(copyreg.dispatch_table) == table
    r = hx.run('import os\nos.environ["SELFBOX_L14"] = "1"\nos.environ["SELFBOX_L14"]')
    assert r.ok and r.text == "'1'", r
    assert "SELFBOX_L14" not in os.environ
    assert hx.run('import os\n"SELFBOX_L14" in os.environ').text == "True"  # its own copy


def test_the_issue_escape_does_not_run_at_the_next_fork(tmp_path: Path) -> None:
    marker = tmp_path / "forked"
    with create_executor("local", additional_authorized_imports=["os", "functools"]) as ex:
        r = ex.run(
            "import os, functools\n"
            f"os.register_at_fork(after_in_child=functools.partial(os.system, 'touch {marker}'))"
        )
    assert r.status == "error" and r.error is not None and r.error.name == "SecurityError"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only exits
        os._exit(0)
    os.waitpid(pid, 0)
    assert not marker.exists()


def test_library_settings_keep_no_callback_for_the_host() -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("pandas")
    with create_executor("local", additional_authorized_imports=["numpy", "pandas"]) as ex:
        r = ex.run(
            "import numpy as np\n"
            "np.set_printoptions(formatter={'all': lambda x: 'X'})\nnp.seterrcall(print)\n"
            "str(np.array([1, 2]))"
        )
        assert r.ok and r.text == "'[X X]'", r
        assert ex.run("import numpy as np\nstr(np.array([1, 2]))").text == "'[X X]'"
        r = ex.run("import pandas as pd\npd.set_option('display.float_format', lambda x: 'X')")
        assert r.status == "error" and r.error is not None and r.error.name == "SecurityError"
    assert str(np.array([1, 2])) == "[1 2]" and np.geterrcall() is None


# -- the class, enumerated ------------------------------------------------------------------
def _host_callables() -> Iterator[tuple[types.ModuleType, str, Any]]:
    for mname in HOST_MODULES:
        try:
            module = importlib.import_module(mname)
        except ImportError:
            continue
        for name in dir(module):
            if name.startswith("_"):
                continue
            value = getattr(module, name)
            if callable(value) and not isinstance(value, types.ModuleType):
                yield module, name, value


def _sandbox_function() -> Any:
    def f() -> None:
        pass

    f.__dict__[USER_MARK_NAME] = USER_MARK
    return f


def test_enumerated_every_host_callable_is_not_a_value() -> None:
    policy = Policy([*HOST_MODULES])
    checked = 0
    for module, attr, value in _host_callables():
        root = home_root(value)
        if root not in HOST_ROOTS or isinstance(value, type):
            continue  # functools/collections, os.path helpers; classes: rule 2 below
        checked += 1
        name = getattr(value, "__name__", "")
        if name in _VALUE_OK.get(root, ()) and type(value) is not types.MethodType:
            policy._module_attr(module, attr)
            continue
        with pytest.raises(SecurityError):
            policy._module_attr(module, attr)  # what `mod.attr` / getattr(mod, attr) give
    assert checked > 400


def test_enumerated_no_host_callable_accepts_a_callable_or_sandbox_object() -> None:
    sandbox_fn = _sandbox_function()
    checked = 0
    for _m, _a, value in _host_callables():
        if home_root(value) not in HOST_ROOTS:
            continue
        checked += 1
        for arg in (sandbox_fn, print, [print], {"k": sandbox_fn}):
            with pytest.raises(SecurityError):
                check_host_call(value, [arg], None, is_user_owned)
            with pytest.raises(SecurityError):
                check_host_call(value, [], {"target": arg}, is_user_owned)
        if not never_reachable(home_root(value), getattr(value, "__name__", None)):
            check_host_call(value, [1, "x", (2.0, None)], {"n": 3}, is_user_owned)
    assert checked > 500


def test_enumerated_host_classes_reach_no_native_code_but_type_checks() -> None:
    for _m, _a, value in _host_callables():
        if isinstance(value, type) and home_root(value) in HOST_ROOTS:
            with pytest.raises(SecurityError):
                check_host_call(map, [value, [1]], None, is_user_owned)
            check_host_call(isinstance, [1, value], None, is_user_owned)


def test_host_state_untouched_after_refusals() -> None:
    before = (sys.gettrace(), sys.getprofile(), sys.excepthook, sys.displayhook)
    handlers = list(atexit.__dict__.get("_exithandlers", []))
    with create_executor("local", additional_authorized_imports=HOST_MODULES) as ex:
        for code in REGISTRARS:
            ex.run(PRELUDE + code)
    assert (sys.gettrace(), sys.getprofile(), sys.excepthook, sys.displayhook) == before
    assert list(atexit.__dict__.get("_exithandlers", [])) == handlers


# -- module proxies in host hands -------------------------------------------------------------
def test_module_proxies_answer_host_code_like_modules() -> None:
    import inspect

    seen: dict[str, Any] = {}

    def probe(m: Any) -> str:
        seen["m"] = m
        return "ok"

    with create_executor("local", additional_authorized_imports=["os"]) as ex:
        ex.send_tools({"probe": probe})
        r = ex.run("import math, os\nprobe(math)")
        assert r.ok and r.text == "'ok'", r
        m = seen["m"]
        # host code after the run: ordinary Exceptions and defaults, never a BaseException
        assert hasattr(m, "__wrapped__") is False
        assert getattr(m, "_x", None) is None
        assert getattr(m, "__array_interface__", "d") == "d"
        assert inspect.unwrap(m) is m
        assert m.sqrt(16) == 4.0
        with pytest.raises(AttributeError):  # an ordinary Exception for the host
            getattr(m, "_private")  # noqa: B009
        # the sandbox still cannot catch a refusal
        for code in (
            "import random\ntry:\n    random._os\nexcept AttributeError:\n    'caught'",
            "import os\ntry:\n    os.system\nexcept Exception:\n    'caught'",
            "try:\n    from os import system\nexcept ImportError:\n    'caught'",
        ):
            r = ex.run(code)
            assert r.status == "error" and r.error is not None, (code, r)
            assert r.error.name == "SecurityError", (code, r.error)
        assert ex.run("import math\nhasattr(math, 'sqrt'), getattr(math, 'nope', 1)").text == (
            "(True, 1)"
        )
        r = ex.run("import random\nhasattr(random, '_os')")
        assert r.error is not None and r.error.name == "SecurityError"
