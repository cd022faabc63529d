"""LangChain ``Embeddings`` over ``litellm.embedding`` / ``litellm.aembedding``.

Like the chat model: ``api_key``, ``api_base`` and ``timeout`` per call (never litellm's
module globals, from ``llm/_litellm.call_kwargs``), the one retry policy (``llm/_retry.py``),
litellm imported lazily. The Jupyter AI 2.x provider around it is
``hosts/jupyter_ai_2/embeddings.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field, SecretStr

from jupyter_ai_vision.llm._litellm import call_kwargs, import_litellm, import_litellm_async
from jupyter_ai_vision.llm._retry import RETRY_BACKOFF, awith_retries, with_retries


class LiteLLMEmbeddings(BaseModel, Embeddings):
    """Embeddings for any LiteLLM embedding model (``openai/text-embedding-3-small``, ...)."""

    model: str
    api_key: SecretStr | None = None
    api_base: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=len(RETRY_BACKOFF))
    dimensions: int | None = Field(default=None, gt=0)
    #: Texts per request (providers cap the batch size; OpenAI takes 2048).
    batch_size: int = Field(default=256, gt=0)

    def _secret(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def _params(self, texts: Sequence[str]) -> dict[str, Any]:
        call: dict[str, Any] = {"input": list(texts)}
        if self.dimensions:
            call["dimensions"] = self.dimensions
        return call_kwargs(
            model=self.model,
            api_base=self.api_base,
            api_key=self._secret(),
            timeout=self.timeout,
            **call,
        )

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        texts = list(texts)
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        litellm = import_litellm()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            call = functools.partial(litellm.embedding, **self._params(batch))
            response = with_retries(call, self.max_retries, [self._secret()])
            vectors.extend(_vectors(response))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        litellm = await import_litellm_async()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            acall = functools.partial(litellm.aembedding, **self._params(batch))
            response = await awith_retries(acall, self.max_retries, [self._secret()])
            vectors.extend(_vectors(response))
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _vectors(response: Any) -> list[list[float]]:
    data = response["data"] if isinstance(response, dict) else response.data
    items = sorted(data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
    return [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in items]
