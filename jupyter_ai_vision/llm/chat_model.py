"""A small LangChain chat model over ``litellm.completion`` / ``litellm.acompletion``.

Why not ``langchain_community``'s ``ChatLiteLLM``: it writes ``api_key`` / ``api_base`` onto
the litellm module on every call (shared by every user and request of the server) and loses
usage when streaming. This model passes credentials, endpoint, timeout and retries per call,
never touches litellm's module globals, streams with usage metadata, retries only 429 / 5xx /
timeouts (boundedly, before the first token), and closes the upstream HTTP stream as soon as
the consumer stops reading (the chat's stop button).

litellm is imported lazily (and, from async code, in a worker thread: it takes seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SecretStr

from jupyter_ai_vision.llm import error_messages

#: Backoff before retry n (seconds); the number of retries is ``max_retries``.
RETRY_BACKOFF = (0.25, 1.0, 2.0, 4.0)

_IMPORT_LOCK = threading.Lock()

#: Sent to an ``api_base`` when no key is configured anywhere (a proxy that needs a key
#: answers 401, which becomes "update your API key").
NO_KEY = "no-key-configured"


def _needs_placeholder_key(model: str) -> bool:
    import os

    prefix = model.split("/", 1)[0] if "/" in model else "openai"
    return prefix in ("openai", "text-completion-openai") and not os.environ.get("OPENAI_API_KEY")


def import_litellm() -> Any:
    """``import litellm`` without fetching its remote cost map (no network at start-up)."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "completion"):
        return module
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with _IMPORT_LOCK:
        if "litellm" in sys.modules:
            return sys.modules["litellm"]
        loaded: Any = importlib.import_module("litellm")
        # When we load it: no "Give Feedback / Get Help" banners printed into the user's
        # notebook or server log on every error (errors become one line instead). A display
        # setting, not request state; left alone when the user imported litellm first.
        loaded.suppress_debug_info = True
        return loaded


async def import_litellm_async() -> Any:
    """:func:`import_litellm` off the event loop (the first import takes seconds)."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "acompletion"):
        return module
    return await asyncio.to_thread(import_litellm)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages (content may be a list of text / ``image_url`` parts) -> OpenAI dicts."""
    from langchain_core.messages import convert_to_openai_messages

    return list(convert_to_openai_messages(list(messages)))  # type: ignore[arg-type]


def usage_metadata(usage: Any) -> UsageMetadata | None:
    """LiteLLM's ``Usage`` -> LangChain's ``UsageMetadata``."""
    if usage is None:
        return None

    def get(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value or 0)

    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    return UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=get("total_tokens") or prompt + completion,
    )


