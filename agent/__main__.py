"""``python -m agent``: run a task with a CodeAgent against an OpenAI-compatible server.

    python -m agent --model qwen2.5-coder --base-url http://localhost:11434/v1 \\
        --import math "What is the 20th Fibonacci number?"

Steps are printed to stderr as they happen; the answer goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from executors.exceptions import SandboxError
from executors.factory import EXECUTOR_TYPES

from .agent import CodeAgent, StepCallback
from .exceptions import AgentMaxStepsError
from .models.openai import OpenAICompatibleModel
from .steps import ActionStep

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent",
        description="Run a task with a CodeAgent against an OpenAI-compatible server.",
    )
    parser.add_argument("task", help="what the agent should do")
    parser.add_argument(
        "--model",
        default=os.environ.get("SELFBOX_AGENT_MODEL"),
        help="model name (default: $SELFBOX_AGENT_MODEL)",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        help="API root ending in /v1 (default: $OPENAI_BASE_URL or OpenAI)",
    )
    parser.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY)")
    parser.add_argument("--executor", default="local", choices=EXECUTOR_TYPES)
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="allow importing MODULE (local executor)",
    )
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--quiet", action="store_true", help="print only the answer")
    return parser


def _printer(stream: TextIO) -> StepCallback:
    def show(step: ActionStep) -> None:
        print(f"--- step {step.step_number} ({step.duration_s:.1f}s) ---", file=stream)
        print(step.code if step.code is not None else step.model_output, file=stream)
        print(f"> {step.observation}".replace("\n", "\n> "), file=stream)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.model:
        print("error: --model is required (or set SELFBOX_AGENT_MODEL)", file=sys.stderr)
        return 2
    model = OpenAICompatibleModel(
        args.model, base_url=args.base_url, api_key=args.api_key, temperature=args.temperature
    )
    callbacks = [] if args.quiet else [_printer(sys.stderr)]
    try:
        with (
            model,
            CodeAgent(
                [],
                model,
                executor_type=args.executor,
                additional_authorized_imports=args.imports,
                max_steps=args.max_steps,
                step_callbacks=callbacks,
            ) as agent,
        ):
            answer = agent.run(args.task)
    except AgentMaxStepsError:
        print(f"error: no answer after {args.max_steps} steps", file=sys.stderr)
        return 1
    except SandboxError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
