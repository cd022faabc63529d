"""The ``vision`` model provider for Jupyter AI: any LiteLLM model, with images.

``%%ai vision:openai/gpt-4o``, ``%%ai vision:ollama/llava``, or "Vision (LiteLLM)" in the
chat settings. The Jupyter server imports every provider at start-up, so this module
imports nothing heavy: litellm is loaded on first use (see :mod:`jupyter_ai_vision.llm.chat_model`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any, ClassVar

from jupyter_ai_magics import BaseProvider
from jupyter_ai_magics.base_provider import IntegerField, TextField
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import PromptTemplate

from jupyter_ai_vision.errors import ModelParameterError as ModelParameterError  # re-export
from jupyter_ai_vision.llm import error_messages

# Vision capability and parameter checks are shared by both hosts; imported by name (tests
# patch check_vision on this module, embeddings imports check_parameters from here).
from jupyter_ai_vision.llm.capabilities import VISION_CACHE as _VISION_CACHE
from jupyter_ai_vision.llm.capabilities import check_vision, is_ollama, table_hint
from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel, import_litellm
from jupyter_ai_vision.llm.params import check_parameters

MODELS_FILE = "vision_models.json"
#: Providers whose vision models are listed (all LiteLLM names are accepted anyway).
LISTED_PROVIDERS = (
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "xai",
    "deepseek",
    "groq",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "ollama",
)


def vision_models() -> list[str]:
    """Vision-capable chat models from LiteLLM's model map (a snapshot shipped as data)."""
    try:
        text = resources.files("jupyter_ai_vision.llm").joinpath(MODELS_FILE).read_text("utf-8")
        return list(json.loads(text)["models"])
    except (OSError, ValueError, KeyError):
        return []


def snapshot_vision_models() -> dict[str, Any]:
    """Build the snapshot from the installed litellm (development time; imports litellm)."""
    litellm = import_litellm()
    names = set()
    for name, info in litellm.model_cost.items():
        provider = info.get("litellm_provider")
        vision_chat = info.get("supports_vision") and info.get("mode") == "chat"
        if vision_chat and provider in LISTED_PROVIDERS:
            names.add(name if name.startswith(f"{provider}/") else f"{provider}/{name}")
    from importlib.metadata import version

    return {"litellm": version("litellm"), "models": sorted(names)}


def _help(models: list[str]) -> str:
    examples = [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
        "ollama/llava",
        "openrouter/anthropic/claude-3.5-sonnet",
    ]
    by_provider: dict[str, list[str]] = {}
    for name in sorted(models, key=lambda n: (len(n), n)):  # short undated aliases first
        by_provider.setdefault(name.split("/", 1)[0], []).append(name)
    listed = "; ".join(
        f"{p}: {', '.join(n.split('/', 1)[1] for n in names[:8])}"
        + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")
        for p, names in sorted(by_provider.items())
    )
    return (
        "Type any LiteLLM model name, e.g. "
        + ", ".join(f"`{e}`" for e in examples)
        + ". Set `api_base` for a LiteLLM Proxy or a local OpenAI-compatible server "
        "(Ollama, vLLM, LM Studio); the API key comes from the provider's usual environment "
        "variable (e.g. OPENAI_API_KEY) or the `api_key` field. Vision models in LiteLLM's map: "
        + (listed or "(snapshot not available)")
        + "."
    )


# ----- prompt templates -------------------------------------------------------------------
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


NOT_SENT = (
    "Images were not sent: {model} does not accept images according to LiteLLM, so figures "
    "went as text descriptions. If it does take images, set supports_vision to true in the "
    'chat settings, or add -m {{"supports_vision":true}} to %%ai.'
)
REFUSED = (
    "Images were not sent: {model} refused them, so the question was asked again with text "
    "descriptions. Pick a vision model (e.g. vision:openai/gpt-4o) to include figures."
)


