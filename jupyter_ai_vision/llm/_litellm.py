"""Talking to litellm: the lazy import, its tokenizer warm-up, the one builder of call keyword
arguments, stream closing.

Every litellm call this package makes (the LangChain chat model, embeddings, the plain
:func:`~jupyter_ai_vision.llm.stream.stream_chat`) gets its arguments from :func:`call_kwargs`,
so the rules live here once: credentials, endpoint and timeout are passed per call (never
written onto litellm's module globals, which every user and request of a server shares), and
litellm's / the OpenAI SDK's own retries are off (``llm/_retry.py`` retries, boundedly).

No langchain here: hosts that do not use LangChain import this module too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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


# ----- tokenizer warm-up ---------------------------------------------------------------------
# ``await litellm.acompletion(..., stream=True)`` prices the stream before returning it,
# synchronously, on the caller's thread: utils.wrapper_async -> _update_response_metadata ->
# ResponseMetadata.set_hidden_params -> Logging.response_cost_calculator ->
# cost_calculator.completion_cost -> token_counter(model, text="") -> select_tokenizer
# (cl100k_base, litellm's default encoding) and openai_tokenizer_encoding (o200k_base for
# gpt-4o-style names; a Hugging Face tokenizer for some other names) -> tiktoken.get_encoding.
# The first time in a process that loads tiktoken's BPE files: 0.7-1 s on the Jupyter server's
# event loop (measured with litellm 1.110), to count the tokens of an empty string. litellm
# also counts through the same tokenizer when a reply carries no usage.
#
# So before a chat call litellm loads the tokenizer it will use for that model in a worker
# thread, once per model name, through its own token_counter (whatever tokenizer it picks for
# the name is the one loaded). That takes the file reading and parsing (~60 %) off the loop.
# What remains is tiktoken's Rust constructor (CoreBPE), which holds the GIL for 0.1-0.3 s
# whichever thread runs it: no thread can hide it, so the warm-up starts as early as the model
# is known (the persona's prepare(), the vision check before a request's context is built).
# Turning litellm's token counting off (litellm.disable_token_counter) would avoid it, but it
# is a module global that every other litellm user of the process shares.

_WARM_LOCK = threading.Lock()
_WARMED: dict[str, concurrent.futures.Future[None]] = {}
#: model names remembered (a warm-up per name costs ~0.1 ms once the encodings are loaded)
_WARMED_MAX = 256


def _warm_tokenizer(litellm: Any, model: str, done: concurrent.futures.Future[None]) -> None:
    try:
        # The name as called, and without its provider prefix: the cost calculator counts
        # with the candidate names it prices (the model as called, the response's model).
        for name in dict.fromkeys((model, model.split("/", 1)[-1])):
            with contextlib.suppress(Exception):  # litellm will say what is wrong, later
                litellm.token_counter(model=name, text="warm")
    finally:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            done.set_result(None)


def warm_tokenizer(litellm: Any, model: str) -> concurrent.futures.Future[None]:
    """Start loading litellm's tokenizer for ``model`` in a worker thread (once per model name);
    the future is done when it is loaded (at once when it already was)."""
    with _WARM_LOCK:
        done = _WARMED.get(model)
        if done is not None:
            return done
        if len(_WARMED) >= _WARMED_MAX:
            for name in [n for n, f in _WARMED.items() if f.done()]:
                del _WARMED[name]
        done = _WARMED[model] = concurrent.futures.Future()
    threading.Thread(
        target=_warm_tokenizer,
        args=(litellm, model, done),
        name="jupyter-ai-vision-tokenizer",
        daemon=True,
    ).start()
    return done


def start_tokenizer_warmup(model: str) -> None:
    """:func:`warm_tokenizer` for a chat call about to come, when litellm is imported already
    (never imports it, never waits): a request's context is built meanwhile."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "acompletion"):
        warm_tokenizer(module, model)


async def litellm_for_chat(model: str, *, stream: bool) -> Any:
    """litellm, ready for an ``acompletion`` with ``model`` that will not load a tokenizer on
    the event loop: imported off the loop (:func:`import_litellm_async`) and, for a stream,
    its tokenizer for ``model`` loaded in a worker thread first (awaited only the first time,
    and only when not loaded yet: litellm needs it as soon as the stream is returned). A call
    without ``stream`` only starts the warm-up: a reply with usage is priced without counting."""
    litellm = await import_litellm_async()
    done = warm_tokenizer(litellm, model)
    if stream and not done.done():
        # shielded: a cancelled request (the stop button) must not cancel the shared warm-up
        await asyncio.shield(asyncio.wrap_future(done))
    return litellm


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
