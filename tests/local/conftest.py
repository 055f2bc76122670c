"""Fixtures of the local-executor tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from executors import create_executor
from executors.base import Executor


@pytest.fixture
def ex() -> Iterator[Executor]:
    with create_executor("local", timeout_s=5.0) as executor:
        yield executor
