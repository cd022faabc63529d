"""The one retry policy for model calls, and the one way a failure is made fit to show.

Only rate limits (429), 5xx answers and timeouts are retried (``error_messages.is_retryable``),
at most ``max_retries`` times with :data:`RETRY_BACKOFF`, and only for the call that opens a
request: once a stream has produced tokens, a failure is final (the user has seen part of the
answer): :func:`read_stream` / :func:`aread_stream` read an opened stream. Used by the LangChain chat model, the embeddings and :func:`llm.stream.stream_chat`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable
from typing import Any, TypeVar

from jupyter_ai_vision.errors import ModelError
from jupyter_ai_vision.llm import error_messages
from jupyter_ai_vision.llm._litellm import close_async, close_sync

T = TypeVar("T")

#: Backoff before retry n (seconds); ``max_retries`` may not exceed its length.
RETRY_BACKOFF = (0.25, 1.0, 2.0, 4.0)

Secrets = Iterable[str | None]


def fail(exc: BaseException, secrets: Secrets = ()) -> BaseException:
    """``exc``, shown as one line in a notebook (IPython's ``_render_traceback_``) without any
    key. The exception itself is kept (callers may catch LiteLLM's classes)."""
    line = error_messages.user_message(exc, secrets=secrets)
    with contextlib.suppress(AttributeError, TypeError):  # e.g. C-level exceptions
        exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


def model_error(exc: BaseException, secrets: Secrets = ()) -> ModelError:
    """``exc`` as our own :class:`~jupyter_ai_vision.errors.ModelError` (``str`` = the line)."""
    key = error_messages.class_key(type(exc))
    status = getattr(exc, "status_code", None)
    return ModelError(
        error_messages.user_message(exc, secrets=secrets),
        kind=key,
        status_code=status if isinstance(status, int) else None,
        images_refused=error_messages.images_refused(exc),
    )


def _should_retry(exc: BaseException, attempt: int, max_retries: int) -> bool:
    return attempt < max_retries and error_messages.is_retryable(exc)


def with_retries(fn: Callable[[], T], max_retries: int, secrets: Secrets = ()) -> T:
    """``fn()``, retried per the policy; the final failure goes through :func:`fail`."""
    secrets = list(secrets)
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as exc:
            if not _should_retry(exc, attempt, max_retries):
                raise fail(exc, secrets) from None
            time.sleep(RETRY_BACKOFF[attempt])
    raise AssertionError("unreachable")


async def awith_retries(
    fn: Callable[[], Awaitable[T]], max_retries: int, secrets: Secrets = ()
) -> T:
    """``await fn()``, retried per the policy; the final failure goes through :func:`fail`."""
    secrets = list(secrets)
    for attempt in range(max_retries + 1):
        try:
            return await fn()
        except Exception as exc:
            if not _should_retry(exc, attempt, max_retries):
                raise fail(exc, secrets) from None
            await asyncio.sleep(RETRY_BACKOFF[attempt])
    raise AssertionError("unreachable")


def read_stream(stream: Any, secrets: Secrets = ()) -> Generator[Any, None, None]:
    """The raw chunks of an opened litellm stream. A failure now is final (through
    :func:`fail`); the stream is closed however reading ends, so an early stop drops the HTTP
    connection and the model server stops generating."""
    try:
        yield from stream
    except Exception as exc:
        raise fail(exc, secrets) from None
    finally:
        close_sync(stream)


async def aread_stream(stream: Any, secrets: Secrets = ()) -> AsyncGenerator[Any, None]:
    """:func:`read_stream` for an async litellm stream (close it with ``aclosing``)."""
    try:
        async for raw in stream:
            yield raw
    except Exception as exc:
        raise fail(exc, secrets) from None
    finally:
        await close_async(stream)
