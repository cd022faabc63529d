"""The ``vision`` model provider for Jupyter AI 2.x: any LiteLLM model, with images.

``%%ai vision:openai/gpt-4o``, ``%%ai vision:ollama/llava``, or "Vision (LiteLLM)" in the
chat settings. This class is the host adapter only: its settings fields, and hooks that
jupyter-ai 2.x calls, each delegating to where the work lives:

- the chat model itself (litellm per call, retries, closing): ``llm/chat_model.py``;
- parameter checks: ``llm/params.py``; "does it take images": ``llm/capabilities.py``;
  the model list in the help text: ``llm/model_list.py``;
- images the model cannot take, and the notes saying so: ``image_fallback.py``;
- ``%%ai``'s ``@name`` expansion (runs in the kernel): ``kernel/extension.py``;
- inline completion: ``completion.py``.

The Jupyter server imports every provider at start-up, so this module imports nothing
heavy: litellm is loaded on first use.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from jupyter_ai_magics import BaseProvider
from jupyter_ai_magics.base_provider import IntegerField, TextField
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import PromptTemplate

from jupyter_ai_vision.errors import ModelParameterError as ModelParameterError
from jupyter_ai_vision.hosts.jupyter_ai_2 import image_fallback
from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import NOT_SENT
from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import NOTES_KEY as NOTES_KEY
from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import REFUSED as REFUSED
from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import reply_text as reply_text
from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import strip_images as strip_images
from jupyter_ai_vision.llm import capabilities
from jupyter_ai_vision.llm.capabilities import check_vision as check_vision
from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel
from jupyter_ai_vision.llm.model_list import LISTED_PROVIDERS as LISTED_PROVIDERS
from jupyter_ai_vision.llm.model_list import MODELS_FILE as MODELS_FILE
from jupyter_ai_vision.llm.model_list import help_text, vision_models
from jupyter_ai_vision.llm.model_list import snapshot_vision_models as snapshot_vision_models
from jupyter_ai_vision.llm.params import check_parameters as check_parameters

# The ``X as X`` imports are re-exports: names completion.py (notes) and 0.1's users of
# ``jupyter_ai_vision.provider`` import from here (until 0.3).

#: ``%%ai -f FORMAT``: the instruction added after the question.
_FORMAT_INSTRUCTIONS = {
    "code": (
        "Produce output as source code only, with no text or explanation before or after it. "
        "Use the kernel's variable names as written in the question."
    ),
    "html": "Produce output in HTML format only, with no markup before or afterward.",
    "markdown": "Produce output in markdown format only.",
    "md": "Produce output in markdown format only.",
    "math": "Produce output in LaTeX format only, with $$ at the beginning and end.",
    "json": "Produce output in JSON format only, with nothing before or after it.",
    "text": "",
}


class VisionProvider(BaseProvider, LiteLLMChatModel):  # type: ignore[misc]
    """Jupyter AI provider ``vision``: LiteLLM chat models that see notebook figures."""

    id: ClassVar[str] = "vision"
    name: ClassVar[str] = "Vision (LiteLLM)"  # type: ignore[misc]
    models: ClassVar[list[str]] = ["*"]
    registry: ClassVar[bool] = True
    help: ClassVar[str | None] = help_text(vision_models())
    model_id_key: ClassVar[str] = "model"
    model_id_label: ClassVar[str] = "Model (LiteLLM name, e.g. openai/gpt-4o or ollama/llava)"
    pypi_package_deps: ClassVar[list[str]] = ["litellm"]
    auth_strategy: ClassVar[Any] = None  # keys: provider env vars, or the api_key field
    fields: ClassVar[list[Any]] = [
        TextField(
            key="api_base",
            label="API base URL (optional: LiteLLM Proxy, Ollama, vLLM)",
            format="text",
        ),
        TextField(
            key="api_key", label="API key (optional; else the provider's env var)", format="text"
        ),
        TextField(
            key="supports_vision",
            label="Model takes images: true / false (optional override)",
            format="text",
        ),
        IntegerField(key="timeout", label="Timeout in seconds (optional, default 120)"),
        TextField(
            key="completion_images",
            label="Inline completion: send the latest figure, true / false (default true)",
            format="text",
        ),
        IntegerField(
            key="completion_context_cells",
            label="Inline completion: cells of context above and below (default 5)",
        ),
        IntegerField(
            key="completion_max_images",
            label="Inline completion: figures per request, 0-4 (default 1)",
        ),
        IntegerField(
            key="completion_image_tokens",
            label="Inline completion: image token budget (default 1500)",
        ),
        TextField(
            key="caption_model",
            label="Caption model for a text-only model (optional; a vision model, e.g. ollama/llava)",
            format="text",
        ),
        TextField(
            key="caption_api_base",
            label="Caption model's API base URL (optional)",
            format="text",
        ),
    ]

    #: Override LiteLLM's vision flag (None: ask LiteLLM; unknown models get images).
    supports_vision: bool | None = None
    #: Expand ``@name`` references from the kernel's namespace (None: when in a kernel).
    expand_references: bool | None = None
    #: Inline completion settings (None: defaults in jupyter_ai_vision.hosts.jupyter_ai_2.completion).
    completion_images: bool | None = None
    completion_context_cells: int | None = None
    completion_max_images: int | None = None
    completion_image_tokens: int | None = None
    #: A vision model that describes figures for a text-only chat model (None: stubs instead;
    #: read by /see, never sent to the chat API). Its key: the provider's env var.
    caption_model: str | None = None
    caption_api_base: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        kwargs = check_parameters(kwargs)
        known = set(type(self).model_fields) | {"model_id"}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        if extra:
            kwargs["model_kwargs"] = {**kwargs.get("model_kwargs", {}), **extra}
        super().__init__(**kwargs)

    # ----- capability (llm/capabilities.py) -----------------------------------------------
    def supports_images(self) -> bool | None:
        """Whether the model takes images (True / False / None = unknown, images are sent).
        Safe on the event loop: never runs LiteLLM's blocking check for ``ollama/*``."""
        return capabilities.supports_images(self.model, self.api_base, self.supports_vision)

    def _supports_images_blocking(self) -> bool | None:
        """The full check, for the synchronous paths (they block their caller anyway)."""
        return capabilities.supports_images(
            self.model, self.api_base, self.supports_vision, may_block=True
        )

    async def asupports_images(self) -> bool | None:
        """:meth:`supports_images` with LiteLLM's full check run in a worker thread."""
        return await capabilities.asupports_images(self.model, self.api_base, self.supports_vision)

    # ----- prompt templates ------------------------------------------------------------
    def get_prompt_template(self, format: str) -> PromptTemplate:
        """%%ai templates: the question, then the output format's instruction (literal text:
        the magic formats the result with the user's namespace afterwards)."""
        if format not in _FORMAT_INSTRUCTIONS:
            return super().get_prompt_template(format)
        lines = ["{prompt}"]
        if _FORMAT_INSTRUCTIONS[format]:
            lines.append(_FORMAT_INSTRUCTIONS[format])
        template = "\n\n".join(lines)
        return PromptTemplate.from_template(template)

    # ----- message preparation ---------------------------------------------------------
    def _in_kernel(self) -> bool:
        if self.expand_references is not None:
            return self.expand_references
        ipython = sys.modules.get("IPython")
        return bool(ipython and ipython.get_ipython() is not None)

    def _prepare(
        self, messages: list[BaseMessage], supports: bool | None
    ) -> tuple[list[BaseMessage], list[str]]:
        """``%%ai``'s ``@name`` expansion (in a kernel), then stubs for a text-only model;
        returns the messages and the notes for the reply."""
        if self._in_kernel():
            # kernel code, imported when used: the server imports this module at start-up.
            # Its notes (missing / rejected names) are printed for the user in the cell.
            from jupyter_ai_vision.kernel import extension

            messages, _ = extension.expand_references(self, messages, supports)
        if supports is False and image_fallback.has_images(messages):
            return strip_images(messages), [NOT_SENT.format(model=self.model)]
        return messages, []

    # ----- LangChain hooks: the chat model's, with image fallback and notes ----------------
    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        messages, notes = self._prepare(messages, self._supports_images_blocking())
        generate = super()._generate
        run = image_fallback.once(lambda m: generate(m, stop, run_manager, **kwargs))
        (result,) = image_fallback.fallback(self.model, messages, notes, run)
        return image_fallback.with_notes(result, notes)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        messages, notes = self._prepare(messages, await self.asupports_images())
        agenerate = super()._agenerate
        run = image_fallback.aonce(lambda m: agenerate(m, stop, run_manager, **kwargs))
        results = [r async for r in image_fallback.afallback(self.model, messages, notes, run)]
        return image_fallback.with_notes(results[0], notes)

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        messages, notes = self._prepare(messages, self._supports_images_blocking())
        stream = super()._stream
        run: Any = lambda m: stream(m, stop, run_manager, **kwargs)  # noqa: E731
        yield from image_fallback.fallback(self.model, messages, notes, run)
        if notes:
            yield image_fallback.notes_chunk(notes)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        messages, notes = self._prepare(messages, await self.asupports_images())
        astream = super()._astream
        run: Any = lambda m: astream(m, stop, run_manager, **kwargs)  # noqa: E731
        chunks = image_fallback.afallback(self.model, messages, notes, run)
        async with contextlib.aclosing(chunks):  # the stop button closes the HTTP stream now
            async for chunk in chunks:
                yield chunk
        if notes:
            yield image_fallback.notes_chunk(notes)

    # ----- inline completions (completion.py) ----------------------------------------------
    async def generate_inline_completions(self, request: Any) -> Any:
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        return await completion.generate(self, request, server_settings=self.server_settings)

    async def stream_inline_completions(self, request: Any) -> AsyncIterator[Any]:
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        replies: Any = completion.stream(self, request, server_settings=self.server_settings)
        async with contextlib.aclosing(replies):
            async for reply in replies:
                yield reply
