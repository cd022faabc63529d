"""Streaming chat over plain litellm, for hosts that do not use LangChain (the 3.x Vision
persona, ``%%ai`` on Jupyter AI 3.x).

Same rules as the LangChain chat model (``llm/chat_model.py``), from the same helpers: one
kwargs builder (credentials, endpoint and timeout per call; litellm's module globals are never
touched), one retry policy (429 / 5xx / timeouts, before the first token only), the upstream
stream closed as soon as the consumer stops, and failures as one line
(:class:`~jupyter_ai_vision.errors.ModelError`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from jupyter_ai_vision.llm._litellm import chat_kwargs, delta_text, litellm_for_chat
from jupyter_ai_vision.llm._retry import RETRY_BACKOFF, aread_stream, awith_retries, model_error


async def stream_chat(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str,
    api_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    max_retries: int = 2,
    extra: Mapping[str, Any] | None = None,
) -> AsyncGenerator[str, None]:
    """The reply's text, piece by piece, for OpenAI-format ``messages`` (content a string or a
    list of ``text`` / ``image_url`` parts, as ``VisionContext.to_openai_content()`` gives).

    ``extra``: more litellm keyword arguments (``temperature``, ``max_tokens``, ``stop``, ...);
    they cannot override the model, credentials, timeout or retries. Read it with
    ``contextlib.aclosing`` so that stopping early closes the HTTP stream at once.

    Raises :class:`~jupyter_ai_vision.errors.ModelError`: ``str(e)`` is the line for the
    user (no key in it), ``e.kind`` the LiteLLM error it comes from, ``e.images_refused``
    whether the model said it takes no images.
    """
    if not 0 <= max_retries <= len(RETRY_BACKOFF):
        raise ValueError(f"max_retries must be 0..{len(RETRY_BACKOFF)}, not {max_retries!r}")
    secrets = [api_key]
    params = chat_kwargs(
        model=model,
        messages=[dict(m) for m in messages],
        api_base=api_base,
        api_key=api_key,
        timeout=timeout,
        stream=True,
        extra=extra,
    )
    try:
        litellm = await litellm_for_chat(model, stream=True)
        stream = await awith_retries(lambda: litellm.acompletion(**params), max_retries, secrets)
        async with contextlib.aclosing(aread_stream(stream, secrets)) as raws:
            async for raw in raws:
                text = delta_text(raw)
                if text:
                    yield text
    except Exception as exc:
        # from None: the original text may quote the key; str(ModelError) is redacted
        raise model_error(exc, secrets) from None
