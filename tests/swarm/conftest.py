"""The dev swarm (scripts/swarm-dev.sh), up once for the tests of this directory and torn down
after them, even on failure; the teardown fails if anything of it is left."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, RUNTIME_IMAGE, _docker_problem
from tests.swarm.cluster import (
    GVISOR_WORKERS,
    STATE_DIR,
    WORKERS,
    manager,
    run_script,
    swarm_active,
)


def _problem() -> str | None:
    if os.geteuid() != 0:
        return "the dev swarm needs root (network namespaces, extra dockerds)"
    problem = _docker_problem()
    if problem is not None:
        return problem
    if swarm_active(manager()):
        return ("the host's Docker engine is already in a swarm (a dev cluster? run "
                "scripts/swarm-dev.sh down); this test makes and removes its own")
    return None


def _leftovers() -> list[str]:
    """What a torn-down dev cluster must not leave behind."""
    found = []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [line.split(":")[1].strip() for line in links.splitlines() if ": sbxsw-" in line]
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [p.name for p in netns.iterdir() if p.name.startswith("sbxsw-")]
    if STATE_DIR.exists():
        found.append(str(STATE_DIR))
    if swarm_active(manager()):
        found.append("the host engine's swarm")
    return found


@pytest.fixture(scope="package")
def cluster() -> Iterator[None]:
    problem = _problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI needs the swarm tests to run: {problem}")
        pytest.skip(problem)
    try:
        gvisor = " ".join(str(WORKERS.index(n) + 1) for n in GVISOR_WORKERS)
        run_script("up", timeout_s=150, SBX_SWARM_IMAGES=RUNTIME_IMAGE, SBX_SWARM_GVISOR=gvisor)
        yield
    finally:
        try:
            run_script("down", timeout_s=120)
        finally:
            leftovers = _leftovers()
            assert not leftovers, f"swarm-dev.sh down left {leftovers}"


