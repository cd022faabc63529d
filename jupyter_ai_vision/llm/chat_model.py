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

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SecretStr

from jupyter_ai_vision.llm._litellm import NO_KEY as NO_KEY
from jupyter_ai_vision.llm._litellm import chat_kwargs, delta_text, litellm_for_chat
from jupyter_ai_vision.llm._litellm import field as _field
from jupyter_ai_vision.llm._litellm import import_litellm as import_litellm
from jupyter_ai_vision.llm._litellm import import_litellm_async as import_litellm_async
from jupyter_ai_vision.llm._retry import RETRY_BACKOFF as RETRY_BACKOFF
from jupyter_ai_vision.llm._retry import aread_stream, awith_retries, read_stream, with_retries


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
        return chat_kwargs(
            model=self.model,
            messages=to_openai_messages(messages),
            api_base=self.api_base,
            api_key=self._secret(),
            timeout=self.timeout,
            stream=stream,
            extra={**self.model_kwargs, **kwargs},
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stop=stop or None,
        )

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
        response = with_retries(
            lambda: litellm.completion(**params), self.max_retries, [self._secret()]
        )
        return _chat_result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        litellm = await litellm_for_chat(self.model, stream=False)
        params = self._request(messages, stop, stream=False, **kwargs)
        response = await awith_retries(
            lambda: litellm.acompletion(**params), self.max_retries, [self._secret()]
        )
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
        secrets = [self._secret()]
        stream = with_retries(lambda: litellm.completion(**params), self.max_retries, secrets)
        with contextlib.closing(read_stream(stream, secrets)) as raws:  # closed on early stop
            for raw in raws:
                chunk = _generation_chunk(raw)
                if chunk is not None:
                    if run_manager and chunk.text:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        litellm = await litellm_for_chat(self.model, stream=True)
        params = self._request(messages, stop, stream=True, **kwargs)
        secrets = [self._secret()]
        stream = await awith_retries(
            lambda: litellm.acompletion(**params), self.max_retries, secrets
        )
        # aclosing: when the consumer stops early (aclose / GeneratorExit), the LiteLLM stream
        # is closed now, which drops the HTTP connection: the model server stops generating.
        async with contextlib.aclosing(aread_stream(stream, secrets)) as raws:
            async for raw in raws:
                chunk = _generation_chunk(raw)
                if chunk is not None:
                    if run_manager and chunk.text:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk


# ----- response conversion ---------------------------------------------------------------
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
    text = delta_text(raw)
    usage = usage_metadata(_field(raw, "usage"))
    finish = _field(choices[0], "finish_reason") if choices else None
    if not text and usage is None and finish is None:
        return None
    metadata = {"finish_reason": finish} if finish else {}
    message = AIMessageChunk(content=text, usage_metadata=usage, response_metadata=metadata)
    return ChatGenerationChunk(message=message)
