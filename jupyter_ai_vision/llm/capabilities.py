"""Whether a LiteLLM model takes images: the user's override, else LiteLLM's flag (trusted only
where LiteLLM knows the model), else the built-in table (``context.budget``).

One answer path, :func:`supports_images`, with an async wrapper. Shared by every host (the 2.x
provider, the 3.x Vision persona, ``%%ai`` on 3.x). The full check imports litellm on first
use and, for ``ollama/*``, LiteLLM asks the Ollama server over HTTP: it only runs when the
caller may block (``may_block=True``, or :func:`asupports_images`, which runs it in a worker
thread). Answers are kept in a bounded LRU (LiteLLM's map does not change while we run).
"""

from __future__ import annotations

import asyncio
import sys

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision.llm._litellm import import_litellm, start_tokenizer_warmup

#: (model, api_base) -> (answer,). The answer may be None ("unknown"), hence the 1-tuple.
VISION_CACHE: LRU[tuple[str, str | None], tuple[bool | None]] = LRU(max_items=256)


def is_ollama(model: str) -> bool:
    return model.split("/", 1)[0] in ("ollama", "ollama_chat")


def table_hint(model: str) -> bool | None:
    """The built-in table's guess (no litellm, no I/O)."""
    # imported on first use: the Jupyter server imports the provider (and so this module) at
    # start-up, and the budget's tables are not needed until a model is asked about
    from jupyter_ai_vision.context.budget import model_profile

    return model_profile(model).supports_images


def check_vision(model: str, api_base: str | None = None) -> bool | None:
    """The full check: True, False (a model LiteLLM maps without vision) or None (unknown:
    images are sent). Blocking (imports litellm; asks the Ollama server for ``ollama/*``):
    never call this on an event loop.

    LiteLLM says False for every model it does not know, so False is only trusted for names
    in its model map; otherwise the built-in table decides (``ollama/llava`` takes images).
    """
    cached = VISION_CACHE.get((model, api_base))
    if cached is not None:
        return cached[0]
    litellm = import_litellm()
    result: bool | None = None
    try:
        if litellm.supports_vision(model=model):
            result = True
        elif not is_ollama(model):
            bare = model.split("/", 1)[1] if "/" in model else model
            if model in litellm.model_cost or bare in litellm.model_cost:
                result = False
    except Exception:  # LiteLLM raises for names it cannot parse: unknown, not an error
        result = None
    if result is None:
        result = table_hint(model)
    VISION_CACHE.put((model, api_base), (result,))
    return result


def supports_images(
    model: str,
    api_base: str | None = None,
    override: bool | None = None,
    *,
    may_block: bool = False,
) -> bool | None:
    """True / False / None (unknown: send images and let the model decide).

    ``override`` (the ``supports_vision`` setting) wins. Without ``may_block`` this is safe on
    an event loop: a cached answer, else LiteLLM's map when litellm is already loaded (a dict
    lookup) and the model is not served by Ollama, else the built-in table."""
    if override is not None:
        return override
    cached = VISION_CACHE.get((model, api_base))
    if cached is not None:
        return cached[0]
    if may_block or ("litellm" in sys.modules and not is_ollama(model)):
        return check_vision(model, api_base)
    return table_hint(model)


async def asupports_images(
    model: str, api_base: str | None = None, override: bool | None = None
) -> bool | None:
    """:func:`supports_images` with the full check, run in a worker thread when not cached.

    The hosts ask this right before they build a request's context for ``model``: the chat
    call's tokenizer starts loading now, in a worker thread (``llm/_litellm.py``), so that
    the call rarely has to wait for it."""
    try:
        if override is not None:
            return override
        cached = VISION_CACHE.get((model, api_base))
        if cached is not None:  # no thread hop once known
            return cached[0]
        return await asyncio.to_thread(supports_images, model, api_base, may_block=True)
    finally:
        start_tokenizer_warmup(model)