class LiteLLMChatModel(BaseChatModel):
    """Chat model for any LiteLLM model name (``openai/gpt-4o``, ``ollama/llava``, ...)."""

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: str
    api_key: SecretStr | None = None
    api_base: str | None = None
    #: Seconds per request (LiteLLM's own default is 6000).
    timeout: float = Field(default=120.0, gt=0)
    #: Retries for 429 / 5xx / timeouts only, before the first token.
    max_retries: int = Field(default=2, ge=0, le=len(RETRY_BACKOFF))
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    #: Extra keyword arguments for ``litellm.completion`` (e.g. ``top_p``, ``extra_headers``).
    model_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "litellm-vision"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Never the API key: these end up in callbacks, traces and logs.
        return {"model": self.model, "api_base": self.api_base}

    # ----- request ---------------------------------------------------------------------
    def _secret(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def _request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, stream: bool, **kwargs: Any
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            **self.model_kwargs,
            **kwargs,
            "model": self.model,
            "messages": to_openai_messages(messages),
            "timeout": self.timeout,
            # our own bounded retries below; the OpenAI SDK must not add its own
            "max_retries": 0,
            "num_retries": 0,
        }
        if self.api_key is not None:
            params["api_key"] = self._secret()
        if self.api_base:
            params["api_base"] = self.api_base
            if self.api_key is None and _needs_placeholder_key(self.model):
                # local OpenAI-compatible servers (vLLM, LM Studio, llama.cpp) take no key,
                # but the OpenAI SDK refuses to send a request without one
                params["api_key"] = NO_KEY
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if stop:
            params["stop"] = stop
        if stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        return params

    def _fail(self, exc: BaseException) -> BaseException:
        """Make the exception show as one line in a notebook (IPython's ``_render_traceback_``)
        and drop the key from its text."""
        line = error_messages.user_message(exc, secrets=[self._secret()])
        with contextlib.suppress(AttributeError, TypeError):  # e.g. C-level exceptions
            exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
        return exc

    # ----- retries ---------------------------------------------------------------------
    def _with_retries(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt >= self.max_retries or not error_messages.is_retryable(exc):
                    raise self._fail(exc) from None
                time.sleep(RETRY_BACKOFF[attempt])
        raise AssertionError("unreachable")

    async def _with_retries_async(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(self.max_retries + 1):
            try:
                return await fn()
            except Exception as exc:
                if attempt >= self.max_retries or not error_messages.is_retryable(exc):
                    raise self._fail(exc) from None
                await asyncio.sleep(RETRY_BACKOFF[attempt])
        raise AssertionError("unreachable")

    # ----- LangChain hooks -------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        litellm = import_litellm()
        params = self._request(messages, stop, stream=False, **kwargs)
        response = self._with_retries(lambda: litellm.completion(**params))
        return _chat_result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        litellm = await import_litellm_async()
        params = self._request(messages, stop, stream=False, **kwargs)
        response = await self._with_retries_async(lambda: litellm.acompletion(**params))
        return _chat_result(response)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        litellm = import_litellm()
        params = self._request(messages, stop, stream=True, **kwargs)
        stream = self._with_retries(lambda: litellm.completion(**params))
        try:
            for raw in stream:
                chunk = _generation_chunk(raw)
                if chunk is not None:
                    if run_manager and chunk.text:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except Exception as exc:
            raise self._fail(exc) from None
        finally:
            _close_sync(stream)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        litellm = await import_litellm_async()
        params = self._request(messages, stop, stream=True, **kwargs)
        stream = await self._with_retries_async(lambda: litellm.acompletion(**params))
        try:
            async for raw in stream:
                chunk = _generation_chunk(raw)
                if chunk is not None:
                    if run_manager and chunk.text:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        except Exception as exc:
            raise self._fail(exc) from None
        finally:
            # Runs when the consumer stops early too (aclose / GeneratorExit): closing the
            # LiteLLM stream drops the HTTP connection, so the model server stops generating.
            await _close_async(stream)


# ----- response conversion ---------------------------------------------------------------
def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _chat_result(response: Any) -> ChatResult:
    choices = _field(response, "choices") or []
    message = _field(choices[0], "message") if choices else None
    content = (_field(message, "content") if message is not None else None) or ""
    finish = _field(choices[0], "finish_reason") if choices else None
    ai = AIMessage(
        content=content,
        usage_metadata=usage_metadata(_field(response, "usage")),
        response_metadata={"model_name": _field(response, "model"), "finish_reason": finish},
    )
    return ChatResult(generations=[ChatGeneration(message=ai)])


def _generation_chunk(raw: Any) -> ChatGenerationChunk | None:
    choices = _field(raw, "choices") or []
    delta = _field(choices[0], "delta") if choices else None
    text = (_field(delta, "content") if delta is not None else None) or ""
    usage = usage_metadata(_field(raw, "usage"))
    finish = _field(choices[0], "finish_reason") if choices else None
    if not text and usage is None and finish is None:
        return None
    metadata = {"finish_reason": finish} if finish else {}
    message = AIMessageChunk(content=text, usage_metadata=usage, response_metadata=metadata)
    return ChatGenerationChunk(message=message)


def _close_sync(stream: Any) -> None:
    close = getattr(stream, "close", None)
    inner = getattr(stream, "completion_stream", None)
    try:
        if callable(close):
            close()
        elif inner is not None and callable(getattr(inner, "close", None)):
            inner.close()
    except Exception:  # closing is best effort; the request is over either way
        pass


async def _close_async(stream: Any) -> None:
    aclose = getattr(stream, "aclose", None)
    if not callable(aclose):
        return
    with contextlib.suppress(Exception):  # best effort, as above
        await aclose()
