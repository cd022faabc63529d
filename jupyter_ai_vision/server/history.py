"""Which source produced each output: the kernel's input history, for stale figures.

One ``history_request`` (a protocol message: no code runs in the kernel, the user's or ours)
asks for the inputs under the execution counts the notebook shows. Answers are cached per
kernel and highest count, so repeated questions about an unchanged notebook cost nothing; no
kernel, no request. Whatever goes wrong (busy, dead, old kernel without history) the answer is
None and nothing is said about staleness: a guess would be worse than silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision.errors import KernelQueryError
from jupyter_ai_vision.server.kernels import shell_client

log = logging.getLogger(__name__)

#: (kernel identity, highest count asked, counts asked) -> {count: source}
_cache: LRU[tuple[Any, int, frozenset[int]], dict[int, str]] = LRU(max_items=64)
#: most inputs asked for at once (a notebook's cells; a history range is one message)
MAX_COUNTS = 5_000


def kernel_key(kernel: Any) -> Any:
    """Who answers for a kernel's history: its id and process (None for no kernel)."""
    if kernel is None:
        return None
    # A restarted kernel keeps its id (and key) but is a new process that counts from 1.
    process = getattr(getattr(kernel, "provisioner", None), "pid", None)
    return (getattr(kernel, "kernel_id", None) or id(kernel), process)


async def executed_sources(
    kernel: Any, counts: Iterable[int], *, timeout: float = 2.0
) -> dict[int, str] | None:
    """``{execution count: the source that ran under it}`` for ``counts``, or None when the
    kernel cannot say (then nothing is said about staleness)."""
    wanted = frozenset(c for c in counts if isinstance(c, int) and c > 0)
    if not wanted or kernel is None:
        return None
    if len(wanted) > MAX_COUNTS:
        wanted = frozenset(sorted(wanted)[-MAX_COUNTS:])
    key = (kernel_key(kernel), max(wanted), wanted)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        history = await _history_range(kernel, min(wanted), max(wanted) + 1, timeout)
    except (KernelQueryError, TimeoutError, OSError, RuntimeError) as exc:
        log.debug("no input history from the kernel: %s", exc)
        return None
    if history is None:
        return None
    if max(wanted) not in history:
        # The kernel has not run as many cells as the notebook shows: it was restarted
        # since, and its counts name other inputs. Say nothing.
        return None
    sources = {c: history[c] for c in wanted if c in history}
    _cache.put(key, sources)
    return sources


async def _history_range(
    kernel: Any, start: int, stop: int, timeout: float
) -> dict[int, str] | None:
    async with shell_client(kernel, what="the input history") as client:
        reply = await asyncio.wait_for(
            client.history(
                raw=True,
                output=False,
                hist_access_type="range",
                session=0,
                start=start,
                stop=stop,
                reply=True,
                timeout=timeout,
            ),
            timeout + 0.5,
        )
    content = reply.get("content", {}) if isinstance(reply, Mapping) else {}
    if content.get("status") != "ok":
        return None
    out: dict[int, str] = {}
    for entry in content.get("history") or []:
        if isinstance(entry, (list, tuple)) and len(entry) >= 3:
            _session, count, source = entry[0], entry[1], entry[2]
            if isinstance(count, int) and isinstance(source, str):
                out[count] = source
    return out


def clear_cache() -> None:
    _cache.clear()
