"""Superseded requests: JupyterLab sends a new completion request at every pause in typing and
drops the replies to older ones, so an older request still waiting on the model is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any


class Supersession:
    """Tracks the newest request per (provider, path, cell).

    JupyterLab sends a new request at every pause in typing and drops replies to older
    ones: an older request still waiting on the model is cancelled (its model call or
    stream is closed) so it does not hold up the newer one or waste tokens.
    """

    def __init__(self, max_tracked: int = 1024) -> None:
        self.max_tracked = max_tracked
        self._latest: OrderedDict[tuple[Any, ...], asyncio.Event] = OrderedDict()

    def register(self, owner: Any, path: str | None, cell_id: str | None) -> asyncio.Event:
        """Mark a request as the newest for its (``owner``, ``path``, ``cell_id``); returns
        the event set when a newer one arrives."""
        key = (id(owner), path, cell_id)
        previous = self._latest.pop(key, None)
        if previous is not None:
            previous.set()
        event = asyncio.Event()
        self._latest[key] = event
        while len(self._latest) > self.max_tracked:
            self._latest.popitem(last=False)[1].set()
        return event

    def __len__(self) -> int:
        return len(self._latest)


SUPERSESSION = Supersession()


class Superseded(Exception):
    """A newer request for the same cell arrived."""


async def unless_superseded(awaitable: Any, superseded: asyncio.Event) -> Any:
    """Await ``awaitable``, cancelling it (and raising Superseded) if a newer request comes."""
    if superseded.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise Superseded
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(superseded.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():
        raise Superseded
    return task.result()
