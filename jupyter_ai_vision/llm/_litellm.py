"""Talking to litellm: the lazy import, the one builder of call keyword arguments, stream closing.

Every litellm call this package makes (the LangChain chat model, embeddings, the plain
:func:`~jupyter_ai_vision.llm.stream.stream_chat`) gets its arguments from :func:`call_kwargs`,
so the rules live here once: credentials, endpoint and timeout are passed per call (never
written onto litellm's module globals, which every user and request of a server shares), and
litellm's / the OpenAI SDK's own retries are off (``llm/_retry.py`` retries, boundedly).

No langchain here: hosts that do not use LangChain import this module too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

_IMPORT_LOCK = threading.Lock()

#: Sent to an ``api_base`` when no key is configured anywhere (a proxy that needs a key
#: answers 401, which becomes "update your API key").
NO_KEY = "no-key-configured"


def import_litellm() -> Any:
    """``import litellm`` without fetching its remote cost map (no network at start-up)."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "completion"):
        return module
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


def _needs_placeholder_key(model: str) -> bool:
    prefix = model.split("/", 1)[0] if "/" in model else "openai"
    return prefix in ("openai", "text-completion-openai") and not os.environ.get("OPENAI_API_KEY")


def call_kwargs(
    *,
    model: str,
    api_base: str | None,
    api_key: str | None,
    timeout: float,
    extra: Mapping[str, Any] | None = None,
    **call: Any,
) -> dict[str, Any]:
    """Keyword arguments for one ``litellm.(a)completion`` / ``(a)embedding`` call.

    ``extra`` (the user's model parameters) come first, so they cannot override the model,
    the credentials, the timeout or the retry settings; ``call`` holds the call's own
    arguments (``messages``, ``input``, ``stop``, ...)."""
    params: dict[str, Any] = {
        **(extra or {}),
        **call,
        "model": model,
        "timeout": timeout,
        # our own bounded retries (llm/_retry.py); the OpenAI SDK must not add its own
        "max_retries": 0,
        "num_retries": 0,
    }
    if api_key is not None:
        params["api_key"] = api_key
    if api_base:
        params["api_base"] = api_base
        if api_key is None and _needs_placeholder_key(model):
            # local OpenAI-compatible servers (vLLM, LM Studio, llama.cpp) take no key,
            # but the OpenAI SDK refuses to send a request without one
            params["api_key"] = NO_KEY
    return params


def chat_kwargs(
    *,
    model: str,
    messages: list[dict[str, Any]],
    api_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    stream: bool = False,
    extra: Mapping[str, Any] | None = None,
    **call: Any,
) -> dict[str, Any]:
    """:func:`call_kwargs` for a chat completion; streams report usage."""
    params = call_kwargs(
        model=model,
        api_base=api_base,
        api_key=api_key,
        timeout=timeout,
        extra=extra,
        messages=messages,
        **{k: v for k, v in call.items() if v is not None},
    )
    if stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    return params


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name`` (litellm returns objects; proxies and tests, dicts)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def delta_text(raw: Any) -> str:
    """The text of one streamed chunk ("" for usage-only and finish chunks)."""
    choices = field(raw, "choices") or []
    delta = field(choices[0], "delta") if choices else None
    return (field(delta, "content") if delta is not None else None) or ""


def close_sync(stream: Any) -> None:
    """Close a litellm stream (drops the HTTP connection, so the server stops generating)."""
    close = getattr(stream, "close", None)
    inner = getattr(stream, "completion_stream", None)
    try:
        if callable(close):
            close()
        elif inner is not None and callable(getattr(inner, "close", None)):
            inner.close()
    except Exception:  # closing is best effort; the request is over either way
        pass


async def close_async(stream: Any) -> None:
    """:func:`close_sync` for an async litellm stream."""
    aclose = getattr(stream, "aclose", None)
    if not callable(aclose):
        return
    with contextlib.suppress(Exception):  # best effort, as above
        await aclose()
