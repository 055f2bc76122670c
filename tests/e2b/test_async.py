"""AsyncSandbox: the same wire, driven from asyncio."""

from __future__ import annotations

import asyncio

import pytest
from e2b import CommandExitException, FileNotFoundException

from tests.conftest import LiveServer

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_async_sandbox_basics(e2b_env: LiveServer) -> None:
    from e2b_code_interpreter import AsyncSandbox

    async def scenario() -> None:
        sandbox = await AsyncSandbox.create(metadata={"flavor": "async"})
        try:
            await sandbox.run_code("x = 20")
            lines: list[str] = []

            async def on_stdout(message: object) -> None:
                lines.append(message.line)  # type: ignore[attr-defined]

            execution = await sandbox.run_code("print('hi')\nx + 22", on_stdout=on_stdout)
            assert execution.text == "42" and lines == ["hi\n"]

            await sandbox.files.write("/tmp/async.txt", "async data")
            assert await sandbox.files.read("/tmp/async.txt") == "async data"
            assert [e.name for e in await sandbox.files.list("/tmp") if e.name == "async.txt"]
            with pytest.raises(FileNotFoundException):
                await sandbox.files.read("/tmp/missing")

            result = await sandbox.commands.run("echo async; echo e >&2")
            assert (result.stdout, result.stderr) == ("async\n", "e\n")
            with pytest.raises(CommandExitException):
                await sandbox.commands.run("exit 4")

            # Two sandbox calls at once over the same connection pool.
            both = await asyncio.gather(sandbox.commands.run("sleep 0.3; echo a"),
                                        sandbox.files.read("/tmp/async.txt"))
            assert both[0].stdout == "a\n" and both[1] == "async data"

            info = await sandbox.get_info()
            assert info.metadata == {"flavor": "async"}
            assert await sandbox.is_running() is True
        finally:
            assert await sandbox.kill() is True
        assert await sandbox.is_running() is False

    asyncio.run(scenario())


def test_async_watch_dir_stream(e2b_env: LiveServer) -> None:
    from e2b import FilesystemEventType
    from e2b_code_interpreter import AsyncSandbox

    async def scenario() -> None:
        sandbox = await AsyncSandbox.create()
        try:
            events: list[tuple[str, FilesystemEventType]] = []
            handle = await sandbox.files.watch_dir("/home/user", events.append, timeout=30)
            await sandbox.files.write("/home/user/watched.txt", "x")
            for _ in range(50):
                if ("watched.txt", FilesystemEventType.CREATE) in [
                        (e.name, e.type) for e in events]:
                    break
                await asyncio.sleep(0.1)
            await handle.stop()
            assert ("watched.txt", FilesystemEventType.CREATE) in [
                (e.name, e.type) for e in events]
        finally:
            await sandbox.kill()

    asyncio.run(scenario())
