"""The ``vision`` embeddings provider for Jupyter AI 2.x: any LiteLLM embedding model, or a
LiteLLM Proxy. Used by ``/learn`` and ``/ask``. The embeddings themselves are
``llm/embeddings.py``; this is the host adapter (settings fields, parameter checks).
"""

from __future__ import annotations

from typing import Any, ClassVar

from jupyter_ai_magics import BaseEmbeddingsProvider
from jupyter_ai_magics.base_provider import IntegerField, TextField

from jupyter_ai_vision.llm.embeddings import LiteLLMEmbeddings as LiteLLMEmbeddings
from jupyter_ai_vision.llm.params import check_parameters


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
        kwargs = check_parameters(kwargs)
        super().__init__(**kwargs)
