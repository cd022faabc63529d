"""Whether a LiteLLM model takes images: LiteLLM's flag, trusted only where it knows the model.

Shared by every host (the 2.x provider, the 3.x Vision persona and ``%%ai`` on 3.x). Imports
litellm on first use, and for ``ollama/*`` LiteLLM asks the Ollama server: call
:func:`check_vision` in a worker thread, never on an event loop.
"""

from __future__ import annotations

from jupyter_ai_vision.llm.chat_model import import_litellm

#: (model, api_base) -> answer; LiteLLM's model map does not change while we run
VISION_CACHE: dict[tuple[str, str | None], bool | None] = {}


def is_ollama(model: str) -> bool:
    return model.split("/", 1)[0] in ("ollama", "ollama_chat")


def check_vision(model: str, api_base: str | None = None) -> bool | None:
    """True, False (a model LiteLLM maps without vision) or None (unknown: images are sent).

    LiteLLM says False for every model it does not know, so False is only trusted for
    names in its model map; otherwise the built-in table decides (``ollama/llava`` takes
    images). Imports litellm and, for ``ollama/*``, LiteLLM asks the Ollama server: never
    call this on the event loop (see :meth:`VisionProvider.asupports_images`).
    """
    key = (model, api_base)
    if key in VISION_CACHE:
        return VISION_CACHE[key]
    litellm = import_litellm()
    result: bool | None = None
    try:
        if litellm.supports_vision(model=model):
            result = True
        elif not is_ollama(model):
            bare = model.split("/", 1)[1] if "/" in model else model
            if model in litellm.model_cost or bare in litellm.model_cost:
                result = False
    except Exception:
        result = None
    if result is None:
        result = table_hint(model)
    VISION_CACHE[key] = result
    return result


def table_hint(model: str) -> bool | None:
    """The built-in table's guess (no litellm): used until LiteLLM has been asked."""
    try:
        from jupyter_ai_vision.context.budget import model_profile

        return model_profile(model).supports_images
    except Exception:
        return None
