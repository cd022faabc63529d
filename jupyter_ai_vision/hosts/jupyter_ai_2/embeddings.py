"""The ``vision`` embeddings provider: any LiteLLM embedding model, or a LiteLLM Proxy.

Used by Jupyter AI's ``/learn`` and ``/ask``. Like the chat provider it passes ``api_key``,
``api_base`` and ``timeout`` per call (never via litellm's module globals) and imports
litellm lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from jupyter_ai_magics import BaseEmbeddingsProvider
from jupyter_ai_magics.base_provider import IntegerField, TextField
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field, SecretStr

from jupyter_ai_vision.llm import error_messages
from jupyter_ai_vision.llm.chat_model import RETRY_BACKOFF, import_litellm, import_litellm_async


class LiteLLMEmbeddings(BaseModel, Embeddings):
    """LangChain ``Embeddings`` over ``litellm.embedding`` / ``litellm.aembedding``."""

    model: str
    api_key: SecretStr | None = None
    api_base: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=len(RETRY_BACKOFF))
    dimensions: int | None = Field(default=None, gt=0)
    #: Texts per request (providers cap the batch size; OpenAI takes 2048).
    batch_size: int = Field(default=256, gt=0)

    def _params(self, texts: Sequence[str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "input": list(texts),
            "timeout": self.timeout,
            "max_retries": 0,
            "num_retries": 0,
        }
        if self.api_key is not None:
            params["api_key"] = self.api_key.get_secret_value()
        if self.api_base:
            params["api_base"] = self.api_base
        if self.dimensions:
            params["dimensions"] = self.dimensions
        return params

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        texts = list(texts)
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def _fail(self, exc: BaseException) -> BaseException:
        secret = self.api_key.get_secret_value() if self.api_key else None
        line = error_messages.user_message(exc, secrets=[secret])
        with contextlib.suppress(AttributeError, TypeError):
            exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
        return exc

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        litellm = import_litellm()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            params = self._params(batch)
            for attempt in range(self.max_retries + 1):
                try:
                    vectors.extend(_vectors(litellm.embedding(**params)))
                    break
                except Exception as exc:
                    if attempt >= self.max_retries or not error_messages.is_retryable(exc):
                        raise self._fail(exc) from None
                    time.sleep(RETRY_BACKOFF[attempt])
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        litellm = await import_litellm_async()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            params = self._params(batch)
            for attempt in range(self.max_retries + 1):
                try:
                    vectors.extend(_vectors(await litellm.aembedding(**params)))
                    break
                except Exception as exc:
                    if attempt >= self.max_retries or not error_messages.is_retryable(exc):
                        raise self._fail(exc) from None
                    await asyncio.sleep(RETRY_BACKOFF[attempt])
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _vectors(response: Any) -> list[list[float]]:
    data = response["data"] if isinstance(response, dict) else response.data
    items = sorted(data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
    return [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in items]


class VisionEmbeddingsProvider(BaseEmbeddingsProvider, LiteLLMEmbeddings):  # type: ignore[misc]
    """Jupyter AI embeddings provider ``vision``."""

    id: ClassVar[str] = "vision"
    name: ClassVar[str] = "Vision (LiteLLM)"
    models: ClassVar[list[str]] = ["*"]
    registry: ClassVar[bool] = True
    model_id_key: ClassVar[str] = "model"
    help: ClassVar[str | None] = (
        "Type any LiteLLM embedding model name, e.g. `openai/text-embedding-3-small`, "
        "`gemini/text-embedding-004`, `ollama/nomic-embed-text`, `mistral/mistral-embed`. "
        "Set `api_base` for a LiteLLM Proxy or a local OpenAI-compatible server."
    )
    pypi_package_deps: ClassVar[list[str]] = ["litellm"]
    auth_strategy: ClassVar[Any] = None
    fields: ClassVar[list[Any]] = [
        TextField(key="api_base", label="API base URL (optional)", format="text"),
        TextField(
            key="api_key", label="API key (optional; else the provider's env var)", format="text"
        ),
        IntegerField(key="timeout", label="Timeout in seconds (optional, default 60)"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        from jupyter_ai_vision.hosts.jupyter_ai_2.provider import check_parameters

        kwargs = check_parameters(kwargs)
        super().__init__(**kwargs)
