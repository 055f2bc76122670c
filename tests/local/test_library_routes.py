# ruff: noqa: E501 - attack payloads are kept verbatim on one line
"""numpy / pandas / matplotlib must not give back what the policy takes away: no file reads or
writes by path, no pickle, no dunders through pandas' expression engine, no backend imports.
Each attack must end in an error *and* leave no trace (marker never shown, file never made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executors import create_executor
from executors.models import Execution

pytest.importorskip("numpy")
pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

IMPORTS = [
    "numpy", "numpy.linalg", "numpy.random", "pandas", "matplotlib", "matplotlib.pyplot",
    "matplotlib.style", "io",
]  # fmt: skip
MARK = "SECRET-MARKER-7f3a"
PRE = "import numpy as np\nimport pandas as pd\nimport matplotlib\nimport matplotlib.pyplot as plt\nimport io\n"


def run(code: str, isolation: str = "none") -> Execution:
    with create_executor(
        "local", additional_authorized_imports=IMPORTS, timeout_s=30.0, isolation=isolation
    ) as ex:  # type: ignore[arg-type]
        r = ex.run(PRE + code)
    # A refusal must come from the policy, not from a library the child could not import.
    assert r.error is None or r.error.name != "ModuleNotFoundError", r.error
    return r


def shown(r: Execution) -> str:
    return (r.stdout or "") + (r.text or "") + repr(r.results)


READS = [
    "np.fromfile(P, dtype='uint8').tobytes()",
    "np.loadtxt(P, dtype=str)",
    "np.genfromtxt(P, dtype=str)",
    "np.load(P)",
    "np.memmap(P, dtype='uint8', mode='r').tobytes()",
    "np.fromregex(P, '(.*)', [('a', 'U99')])",
    "pd.read_csv(P, header=None)",
    "pd.read_table(P, header=None)",
    "pd.read_fwf(P, header=None)",
    "pd.read_json(P)",
    "pd.read_html(P)",
    "pd.read_xml(P)",
    "pd.read_pickle(P)",
    "pd.read_excel(P)",
    "pd.read_parquet(P)",
    "pd.read_feather(P)",
    "pd.read_stata(P)",
    "pd.read_sas(P)",
    "pd.read_hdf(P)",
    "pd.HDFStore(P)",
    "pd.ExcelFile(P)",
    "plt.imread(P)",
    "plt.style.use(P)",
    "matplotlib.rc_file(P)",
    "pd.Series([P]).apply('fromfile')",
    "getattr(pd, 'read_csv')(P, header=None)",
    "pd.DataFrame({'a': [1]}).query('@pd.read_csv(@P)', engine='python')",
    "list(map(pd.read_csv, [P]))",
]


def _cases(exprs: list[str], in_child: list[str]) -> list[tuple[str, str]]:
    """Every route in-process; a sample of them in a child process too (it is slower)."""
    return [(e, "none") for e in exprs] + [(e, "process") for e in in_child]


@pytest.mark.parametrize(("expr", "isolation"),
                         _cases(READS, READS[:1] + READS[6:7] + READS[-3:]))
def test_no_file_reads(tmp_path: Path, expr: str, isolation: str) -> None:
    p = tmp_path / "secret.txt"
    p.write_text(f"{MARK}\n{MARK}\n")
    r = run(f"P = {str(p)!r}\nprint({expr})", isolation)
    assert MARK not in shown(r)
    assert r.error is not None


WRITES = [
    "np.zeros(3).tofile(P)",
    "np.ndarray.tofile(np.zeros(3), P)",
    "np.zeros(3).dump(P)",
    "np.save(P, np.zeros(3))",
    "np.savez(P, a=np.zeros(3))",
    "np.savetxt(P, np.zeros(3))",
    "np.memmap(P, dtype='uint8', mode='w+', shape=(3,))",
    "pd.DataFrame({'a': [1]}).to_csv(P)",
    "pd.DataFrame({'a': [1]}).to_json(P)",
    "pd.DataFrame({'a': [1]}).to_pickle(P)",
    "pd.DataFrame({'a': [1]}).to_html(P)",
    "pd.DataFrame({'a': [1]}).to_string(P)",
    "pd.DataFrame({'a': [1]}).to_markdown(P)",
    "pd.DataFrame({'a': [1]}).to_latex(P)",
    "pd.DataFrame({'a': [1]}).to_xml(P)",
    "pd.DataFrame({'a': [1]}).to_excel(P)",
    "pd.DataFrame({'a': [1]}).to_parquet(P)",
    "pd.DataFrame({'a': [1]}).to_stata(P)",
    "pd.DataFrame({'a': [1]}).to_hdf(P, key='x')",
    "pd.DataFrame({'a': [1]}).to_csv(path_or_buf=P)",
    "pd.Series([1]).to_csv(P)",
    "pd.DataFrame({'a': [1]}).style.to_html(P)",
    "pd.DataFrame.to_csv(pd.DataFrame({'a': [1]}), P)",
    "pd.DataFrame({'a': [1]}).agg('to_csv', P)",
    "pd.ExcelWriter(P)",
    "plt.plot([1, 2]); plt.savefig(P)",
    "plt.figure().savefig(P)",
    "plt.figure().canvas.print_figure(P)",
    "plt.imsave(P, np.zeros((2, 2)))",
    "plt.gcf().savefig(fname=P)",
]


@pytest.mark.parametrize(("expr", "isolation"),
                         _cases(WRITES, WRITES[:1] + WRITES[7:8] + WRITES[-5:-4]))
def test_no_file_writes(tmp_path: Path, expr: str, isolation: str) -> None:
    p = tmp_path / "out.bin"
    r = run(f"P = {str(p)!r}\n{expr}", isolation)
    assert r.error is not None
    assert not list(tmp_path.iterdir()), "a file was created"


PICKLE_PAYLOAD = b"cbuiltins\nprint\n(S'PICKLE-RAN'\ntR."


@pytest.mark.parametrize(
    "code",
    [
        "P = {p!r}\nnp.frombuffer({b!r}, dtype='uint8').tofile(P)\npd.read_pickle(P)",
        "pd.read_pickle(io.BytesIO({b!r}))",
        "np.load(io.BytesIO({b!r}), allow_pickle=True)",
        "b = io.BytesIO()\nnp.save(b, np.array([print], dtype=object))\nb.seek(0)\nnp.load(b, allow_pickle=True)",
        "np.zeros(2).dumps()",
        "pd.DataFrame({{'a': [1]}}).to_pickle(io.BytesIO())",
    ],
)
def test_no_pickle(tmp_path: Path, code: str, capfd: pytest.CaptureFixture[str]) -> None:
    r = run(code.format(p=str(tmp_path / "x.pkl"), b=PICKLE_PAYLOAD))
    out = capfd.readouterr()
    assert r.error is not None
    assert "PICKLE-RAN" not in shown(r) + out.out + out.err


EVALS = [
    "pd.eval('(1).__class__')",
    "pd.eval('x.__class__', local_dict={'x': 1})",
    "pd.eval('x.__class__', resolvers=[{'x': 1}])",
    "pd.DataFrame({'a': [1]}).eval('a.__class__')",
    "pd.DataFrame({'a': [1]}).query('a.__class__ == 1', engine='python')",
    "pd.DataFrame({'a': [1]}).eval('`a`.__class__')",
    "fmt = '{0.__class__}'\npd.eval('@fmt.format(1)')",
    "df = pd.DataFrame({'a': [1]})\ndf.query('@df.to_pickle(\"/tmp/sb-x\")', engine='python')",
    "pd.eval('a = 1', target=plt.rcParams)",
    "pd.eval('1', level=3)",
    "pd.DataFrame({'a': [1]}).agg('__class__')",
    "pd.Series([1]).apply('__class__')",
]


@pytest.mark.parametrize("code", EVALS)
def test_expression_engine(code: str) -> None:
    r = run(code + "\n")
    assert r.error is not None
    assert "<class" not in shown(r)


SETTINGS = [
    "plt.rcParams['figure.hooks'] = ['os:system']",
    "plt.rcParams['backend'] = 'module://this'",
    "plt.rcParams.update({'animation.ffmpeg_path': '/bin/sh'})",
    "matplotlib.rcParams['text.usetex'] = True",
    "plt.rc('savefig', directory='/tmp')",
    "matplotlib.rcParamsDefault['figure.hooks'] = ['os:system']",
    "matplotlib.use('module://this')",
    "plt.switch_backend('module://this')",
    "plt.style.use({'figure.hooks': ['os:system']})",
    "plt.rc_context({'backend': 'module://this'})",
    "pd.set_option('plotting.backend', 'this')",
    "pd.set_option('backend', 'this')",
    "pd.DataFrame({'a': [1]}).plot(backend='this')",
    "pd.DataFrame({'a': [1]}).plot.line(backend='this')",
]


@pytest.mark.parametrize("code", SETTINGS)
def test_settings_that_import_or_run(code: str) -> None:
    r = run(code)
    assert r.error is not None


LEGIT = [
    (
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4, 5, 6]})\nprint(df.to_csv(index=False))",
        "a,b\n1,4",
    ),
    (
        "df = pd.DataFrame({'a': [1]})\nprint(df.to_json(), df.to_string(), df.to_dict())",
        '{"a":{"0":1}}',
    ),
    ("df = pd.DataFrame({'a': [1]})\nprint(df.to_html()[:6], df.to_latex()[:6])", "<table"),
    ("df = pd.read_csv(io.StringIO('a,b\\n1,2\\n3,4'))\nprint(df.b.sum())", "6"),
    ("df = pd.read_json(io.StringIO('{\"a\": [1, 2]}'))\nprint(df.a.sum())", "3"),
    (
        "df = pd.DataFrame({'age': [20, 40], 'city': ['Paris', 'Rome']})\nprint(len(df.query('age > 30 and city == \"Rome\"')))",
        "1",
    ),
    (
        "df = pd.DataFrame({'a': [1, 5]})\nthreshold = 2\nprint(len(df.query('a > @threshold')))",
        "1",
    ),
    (
        "df = pd.DataFrame({'a': [1, 5], 'b': [1, 1]})\nprint(df.eval('c = a + b').c.tolist())",
        "[2, 6]",
    ),
    ("print(pd.eval('1 + 2'))", "3"),
    (
        "df = pd.DataFrame({'k': ['x', 'y', 'x'], 'v': [1, 2, 3]})\nprint(df.groupby('k').v.agg('sum').to_dict())",
        "{'x': 4, 'y': 2}",
    ),
    (
        "df = pd.DataFrame({'k': ['x', 'y'], 'v': [1, 2]})\nprint(df.merge(df, on='k').shape, df.pivot_table(index='k', values='v').shape)",
        "(2, 3) (2, 1)",
    ),
    (
        "df = pd.DataFrame({'v': [1.0, 2.0]})\nprint(df.describe().loc['mean', 'v'], df.apply(np.sqrt).v.iloc[1] > 1)",
        "1.5 True",
    ),
    (
        "s = pd.to_datetime(pd.Series(['2024-01-02']))\nprint(s.dt.year[0], pd.Timestamp('2020-01-01', tz='Europe/Paris').year)",
        "2024 2020",
    ),
    (
        "rng = np.random.default_rng(0)\nprint(rng.normal(size=3).shape, np.linalg.norm(np.ones(4)))",
        "(3,) 2.0",
    ),
    (
        "b = io.BytesIO()\nnp.save(b, np.arange(3))\nb.seek(0)\nprint(np.load(b).tolist())",
        "[0, 1, 2]",
    ),
    ("print(np.loadtxt(io.StringIO('1 2\\n3 4')).sum())", "10.0"),
    (
        "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nb = io.BytesIO()\nfig.savefig(b, format='png')\nprint(b.getvalue()[:4])",
        "PNG",
    ),
    ("ax = pd.DataFrame({'a': [1, 2]}).plot()\nprint(type(ax).__name__)", "Axes"),
    (
        "plt.rcParams['figure.figsize'] = (4, 3)\nplt.rcParams.update({'font.size': 9})\nprint(plt.rcParams['font.size'])\nplt.plot([1])\nplt.show()",
        "9.0",
    ),
    (
        "with plt.style.context('ggplot'):\n    plt.plot([1])\nwith plt.rc_context({'lines.linewidth': 2}):\n    pass\nprint('ok')",
        "ok",
    ),
    (
        "pd.set_option('display.max_rows', 5)\nprint(pd.get_option('display.max_rows'))\npd.reset_option('display.max_rows')",
        "5",
    ),
]


@pytest.mark.parametrize(("code", "expected"), LEGIT)
def test_legitimate_use(code: str, expected: str) -> None:
    r = run(code)
    assert r.error is None, r.error
    assert expected in r.stdout


def test_legitimate_use_in_a_child_process() -> None:
    r = run(
        "df = pd.read_csv(io.StringIO('a\\n1\\n2'))\nprint(df.a.sum(), df.to_csv(index=False).split())",
        "process",
    )
    assert r.error is None, r.error
    assert "3 ['a', '1', '2']" in r.stdout


@pytest.mark.parametrize("isolation", ["none", "process"])
def test_authorized_libraries_work_in_both_isolation_modes(isolation: str) -> None:
    r = run("df = pd.DataFrame({'a': [1, 2, 3]})\nprint(df.a.sum())\n"
            "plt.plot(df.a)\nfloat(np.mean(df.a))", isolation)
    assert r.error is None, r.error
    assert r.stdout == "6\n" and r.text == "2.0"
