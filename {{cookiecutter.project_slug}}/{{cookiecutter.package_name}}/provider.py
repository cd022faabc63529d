"""The model provider: jupyter-ai-vision's provider (any LiteLLM model, images included)
under its own id and name, with an example override of inline completions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, ClassVar

from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider

if TYPE_CHECKING:
    from jupyter_ai_magics.models.completion import (
        InlineCompletionReply,
        InlineCompletionRequest,
        InlineCompletionStreamChunk,
    )


class {{ cookiecutter.__class_prefix }}Provider(VisionProvider):
    """Listed under ``name`` in Jupyter AI's settings; its models are ``<id>:<LiteLLM model>``."""

    id: ClassVar[str] = {{ cookiecutter.provider_id | jsonify }}
    name: ClassVar[str] = {{ cookiecutter.provider_name | jsonify }}

    # Inline completions: jupyter-ai-vision reads the live notebook around the cursor (cells,
    # outputs, the latest figure above it). The override below keeps all of that and adds a
    # house rule on top of what the model suggests. Delete both methods to keep the default.
    async def generate_inline_completions(
        self, request: InlineCompletionRequest
    ) -> InlineCompletionReply:
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        reply = await completion.generate(self, request, server_settings=self.server_settings)
        for item in reply.list.items:
            item.insertText = house_style(item.insertText)
        return reply

    async def stream_inline_completions(
        self, request: InlineCompletionRequest
    ) -> AsyncIterator[InlineCompletionReply | InlineCompletionStreamChunk]:
        from jupyter_ai_magics.models.completion import InlineCompletionStreamChunk
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        messages = completion.stream(self, request, server_settings=self.server_settings)
        # aclosing: a superseded or cancelled request closes the model stream at once
        async with contextlib.aclosing(messages):
            async for message in messages:
                if isinstance(message, InlineCompletionStreamChunk):
                    message.response.insertText = house_style(message.response.insertText)
                yield message


def house_style(suggestion: str) -> str:
    """The example house rule: no trailing whitespace on any line of a suggestion."""
    return "\n".join(line.rstrip() for line in suggestion.split("\n"))
