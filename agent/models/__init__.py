"""Models: anything with ``generate(messages) -> str``.

:class:`OpenAICompatibleModel` talks to any ``/v1/chat/completions`` server (OpenAI, vLLM,
Ollama, llama.cpp's server); :class:`ScriptedModel` replays canned replies for tests and demos.
"""

from .base import ChatMessage, Model
from .openai import OpenAICompatibleModel, OpenAIModel
from .scripted import ScriptedModel

__all__ = ["ChatMessage", "Model", "OpenAICompatibleModel", "OpenAIModel", "ScriptedModel"]