class VisionProvider(BaseProvider, LiteLLMChatModel):  # type: ignore[misc]
    """Jupyter AI provider ``vision``: LiteLLM chat models that see notebook figures."""

    id: ClassVar[str] = "vision"
    name: ClassVar[str] = "Vision (LiteLLM)"  # type: ignore[misc]
    models: ClassVar[list[str]] = ["*"]
    registry: ClassVar[bool] = True
    help: ClassVar[str | None] = _help(vision_models())
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

    def __init__(self, **kwargs: Any) -> None:
        kwargs = check_parameters(kwargs)
        known = set(type(self).model_fields) | {"model_id"}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        if extra:
            kwargs["model_kwargs"] = {**kwargs.get("model_kwargs", {}), **extra}
        super().__init__(**kwargs)

    # ----- capability ------------------------------------------------------------------
    def supports_images(self) -> bool | None:
        """Whether the model takes images: the override, else LiteLLM's map (True / False /
        None = unknown, send images). Cheap and safe on the event loop: before litellm is
        loaded, and for ``ollama/*``, it answers from a built-in table (or the cache)."""
        if self.supports_vision is not None:
            return self.supports_vision
        key = (self.model, self.api_base)
        if key in _VISION_CACHE:
            return _VISION_CACHE[key]
        if "litellm" in sys.modules and not is_ollama(self.model):
            return check_vision(self.model, self.api_base)  # a dict lookup once loaded
        return table_hint(self.model)

    def _supports_images_blocking(self) -> bool | None:
        """The full check, for the synchronous paths (they block their caller anyway)."""
        if self.supports_vision is not None:
            return self.supports_vision
        return check_vision(self.model, self.api_base)

    async def asupports_images(self) -> bool | None:
        """:meth:`supports_images` with LiteLLM's full check run in a worker thread."""
        if self.supports_vision is not None:
            return self.supports_vision
        key = (self.model, self.api_base)
        if key in _VISION_CACHE:  # no thread hop once known
            return _VISION_CACHE[key]
        return await asyncio.to_thread(check_vision, self.model, self.api_base)

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
    ) -> tuple[list[BaseMessage], str | None]:
        notes: list[str] = []
        if self._in_kernel():
            from jupyter_ai_vision.kernel import extension

            # its notes (missing / rejected names) are printed for the user in the cell
            messages, _ = extension.expand_references(self, messages, supports)
        if supports is False and _has_images(messages):
            messages = strip_images(messages)
            notes.append(NOT_SENT.format(model=self.model))
        return messages, ("\n".join(notes) or None)

    # ----- LangChain hooks (images, notes) ---------------------------------------------
    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        messages, note = self._prepare(messages, self._supports_images_blocking())
        try:
            result = super()._generate(messages, stop, run_manager, **kwargs)
        except Exception as exc:
            if not (error_messages.images_refused(exc) and _has_images(messages)):
                raise
            result = super()._generate(strip_images(messages), stop, run_manager, **kwargs)
            note = _join(note, REFUSED.format(model=self.model))
        return _with_note(result, note)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        messages, note = self._prepare(messages, await self.asupports_images())
        try:
            result = await super()._agenerate(messages, stop, run_manager, **kwargs)
        except Exception as exc:
            if not (error_messages.images_refused(exc) and _has_images(messages)):
                raise
            result = await super()._agenerate(strip_images(messages), stop, run_manager, **kwargs)
            note = _join(note, REFUSED.format(model=self.model))
        return _with_note(result, note)

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        messages, note = self._prepare(messages, self._supports_images_blocking())
        started = False
        try:
            first: Any = super()._stream(messages, stop, run_manager, **kwargs)
            with contextlib.closing(first):
                for chunk in first:
                    started = True
                    yield chunk
        except Exception as exc:
            if started or not (error_messages.images_refused(exc) and _has_images(messages)):
                raise
            retry: Any = super()._stream(strip_images(messages), stop, run_manager, **kwargs)
            with contextlib.closing(retry):
                yield from retry
            note = _join(note, REFUSED.format(model=self.model))
        if note:
            yield _note_chunk(note)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        messages, note = self._prepare(messages, await self.asupports_images())
        started = False
        try:
            # aclosing: when the consumer stops (the chat's stop button), the upstream
            # HTTP stream is closed now, not when the generator is garbage-collected
            first: Any = super()._astream(messages, stop, run_manager, **kwargs)
            async with contextlib.aclosing(first):
                async for chunk in first:
                    started = True
                    yield chunk
        except Exception as exc:
            if started or not (error_messages.images_refused(exc) and _has_images(messages)):
                raise
            retry: Any = super()._astream(strip_images(messages), stop, run_manager, **kwargs)
            async with contextlib.aclosing(retry):
                async for chunk in retry:
                    yield chunk
            note = _join(note, REFUSED.format(model=self.model))
        if note:
            yield _note_chunk(note)

    # ----- inline completions (jupyter_ai_vision.hosts.jupyter_ai_2.completion) ---------------------------
    async def generate_inline_completions(self, request: Any) -> Any:
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        return await completion.generate(self, request, server_settings=self.server_settings)

    async def stream_inline_completions(self, request: Any) -> AsyncIterator[Any]:
        from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

        replies: Any = completion.stream(self, request, server_settings=self.server_settings)
        async with contextlib.aclosing(replies):
            async for reply in replies:
                yield reply


# ----- helpers ----------------------------------------------------------------------------
def _has_images(messages: list[BaseMessage]) -> bool:
    return any(
        isinstance(m.content, list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m.content)
        for m in messages
    )


def strip_images(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Copies of ``messages`` with each image part replaced by a short text stub."""
    out: list[BaseMessage] = []
    for message in messages:
        if not isinstance(message.content, list):
            out.append(message)
            continue
        content: list[Any] = []
        for part in message.content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                content.append(
                    {"type": "text", "text": "[image not sent: the model does not accept images]"}
                )
            else:
                content.append(part)
        out.append(message.model_copy(update={"content": content}))
    return out


def _join(a: str | None, b: str) -> str:
    return f"{a}\n{b}" if a else b


def _note_chunk(note: str) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content=f"\n\n_{note}_"))


def _with_note(result: ChatResult, note: str | None) -> ChatResult:
    if not note or not result.generations:
        return result
    first = result.generations[0]
    message = first.message.model_copy(update={"content": f"{first.message.content}\n\n_{note}_"})
    # a new ChatGeneration: its .text is computed from the message at construction
    generation = ChatGeneration(message=message, generation_info=first.generation_info)
    return ChatResult(
        generations=[generation, *result.generations[1:]], llm_output=result.llm_output
    )


if __name__ == "__main__":
    # python -m jupyter_ai_vision.hosts.jupyter_ai_2.provider > jupyter_ai_vision/llm/vision_models.json
    print(json.dumps(snapshot_vision_models(), indent=1))
