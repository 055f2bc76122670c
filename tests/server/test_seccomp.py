"""selfbox's seccomp profile and log driver, checked on real sandboxes: the kernel surface a
Python sandbox does not need is closed, and what data scientists run still works."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import httpx
import pytest

from sandbox_server.seccomp import ALLOWED, DENIED_ON_PURPOSE, profile
from tests.server.test_api import run

REPO_ROOT = Path(__file__).resolve().parents[2]

# x86_64 and aarch64 numbers of the syscalls the profile denies.
PROBE = """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
numbers = {"x86_64": {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                      "userfaultfd": 323, "keyctl": 250, "add_key": 248, "bpf": 321,
                      "perf_event_open": 298, "unshare": 272, "setns": 308, "ptrace": 101},
           "aarch64": {"io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                       "userfaultfd": 282, "keyctl": 219, "add_key": 217, "bpf": 280,
                       "perf_event_open": 241, "unshare": 97, "setns": 268,
                       "ptrace": 117}}[platform.machine()]
params = ctypes.create_string_buffer(120)
args = {"io_uring_setup": (8, params), "unshare": (0x10000000,), "setns": (0, 0)}
errnos = {}
for name, number in numbers.items():
    ctypes.set_errno(0)
    result = libc.syscall(number, *args.get(name, (0, 0, 0, 0, 0)))
    errnos[name] = ctypes.get_errno() if result == -1 else f"returned {result}"
errnos
"""


def test_the_profile_file_is_the_generated_one() -> None:
    shipped = json.loads((REPO_ROOT / "images" / "seccomp" / "selfbox.json").read_text())
    assert shipped == profile(), "regenerate: selfbox seccomp > images/seccomp/selfbox.json"
    assert not set(DENIED_ON_PURPOSE) & set(ALLOWED)


@pytest.mark.docker
def test_kernel_surface_is_denied(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, PROBE)
    errnos = eval(out["results"][0]["data"]["text/plain"])  # a dict of str -> int
    assert errnos == {name: 1 for name in errnos}, errnos  # EPERM, each of them


@pytest.mark.docker
def test_sandbox_containers_have_the_profile_and_no_log(client: httpx.Client,
                                                        sandbox: str) -> None:
    info = docker.from_env().api.inspect_container(f"selfbox-{sandbox}")
    options = info["HostConfig"]["SecurityOpt"]
    seccomp = [o for o in options if o.startswith("seccomp=")]
    assert len(seccomp) == 1 and json.loads(seccomp[0][len("seccomp="):]) == profile()
    assert "no-new-privileges:true" in options
    # Nothing a sandbox prints is written on the host.
    assert info["HostConfig"]["LogConfig"]["Type"] == "none"
    assert info["LogPath"] == ""
    run(client, sandbox, "print('x' * 100_000)")
    assert docker.from_env().api.inspect_container(f"selfbox-{sandbox}")["LogPath"] == ""


@pytest.mark.docker
def test_data_science_threads_subprocesses_and_pip_still_work(client: httpx.Client) -> None:
    created = client.post("/v1/sandboxes", json={"memory_mb": 1024})
    assert created.status_code == 201, created.text
    sandbox = created.json()["id"]
    try:
        numeric = run(client, sandbox, (
            "import numpy as np, pandas as pd\n"
            "import matplotlib.pyplot as plt\n"
            "a = np.random.default_rng(0).normal(size=(300, 300))\n"
            "df = pd.DataFrame({'x': range(100), 'y': [i * i for i in range(100)]})\n"
            "plt.plot(df.x, df.y)\n"
            "(round(float(np.linalg.svd(a)[1][0]), 3) > 0, int(df.y.sum()))"
        ), timeout_s=120)
        assert numeric["status"] == "ok", numeric
        main = [r for r in numeric["results"] if r["is_main_result"]]
        assert main[0]["data"]["text/plain"] == "(True, 328350)"
        assert any("image/png" in r["data"] for r in numeric["results"])

        threads = run(client, sandbox, (
            "import concurrent.futures, multiprocessing, subprocess, asyncio\n"
            "with concurrent.futures.ThreadPoolExecutor(8) as pool:\n"
            "    squares = sum(pool.map(lambda i: i * i, range(100)))\n"
            "with multiprocessing.get_context('spawn').Pool(2) as procs:\n"
            "    cubes = sum(procs.map(abs, range(-10, 10)))\n"
            "shell = subprocess.run('echo hi | tr a-z A-Z', shell=True, capture_output=True,"
            " text=True).stdout.strip()\n"
            "async def main():\n"
            "    return await asyncio.gather(*(asyncio.sleep(0.01, i) for i in range(5)))\n"
            "(squares, cubes, shell, asyncio.run(main()))"
        ), timeout_s=120)
        assert threads["status"] == "ok", threads
        assert threads["results"][0]["data"]["text/plain"] == (
            "(328350, 100, 'HI', [0, 1, 2, 3, 4])")

        # pip, offline: build a tiny wheel in the sandbox and install it for the user.
        pip = run(client, sandbox, (
            "import subprocess, sys, zipfile, base64, hashlib, importlib\n"
            "name = 'selfboxprobe-1.0-py3-none-any.whl'\n"
            "files = {'selfboxprobe.py': b'VALUE = 42\\n',\n"
            "         'selfboxprobe-1.0.dist-info/METADATA':"
            " b'Metadata-Version: 2.1\\nName: selfboxprobe\\nVersion: 1.0\\n',\n"
            "         'selfboxprobe-1.0.dist-info/WHEEL':"
            " b'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n'"
            " b'Tag: py3-none-any\\n'}\n"
            "def digest(d):\n"
            "    raw = hashlib.sha256(d).digest()\n"
            "    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode()\n"
            "record = ''.join(f'{p},sha256={digest(d)},{len(d)}\\n' for p, d in files.items())\n"
            "record += 'selfboxprobe-1.0.dist-info/RECORD,,\\n'\n"
            "with zipfile.ZipFile(name, 'w') as whl:\n"
            "    for p, d in files.items():\n"
            "        whl.writestr(p, d)\n"
            "    whl.writestr('selfboxprobe-1.0.dist-info/RECORD', record)\n"
            "done = subprocess.run([sys.executable, '-m', 'pip', 'install', '--user',"
            " '--no-index', '--disable-pip-version-check', name], capture_output=True,"
            " text=True)\n"
            "print(done.returncode, done.stderr[-500:])\n"
            "importlib.invalidate_caches()\n"
            "import selfboxprobe\n"
            "selfboxprobe.VALUE"
        ), timeout_s=120)
        assert pip["status"] == "ok", pip
        assert pip["results"][0]["data"]["text/plain"] == "42", pip["stdout"]
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")
