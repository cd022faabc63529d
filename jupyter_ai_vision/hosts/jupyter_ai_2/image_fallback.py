"""What the 2.x provider does when images cannot go to the model, and how it tells the user.

Two cases: the model is known not to take images (they are replaced by text stubs before the
call), or the model refuses them (the call is made again with stubs, once, only if nothing
was produced yet). Either way the reply carries *notes*: machine-readable in the message's
``response_metadata[NOTES_KEY]`` (and ``generation_info``), and shown to the user as an
italic paragraph after the answer. Code that wants the model's own words only (inline
completion) uses :func:`reply_text`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from jupyter_ai_vision.llm import error_messages

T = TypeVar("T")
Messages = list[BaseMessage]

#: ``response_metadata`` / ``generation_info`` key: the reply's notes, a list of one-liners.
NOTES_KEY = "vision_notes"

NOT_SENT = (
    "Images were not sent: {model} does not accept images according to LiteLLM, so figures "
    "went as text descriptions. If it does take images, set supports_vision to true in the "
    'chat settings, or add -m {{"supports_vision":true}} to %%ai.'
)
REFUSED = (
    "Images were not sent: {model} refused them, so the question was asked again with text "
    "descriptions. Pick a vision model (e.g. vision:openai/gpt-4o) to include figures."
)


# The wire format (context/messages.py) is imported on first use: the Jupyter server imports
# the provider, and so this module, at start-up.
def has_images(messages: Sequence[BaseMessage]) -> bool:
    from jupyter_ai_vision.context import messages as wire

    return any(wire.has_images(m.content) for m in messages)


def strip_images(messages: Sequence[BaseMessage]) -> Messages:
    """Copies of ``messages`` with each image part replaced by the wire format's text stub."""
    from jupyter_ai_vision.context import messages as wire

    return [
        m.model_copy(update={"content": wire.strip_images(m.content)})
        if wire.has_images(m.content)
        else m
        for m in messages
    ]


def _refused(exc: BaseException, messages: Messages) -> bool:
    return error_messages.images_refused(exc) and has_images(messages)


# ----- the refusal retry: one helper per sync / async pair -----------------------------------
def fallback(
    model: str,
    messages: Messages,
    notes: list[str],
    run: Callable[[Messages], Generator[T, None, None]],
) -> Iterator[T]:
    """``run(messages)``'s items; if the model refuses the images before the first item, the
    items of ``run`` on the messages with stubs instead (and a note in ``notes``)."""
    started = False
    try:
        with contextlib.closing(run(messages)) as items:
            for item in items:
                started = True
                yield item
        return
    except Exception as exc:
        if started or not _refused(exc, messages):
            raise
    notes.append(REFUSED.format(model=model))
    with contextlib.closing(run(strip_images(messages))) as items:
        yield from items


async def afallback(
    model: str,
    messages: Messages,
    notes: list[str],
    run: Callable[[Messages], AsyncGenerator[T, None]],
) -> AsyncGenerator[T, None]:
    """:func:`fallback` for async streams. ``aclosing``: when the consumer stops (the chat's
    stop button), the upstream HTTP stream is closed now, not when it is garbage-collected."""
    started = False
    try:
        async with contextlib.aclosing(run(messages)) as items:
            async for item in items:
                started = True
                yield item
        return
    except Exception as exc:
        if started or not _refused(exc, messages):
            raise
    notes.append(REFUSED.format(model=model))
    async with contextlib.aclosing(run(strip_images(messages))) as items:
        async for item in items:
            yield item


def once(call: Callable[[Messages], T]) -> Callable[[Messages], Generator[T, None, None]]:
    """A one-item stream of ``call``'s result (so non-streaming calls share :func:`fallback`)."""

    def run(messages: Messages) -> Generator[T, None, None]:
        yield call(messages)

    return run


def aonce(
    call: Callable[[Messages], Awaitable[T]],
) -> Callable[[Messages], AsyncGenerator[T, None]]:
    """:func:`once` for coroutines."""

    async def run(messages: Messages) -> AsyncGenerator[T, None]:
        yield await call(messages)

    return run


# ----- notes on the reply ------------------------------------------------------------------
def _display(notes: Sequence[str]) -> str:
    """How the chat and ``%%ai`` show the notes: an italic paragraph after the answer."""
    return "\n\n_" + "\n".join(notes) + "_"


def notes_chunk(notes: list[str]) -> ChatGenerationChunk:
    """The last chunk of a stream whose reply has notes."""
    message = AIMessageChunk(content=_display(notes), response_metadata={NOTES_KEY: notes})
    return ChatGenerationChunk(message=message, generation_info={NOTES_KEY: notes})


def with_notes(result: ChatResult, notes: list[str]) -> ChatResult:
    """``result`` with ``notes`` on its first generation (metadata, and shown after the text)."""
    if not notes or not result.generations:
        return result
    first = result.generations[0]
    message = first.message.model_copy(
        update={
            "content": f"{first.message.content}{_display(notes)}",
            "response_metadata": {**first.message.response_metadata, NOTES_KEY: notes},
        }
    )
    # a new ChatGeneration: its .text is computed from the message at construction
    info = {**(first.generation_info or {}), NOTES_KEY: notes}
    generation = ChatGeneration(message=message, generation_info=info)
    return ChatResult(
        generations=[generation, *result.generations[1:]], llm_output=result.llm_output
    )


def reply_text(message: Any) -> str:
    """The model's own text of a reply, a merged stream or one chunk: the content without the
    notes paragraph ("" for the notes chunk itself)."""
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks (other providers)
        text = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    else:
        text = str(content or "")
    notes = (getattr(message, "response_metadata", None) or {}).get(NOTES_KEY)
    if notes:
        text = text.removesuffix(_display(notes))
    return text
