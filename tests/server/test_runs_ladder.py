"""How a run is stopped (interrupt, grace, fence, kill), with the test playing the runner over a
real channel: a ``done`` delayed past the grace by the path back (a loaded host) keeps the
sandbox; code that does not stop, or a runner that does not answer, is killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sandbox_server.gateway import RunnerGateway
from sandbox_server.runner.protocol import Msg, Op
from sandbox_server.runs import Lifecycle, Runs
from sandbox_server.sandbox import Sandbox
from sandbox_server.settings import Settings
from sandbox_server.tasks import BackgroundTasks
from tests.conftest import inproc_manager
from tests.server.fake_runner import FakeRunner, setup_channel

GRACE_S = 0.3
Runner = Callable[[FakeRunner], Awaitable[list[str]]]


async def _scenario(play: Runner, *, abandon: bool = False
                    ) -> tuple[list[str], list[tuple[str, str]], dict[str, Any] | None, bool]:
    """Run ``1`` with a 0.2 s timeout against ``play``; return the ops the runner saw, the
    sandbox ends asked for, the execution (None when abandoned), and whether the sandbox's
    lock was free again at the end."""
    tasks = BackgroundTasks()
    sandbox, runner, channel = await setup_channel(tasks)
    ended: list[tuple[str, str]] = []

    async def end(box: Sandbox, state: str, reason: str) -> None:
        ended.append((state, reason))

    settings = Settings(api_keys=["k"], interrupt_grace_s=GRACE_S)
    runs = Runs(settings, RunnerGateway(), tasks,
                Lifecycle(end=end, notify=lambda *args, **kwargs: None))
    playing = asyncio.create_task(play(runner))
    events: AsyncIterator[dict[str, Any]] = runs.execute(sandbox, "1", timeout_s=0.2)
    execution = None
    if abandon:
        assert (await anext(events))["type"] == "start"
        await events.aclose()  # the client walked away mid-run
    else:
        async for event in events:
            if event["type"] == "execution":
                execution = event["execution"]
    ops = await asyncio.wait_for(playing, 10)
    async with asyncio.timeout(10):
        async with sandbox.lock:  # an abandoned run frees the sandbox when it is settled
            pass
    free = not sandbox.lock.locked()
    await channel.close()
    await tasks.cancel_all()
    return ops, ended, execution, free


async def _until(runner: FakeRunner, op: Op, seen: list[str]) -> dict[str, Any]:
    while True:
        message = await runner.op()
        seen.append(message["op"])
        if message["op"] == op:
            return message


def _lagging(answer_fence: bool, send_done: bool) -> Runner:
    """A runner whose interrupted code stops (``send_done``) but whose answers reach the
    server only behind the fence's, as through a lagging path."""
    async def play(runner: FakeRunner) -> list[str]:
        seen: list[str] = []
        key = (await _until(runner, Op.EXECUTE, seen))["id"]
        await runner.send({"type": Msg.FENCE, "id": key})  # forged before the grace: ignored
        await _until(runner, Op.INTERRUPT, seen)
        await _until(runner, Op.FENCE, seen)
        if send_done:
            await runner.send({"type": Msg.ERROR, "id": key, "name": "KeyboardInterrupt",
                               "value": "", "traceback": ""})
            await runner.send({"type": Msg.DONE, "id": key, "status": "error",
                               "interrupted": True})
        if answer_fence:
            await runner.send({"type": Msg.FENCE, "id": key})
        return seen
    return play


def test_code_that_stopped_is_not_killed_for_a_slow_path_back() -> None:
    ops, ended, execution, free = asyncio.run(_scenario(_lagging(True, True)))
    assert ops == ["execute", "interrupt", "fence"]
    assert ended == []
    assert execution is not None and execution["status"] == "timeout"
    assert "state are kept" in execution["error"]["value"]
    assert free


def test_code_that_does_not_stop_is_killed_once_the_fence_comes_back() -> None:
    ops, ended, execution, _ = asyncio.run(_scenario(_lagging(True, False)))
    assert ops == ["execute", "interrupt", "fence"]
    assert ended == [("dead", "it was killed after an execution timeout")]
    assert execution is not None and execution["status"] == "timeout"
    assert "SELFBOX_INTERRUPT_GRACE_S" in execution["error"]["value"]


def test_a_runner_that_answers_nothing_is_killed_after_two_graces() -> None:
    async def timed() -> tuple[float, list[tuple[str, str]]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, ended, _, _ = await _scenario(_lagging(False, False))
        return loop.time() - started, ended

    elapsed, ended = asyncio.run(timed())
    assert ended == [("dead", "it was killed after an execution timeout")]
    assert elapsed >= 0.2 + 2 * GRACE_S


def test_an_abandoned_run_is_settled_the_same_way() -> None:
    ops, ended, _, free = asyncio.run(_scenario(_lagging(True, True), abandon=True))
    assert ops == ["execute", "interrupt", "fence"] and ended == [] and free
    ops, ended, _, free = asyncio.run(_scenario(_lagging(True, False), abandon=True))
    assert ended == [("dead", "it was killed: abandoned code did not stop after interrupt")]
    assert free


def test_a_real_runner_answers_the_fence_behind_what_it_wrote(docker_ready: None) -> None:
    """The runner's side, in a real sandbox: the answer comes under the run's id while the
    code runs (from the control thread), and after the ``done`` of code that has ended."""
    import secrets

    from executors.models import SandboxSpec
    from sandbox_server import SandboxManager

    async def kinds_until_fence(manager: SandboxManager, box: Sandbox, code: str,
                                react: Callable[[str, list[str]], Awaitable[None]],
                                ) -> list[str]:
        loop = asyncio.get_running_loop()
        key = secrets.token_hex(8)
        kinds: list[str] = []
        async with manager.gateway.follow(box, Op.EXECUTE, key, loop.time() + 20,
                                          terminal=lambda m: m.get("type") == Msg.FENCE,
                                          code=code) as stream:
            async for message in stream:
                kinds.append(str(message.get("type")))
                await react(key, kinds)
        return kinds

    async def scenario() -> None:
        async with inproc_manager("fence") as manager:
            box = await manager.create("owner", SandboxSpec())

            async def fence(key: str, kinds: list[str]) -> None:
                if kinds == ["stream"]:
                    await manager.gateway.send(box, Op.FENCE, id=key)

            # Still running (asleep): the answer comes; the run goes on (and ends by itself
            # before the next one starts).
            kinds = await kinds_until_fence(manager, box, "print('a', flush=True)\n"
                                            "import time\ntime.sleep(2)", fence)
            assert kinds == ["stream", "fence"]

            async def interrupt_then_fence(key: str, kinds: list[str]) -> None:
                if kinds == ["stream"]:
                    await manager.gateway.send(box, Op.INTERRUPT, id=key)
                elif kinds[-1] == "done":  # the code has stopped and said so
                    await manager.gateway.send(box, Op.FENCE, id=key)

            kinds = await kinds_until_fence(manager, box, "print('b', flush=True)\n"
                                            "import time\ntime.sleep(30)", interrupt_then_fence)
            assert kinds == ["stream", "error", "done", "fence"]

    asyncio.run(scenario())
