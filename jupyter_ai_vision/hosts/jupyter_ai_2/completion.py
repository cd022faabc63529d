"""Inline completions on Jupyter AI 2.x: the ``vision`` provider's
``generate_inline_completions`` / ``stream_inline_completions`` delegate here.

This is the adapter: jupyter-ai's request and reply types, the provider's model call, and
errors as one line. Reading the notebook window, the prompt, post-processing and
supersession are host-independent (:mod:`jupyter_ai_vision.server.completion`).

The provider retries a model that refuses images itself and reports it in machine-readable
notes (``response_metadata["vision_notes"]``); :func:`provider.reply_text` gives the model's
own text without them, so no note is ever inserted into the user's code.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from jupyter_ai_magics.models.completion import (
    CompletionError,
    InlineCompletionItem,
    InlineCompletionList,
    InlineCompletionReply,
    InlineCompletionRequest,
    InlineCompletionStreamChunk,
)

from jupyter_ai_vision.hosts.jupyter_ai_2.image_fallback import reply_text
from jupyter_ai_vision.server import completion as core

# The host-independent names, as 0.1's ``jupyter_ai_vision.completion`` offered them.
from jupyter_ai_vision.server.completion import (
    FOCUS_PLACEHOLDER,
    SAVED_NOTEBOOKS,
    SETTING_NAMES,
    SUPERSESSION,
    CompletionSettings,
    Prompt,
    SavedNotebookCache,
    Superseded,
    Supersession,
    Window,
    prepare_window,
    settings_for,
    unless_superseded,
    window_from_cells,
    window_from_ynotebook,
)

log = logging.getLogger(__name__)

__all__ = [
    "CompletionSettings",
    "FOCUS_PLACEHOLDER",
    "Prompt",
    "SAVED_NOTEBOOKS",
    "SETTING_NAMES",
    "SUPERSESSION",
    "SavedNotebookCache",
    "Superseded",
    "Supersession",
    "Window",
    "build_prompt",
    "generate",
    "post_process",
    "prepare_window",
    "provider_supports_images",
    "read_window",
    "settings_for",
    "stream",
    "unless_superseded",
    "window_from_cells",
    "window_from_ynotebook",
]

STOP = ["\n```"]


def provider_supports_images(provider: Any) -> bool:
    """Only models known to take images get figures: a completion must not fail on them."""
    check = getattr(provider, "supports_images", None)
    if check is None:
        return False
    try:
        return check() is True
    except Exception:
        return False


async def build_prompt(
    provider: Any,
    request: InlineCompletionRequest,
    *,
    server_settings: Mapping[str, Any] | None = None,
    settings: CompletionSettings | None = None,
    window: Window | None = None,
) -> Prompt:
    """The messages for one completion, with what ``provider`` says about its model."""
    if server_settings is None:
        server_settings = getattr(provider, "server_settings", None)
    return await core.build_prompt(
        request,
        model=getattr(provider, "model_id", None),
        images=provider_supports_images(provider),
        server_settings=server_settings,
        settings=settings or settings_for(provider),
        window=window,
    )


async def read_window(
    request: InlineCompletionRequest,
    server_settings: Mapping[str, Any] | None,
    settings: CompletionSettings,
    *,
    cache: SavedNotebookCache = SAVED_NOTEBOOKS,
) -> Window | None:
    """The window around the request's cell: live notebook, else saved file, else None."""
    return await core.read_window(
        request.path, request.cell_id, server_settings, settings, cache=cache
    )


def post_process(
    suggestion: str, request: InlineCompletionRequest, *, markdown: bool = False
) -> str:
    """The suggestion fit to insert at the request's cursor (see ``server.completion``)."""
    return core.post_process(suggestion, request.prefix, request.suffix, markdown=markdown)


def _error(exc: BaseException, provider: Any = None) -> CompletionError:
    """A one-line error for the client, never a traceback nor an API key."""
    from jupyter_ai_vision.llm.error_messages import secrets_of, user_message

    title = user_message(exc, secrets=secrets_of(provider))
    return CompletionError(type=type(exc).__name__, title=title, traceback="")


def _superseded_by_newer(provider: Any, request: InlineCompletionRequest) -> Any:
    return SUPERSESSION.register(provider, request.path, request.cell_id)


async def generate(
    provider: Any,
    request: InlineCompletionRequest,
    *,
    server_settings: Mapping[str, Any] | None = None,
) -> InlineCompletionReply:
    """One completion (non-streaming). Never raises for bad input: an empty or plain
    completion, or an empty list with a one-line error when the model call failed."""
    superseded = _superseded_by_newer(provider, request)
    try:
        prompt = await unless_superseded(
            build_prompt(provider, request, server_settings=server_settings), superseded
        )
        message = await unless_superseded(provider.ainvoke(prompt.messages, stop=STOP), superseded)
    except Superseded:
        return _reply(request, "")
    except Exception as exc:
        log.info("Inline completion failed: %s", type(exc).__name__)
        return InlineCompletionReply(
            list=InlineCompletionList(items=[]),
            reply_to=request.number,
            error=_error(exc, provider),
        )
    return _reply(request, post_process(reply_text(message), request, markdown=prompt.markdown))


def _reply(request: InlineCompletionRequest, text: str) -> InlineCompletionReply:
    return InlineCompletionReply(
        list=InlineCompletionList(items=[InlineCompletionItem(insertText=text)]),
        reply_to=request.number,
    )


async def stream(
    provider: Any,
    request: InlineCompletionRequest,
    *,
    server_settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[InlineCompletionReply | InlineCompletionStreamChunk]:
    """An opening reply (``isIncomplete``, a unique token), then chunks; ``done`` on the last.

    Each chunk carries the whole post-processed suggestion so far (as jupyter-ai does).
    A request superseded by a newer one for the same cell ends at once with what it has,
    closing the model stream.
    """
    superseded = _superseded_by_newer(provider, request)
    token = f"t{request.number}-{uuid.uuid4().hex[:12]}"
    yield InlineCompletionReply(
        list=InlineCompletionList(
            items=[InlineCompletionItem(insertText="", isIncomplete=True, token=token)]
        ),
        reply_to=request.number,
    )
    text = ""
    error: CompletionError | None = None
    try:
        prompt = await unless_superseded(
            build_prompt(provider, request, server_settings=server_settings), superseded
        )
        async for text in _stream_text(provider, prompt, request, superseded):
            yield _chunk(request, token, text, done=False)
    except Superseded:
        pass
    except Exception as exc:
        log.info("Inline completion stream failed: %s", type(exc).__name__)
        error = _error(exc, provider)
    yield _chunk(request, token, text, done=True, error=error)


async def _stream_text(
    provider: Any, prompt: Prompt, request: InlineCompletionRequest, superseded: Any
) -> AsyncIterator[str]:
    """The post-processed suggestion so far, each time it changes."""
    raw = text = ""
    async with contextlib.aclosing(provider.astream(prompt.messages, stop=STOP)) as chunks:
        iterator = chunks.__aiter__()
        while True:
            try:
                chunk = await unless_superseded(iterator.__anext__(), superseded)
            except StopAsyncIteration:
                return
            raw += reply_text(chunk)
            new = post_process(raw, request, markdown=prompt.markdown)
            if new != text:
                text = new
                yield text


def _chunk(
    request: InlineCompletionRequest,
    token: str,
    text: str,
    *,
    done: bool,
    error: CompletionError | None = None,
) -> InlineCompletionStreamChunk:
    return InlineCompletionStreamChunk(
        response=InlineCompletionItem(insertText=text, token=token),
        reply_to=request.number,
        done=done,
        error=error,
    )
