"""Benchmark the local interpreter against CPython ``exec`` and smolagents' LocalPythonExecutor.

    .venv/bin/python benchmarks/bench_local.py [--repeat N]

Each workload is typical agent code; every run includes parsing/compiling the source (agents send
new code each step). Times are the best of N runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import time
from collections.abc import Callable

WORKLOADS: dict[str, str] = {
    "loops": """
total = 0
for i in range(20000):
    if i % 3 == 0:
        total += i
    elif i % 5 == 0:
        total -= 1
total
""",
    "strings": """
words = []
text = "the quick brown fox jumps over the lazy dog " * 200
for w in text.split():
    w = w.strip().upper()
    if len(w) > 3:
        words.append(w[::-1] + "-" + str(len(w)))
result = ",".join(words)
len(result)
""",
    "comprehensions": """
squares = [x * x for x in range(5000)]
evens = {x: x // 2 for x in squares if x % 2 == 0}
pairs = [(a, b) for a in range(60) for b in range(60) if a < b]
total = sum(v for v in evens.values())
len(pairs) + total
""",
    "function_calls": """
def add(a, b):
    return a + b
def mul(a, b=2):
    return a * b
acc = 0
for i in range(5000):
    acc = add(acc, mul(i))
acc
""",
    "recursion": """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(18)
""",
    "dict_work": """
counts = {}
data = [str(i % 97) for i in range(10000)]
for key in data:
    counts[key] = counts.get(key, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
top
""",
    "classes": """
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def dist2(self, other):
        dx = self.x - other.x
        dy = self.y - other.y
        return dx * dx + dy * dy
pts = [Point(i, i * 2) for i in range(800)]
best = min(pts[0].dist2(p) for p in pts[1:])
best
""",
    "while_loops": """
n, steps = 27, 0
while n != 1:
    n = n // 2 if n % 2 == 0 else 3 * n + 1
    steps += 1
i = total = 0
while i < 10000:
    total += i & 7
    i += 1
steps + total
""",
    "class_hierarchy": """
class Shape:
    def __init__(self, name):
        self.name = name
    def area(self):
        return 0
    def describe(self):
        return self.name + ":" + str(self.area())
class Rect(Shape):
    def __init__(self, w, h):
        self.name = "rect"
        self.w, self.h = w, h
    def area(self):
        return self.w * self.h
class Square(Rect):
    def __init__(self, s):
        self.name = "square"
        self.w = self.h = s
shapes = [Square(i % 7) if i % 2 else Rect(i % 5, 3) for i in range(600)]
sum(len(s.describe()) for s in shapes) + sum(s.area() for s in shapes)
""",
}


def best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    gc.collect()
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_cpython(code: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<bench>", "exec"), {"__name__": "__main__"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from executors.local import Interpreter, Limits

    interp = Interpreter(limits=Limits(max_operations=10**9, max_iterations=10**9, timeout_s=600))

    def run_ours(code: str) -> None:
        result = interp.run(code)
        if result.error is not None:
            raise RuntimeError(f"selfbox failed: {result.error}")

    # CPython and selfbox first, smolagents last: its interpreter state (a large heap) would
    # otherwise slow everyone's garbage collections down.
    own: dict[str, tuple[float, float]] = {}
    for name, code in WORKLOADS.items():
        t_cpy = best_of(lambda c=code: run_cpython(c), args.repeat)
        t_ours = best_of(lambda c=code: run_ours(c), args.repeat)
        own[name] = (t_cpy, t_ours)

    smol_times: dict[str, float] = {}
    try:
        from smolagents.local_python_executor import LocalPythonExecutor

        smol = LocalPythonExecutor(additional_authorized_imports=[])
        smol.send_tools({})
        for name, code in WORKLOADS.items():
            smol_times[name] = best_of(lambda c=code: smol(c), max(1, args.repeat // 2))
    except ImportError:  # pragma: no cover - smolagents is a dev extra
        pass

    header = (
        f"{'workload':<16}{'CPython ms':>12}{'selfbox ms':>12}{'smolagents ms':>15}"
        f"{'vs CPython':>12}{'vs smolagents':>15}"
    )
    print(header)
    print("-" * len(header))
    ratios_cpy, ratios_smol = [], []
    for name in WORKLOADS:
        t_cpy, t_ours = own[name]
        t_smol = smol_times.get(name, float("nan"))
        ratios_cpy.append(t_ours / t_cpy)
        ratios_smol.append(t_smol / t_ours)
        print(
            f"{name:<16}{t_cpy * 1e3:>12.2f}{t_ours * 1e3:>12.2f}{t_smol * 1e3:>15.2f}"
            f"{t_ours / t_cpy:>11.1f}x{t_smol / t_ours:>14.1f}x"
        )
    geo = lambda xs: __import__("math").prod(xs) ** (1 / len(xs))  # noqa: E731
    print("-" * len(header))
    print(
        f"geometric mean: selfbox is {geo(ratios_cpy):.1f}x CPython's time, "
        f"{geo(ratios_smol):.1f}x faster than smolagents"
    )


if __name__ == "__main__":
    main()
