"""Inline completions that read the live notebook.

The ``vision`` provider's ``generate_inline_completions`` / ``stream_inline_completions``
delegate here. A request carries the cell's prefix and suffix, the notebook path and the
cell id. We add a *window* of the notebook around that cell (preceding cells with their
text outputs and the most recent figure above the cursor, following cells' sources),
read from the live ``YNotebook`` when the notebook is open collaboratively, else from the
saved file (cached by modification time), else nothing: prefix and suffix only.
The window is turned into model input by the shared context builder.

Nothing here imports litellm, PIL or the builder at module level: the Jupyter server
imports the provider (and so may import this module) at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_ai_magics.models.completion import (
    CompletionError,
    InlineCompletionItem,
    InlineCompletionList,
    InlineCompletionReply,
    InlineCompletionRequest,
    InlineCompletionStreamChunk,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionSettings:
    """What the completer puts around prefix and suffix (read from the provider)."""

    images: bool = True  # send the most recent figure(s) above the cursor (vision models)
    context_cells: int = 5  # cells taken on each side of the cursor's cell
    max_images: int = 1  # image budget: count ...
    image_tokens: int = 1500  # ... and estimated image tokens
    max_edge: int = 768  # long edge of a sent figure, in pixels
    max_cell_chars: int = 4000  # a neighbouring cell's source is cut to this
    max_prefix_chars: int = 8000  # the frontend already caps at 10 000
    max_suffix_chars: int = 2000
    figure_lookback: int = 30  # cells above the window searched for the most recent figure


#: Provider attribute (or model parameter) -> CompletionSettings field.
SETTING_NAMES = {
    "completion_images": "images",
    "completion_context_cells": "context_cells",
    "completion_max_images": "max_images",
    "completion_image_tokens": "image_tokens",
}


def settings_for(provider: Any) -> CompletionSettings:
    """Settings from the provider's fields (``completion_*``), defaults otherwise."""
    defaults = CompletionSettings()
    values: dict[str, Any] = {}
    for attr, name in SETTING_NAMES.items():
        value = getattr(provider, attr, None)
        if value is None or value == "":
            continue
        try:
            values[name] = _coerce(value, type(getattr(defaults, name)))
        except ValueError:
            log.warning("Ignoring invalid %s=%r", attr, value)
    values["context_cells"] = max(0, min(values.get("context_cells", 5), 50))
    values["max_images"] = max(0, min(values.get("max_images", 1), 4))
    return CompletionSettings(**values)


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, str):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if value.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return bool(value)
    return kind(value)


# ---------------------------------------------------------------------------
# Reading the notebook window
# ---------------------------------------------------------------------------


@dataclass
class Window:
    """Cells around the cursor's cell, as nbformat v4 dicts (focus cell included)."""

    cells: list[dict[str, Any]]
    focus: int  # index of the cursor's cell in ``cells``
    focus_cell_index: int  # its index in the whole notebook
    cell_type: str  # of the cursor's cell
    origin: str  # "live" | "file"
    metadata: dict[str, Any] = field(default_factory=dict)


_SAFE_PATH = re.compile(r"^[^\x00\\:~]+$")


def safe_relative_path(path: str | None) -> PurePosixPath | None:
    """The request's path if it names a notebook inside the server root, else None."""
    if not path or not _SAFE_PATH.match(path):
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or pure.suffix != ".ipynb":
        return None
    if any(part in ("..", "") or part.startswith(".") for part in pure.parts):
        return None
    return pure


def _has_figure(cell: Mapping[str, Any]) -> bool:
    for output in cell.get("outputs") or ():
        data = output.get("data") if isinstance(output, Mapping) else None
        if not isinstance(data, Mapping):
            continue
        if any(k.startswith("image/") or "vegalite" in k or "plotly" in k for k in data):
            return True
        html = data.get("text/html")
        if html and "data:image/" in ("".join(html) if isinstance(html, list) else str(html)):
            return True
    return False


def _window_indices(
    n_cells: int, focus: int, settings: CompletionSettings, has_figure: Any
) -> tuple[list[int], int | None]:
    """Indices of the window, plus the nearest figure cell above it (if outside)."""
    start = max(0, focus - settings.context_cells)
    stop = min(n_cells, focus + settings.context_cells + 1)
    indices = list(range(start, stop))
    extra = None
    if settings.images and not any(has_figure(i) for i in range(start, focus)):
        # the most recent figure above the cursor may lie further up (bounded: ~0.07 ms/cell)
        for i in range(start - 1, max(-1, start - 1 - settings.figure_lookback), -1):
            if has_figure(i):
                extra = i
                break
    return indices, extra


def window_from_ynotebook(ynb: Any, cell_id: str, settings: CompletionSettings) -> Window | None:
    """Read only the cells around ``cell_id`` from a live ``YNotebook`` (never mutates it).

    Runs without awaiting, so the copy is consistent with the document at one instant.
    """
    ycells = ynb.ycells
    focus = None
    for i, ycell in enumerate(ycells):
        if ycell.get("id") == cell_id:
            focus = i
            break
    if focus is None:
        return None

    def has_figure(i: int) -> bool:
        outputs = ycells[i].get("outputs")
        if outputs is None or len(outputs) == 0:
            return False
        return _has_figure({"outputs": outputs.to_py()})

    indices, extra = _window_indices(len(ycells), focus, settings, has_figure)
    if extra is not None:
        indices.insert(0, extra)
    cells = [ynb.get_cell(i) for i in indices]
    meta = ynb.ymeta.to_py() if hasattr(ynb, "ymeta") else {}
    return Window(
        cells=cells,
        focus=indices.index(focus),
        focus_cell_index=focus,
        cell_type=str(cells[indices.index(focus)].get("cell_type", "code")),
        origin="live",
        metadata=dict((meta or {}).get("metadata") or {}),
    )


def window_from_cells(
    cells: Sequence[Mapping[str, Any]],
    cell_id: str,
    settings: CompletionSettings,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Window | None:
    """The same window, from a list of nbformat cell dicts (the saved file)."""
    focus = next((i for i, c in enumerate(cells) if c.get("id") == cell_id), None)
    if focus is None:
        return None
    indices, extra = _window_indices(len(cells), focus, settings, lambda i: _has_figure(cells[i]))
    if extra is not None:
        indices.insert(0, extra)
    window = [dict(cells[i]) for i in indices]
    return Window(
        cells=window,
        focus=indices.index(focus),
        focus_cell_index=focus,
        cell_type=str(window[indices.index(focus)].get("cell_type", "code")),
        origin="file",
        metadata=dict(metadata or {}),
    )


class SavedNotebookCache:
    """Parsed saved notebooks keyed by path, valid while (mtime, size) are unchanged."""

    def __init__(self, max_entries: int = 8, max_file_bytes: int = 50_000_000) -> None:
        self.max_entries = max_entries
        self.max_file_bytes = max_file_bytes
        self._entries: OrderedDict[str, tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a file was actually parsed (tests, benchmark)

    def get(self, path: Path) -> dict[str, Any] | None:
        """The notebook's JSON, or None when missing, too large or not a notebook."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if not path.is_file() or stat.st_size > self.max_file_bytes:
            return None
        key, stamp = str(path), (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == stamp:
                self._entries.move_to_end(key)
                return hit[1]
        try:
            with path.open("rb") as f:
                nb = json.load(f)
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            return None
        with self._lock:
            self.loads += 1
            self._entries[key] = (stamp, nb)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return nb


SAVED_NOTEBOOKS = SavedNotebookCache()


def _root_dir(server_settings: Mapping[str, Any]) -> Path | None:
    root = server_settings.get("server_root_dir")
    if not root:
        cm = server_settings.get("contents_manager")
        root = getattr(cm, "root_dir", None)
    return Path(os.path.expanduser(str(root))).resolve() if root else None


async def live_ynotebook(server_settings: Mapping[str, Any], path: str) -> Any | None:
    """The server's live YNotebook for ``path`` (see :func:`notebooks.live_document`), or None;
    a room that failed to load must not break completion."""
    from jupyter_ai_vision.server import notebooks

    try:
        ynb = await notebooks.live_document(server_settings, path)
    except Exception as exc:
        log.debug("No live notebook for %s: %s", path, exc)
        return None
    return ynb if hasattr(ynb, "ycells") else None


async def read_window(
    request: InlineCompletionRequest,
    server_settings: Mapping[str, Any] | None,
    settings: CompletionSettings,
    *,
    cache: SavedNotebookCache = SAVED_NOTEBOOKS,
) -> Window | None:
    """The window from the live notebook, else the saved file, else None."""
    rel = safe_relative_path(request.path)
    if rel is None or not request.cell_id or not server_settings:
        return None
    ynb = await live_ynotebook(server_settings, str(rel))
    if ynb is not None:
        return window_from_ynotebook(ynb, request.cell_id, settings)
    root = _root_dir(server_settings)
    if root is None:
        return None
    full = (root / rel).resolve()
    if not full.is_relative_to(root):  # a symlink out of the root
        return None
    loop = asyncio.get_running_loop()
    nb = await loop.run_in_executor(None, cache.get, full)
    if nb is None:
        return None
    return window_from_cells(
        nb["cells"], request.cell_id, settings, metadata=nb.get("metadata") or {}
    )


# ---------------------------------------------------------------------------
# Prompt assembly
# ---------------------------------------------------------------------------

CODE_SYSTEM_PROMPT = (
    "You are an application built to provide helpful code completion suggestions in "
    "JupyterLab. You only produce the code that goes at the cursor: no explanations, no "
    "markdown fences, no repetition of the code before or after the cursor. Keep comments "
    "to a minimum and use the language's comment syntax. The notebook cells and outputs "
    "you are shown (including figures) are context for the completion: use the variable "
    "names, columns and results they show."
)

MARKDOWN_SYSTEM_PROMPT = (
    "You are an application built to provide helpful writing suggestions in a markdown "
    "cell of a Jupyter notebook. You only produce the markdown text that goes at the "
    "cursor: no explanations, no code fences around your answer, no repetition of the "
    "text before or after the cursor. The notebook cells, outputs and figures you are "
    "shown are context: describe what they show accurately."
)

FOCUS_PLACEHOLDER = "[this is the cell being completed; its text is given below]"


def is_markdown(request: InlineCompletionRequest, window: Window | None = None) -> bool:
    """Markdown cells get markdown completions."""
    if window is not None:
        return window.cell_type == "markdown"
    language = (request.language or "").lower()
    mime = (request.mime or "").lower()
    return language in ("markdown", "ipythongfm") or "markdown" in mime or "gfm" in mime


def _clip_source(cell: dict[str, Any], max_chars: int, *, keep_end: bool) -> None:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    if len(source) > max_chars:
        note = f"[... {len(source) - max_chars} characters cut ...]"
        source = note + "\n" + source[-max_chars:] if keep_end else source[:max_chars] + "\n" + note
    cell["source"] = source


def prepare_window(window: Window, settings: CompletionSettings) -> dict[str, Any]:
    """The window as a small nbformat notebook for the context builder.

    The cursor's cell is replaced by a placeholder (its text comes from the request,
    which is fresher); cells below keep their sources only, so only figures above the
    cursor can be chosen; long sources are cut.
    """
    cells: list[dict[str, Any]] = []
    for i, original in enumerate(window.cells):
        cell = dict(original)
        if i == window.focus:
            cell["source"] = FOCUS_PLACEHOLDER
        else:
            _clip_source(cell, settings.max_cell_chars, keep_end=i < window.focus)
        if i >= window.focus:  # nothing visual from the cursor's cell or below it
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
            cell.pop("attachments", None)
        cells.append(cell)
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": window.metadata,
        "cells": cells,
    }


def image_policy(settings: CompletionSettings) -> Any:
    """A small image budget for completions (inline completion is latency-bound)."""
    from jupyter_ai_vision.context.budget import ImagePolicy

    return ImagePolicy(
        max_images=settings.max_images,
        max_image_tokens=settings.image_tokens,
        max_edge=settings.max_edge,
    )


def provider_supports_images(provider: Any) -> bool:
    """Only models known to take images get figures: a completion must not fail on them."""
    check = getattr(provider, "supports_images", None)
    if check is None:
        return False
    try:
        return check() is True
    except Exception:
        return False


def _filename(request: InlineCompletionRequest) -> str:
    return request.path.split("/")[-1] if request.path else "untitled"


def completion_instruction(
    request: InlineCompletionRequest, settings: CompletionSettings, *, markdown: bool
) -> str:
    """The text asking for the completion (jupyter-ai's template, with notebook context)."""
    prefix = request.prefix[-settings.max_prefix_chars :]
    suffix = request.suffix[: settings.max_suffix_chars].strip()
    what = "text" if markdown else "code"
    language = "markdown" if markdown else (request.language or "python")
    lines = [f"The document is called `{_filename(request)}` and written in {language}."]
    if suffix:
        lines += [f"\nThe {what} after the completion request is:\n", "```", suffix, "```"]
    lines += [f"\nComplete the following {what}:\n", "```", prefix]
    return "\n".join(lines)


@dataclass
class Prompt:
    """The messages for the model and what went into them."""

    messages: list[Any]
    origin: str  # "live" | "file" | "none"
    markdown: bool
    images: int = 0
    context_cells: int = 0


async def build_prompt(
    provider: Any,
    request: InlineCompletionRequest,
    *,
    server_settings: Mapping[str, Any] | None = None,
    settings: CompletionSettings | None = None,
    window: Window | None = None,
) -> Prompt:
    """Messages for one completion; any failure reading the notebook -> prefix/suffix only."""
    from langchain_core.messages import HumanMessage, SystemMessage

    settings = settings or settings_for(provider)
    if server_settings is None:
        server_settings = getattr(provider, "server_settings", None)
    if window is None:
        try:
            window = await read_window(request, server_settings, settings)
        except Exception as exc:
            log.debug("Completion context unavailable for %s: %s", request.path, exc)
            window = None
    markdown = is_markdown(request, window)
    instruction = completion_instruction(request, settings, markdown=markdown)
    system = MARKDOWN_SYSTEM_PROMPT if markdown else CODE_SYSTEM_PROMPT
    if window is None or len(window.cells) <= 1:
        return Prompt(
            [SystemMessage(content=system), HumanMessage(content=instruction)],
            origin="none",
            markdown=markdown,
        )
    try:
        ctx = await _context(provider, request, window, settings)
    except Exception as exc:  # the builder rejecting a notebook must not break completion
        log.warning(
            "Completion context failed for %s (%s): %s", request.path, type(exc).__name__, exc
        )
        return Prompt(
            [SystemMessage(content=system), HumanMessage(content=instruction)],
            origin="none",
            markdown=markdown,
        )
    messages = ctx.to_langchain_messages(instruction, system=system)
    return Prompt(
        messages,
        origin=window.origin,
        markdown=markdown,
        images=len(ctx.images),
        context_cells=len(window.cells) - 1,
    )


async def _context(
    provider: Any, request: InlineCompletionRequest, window: Window, settings: CompletionSettings
) -> Any:
    from jupyter_ai_vision.context import builder

    images = settings.images and settings.max_images > 0 and provider_supports_images(provider)
    return await builder.build_context_async(
        prepare_window(window, settings),
        focus=window.focus,
        model=getattr(provider, "model_id", None),
        policy=image_policy(settings),
        supports_images=images,
        path=request.path,
    )


# ---------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------

_OPENING_FENCE = re.compile(r"^\s*```[\w+.#-]*[ \t]*(\n|$)")


def post_process(
    suggestion: str, request: InlineCompletionRequest, *, markdown: bool = False
) -> str:
    """Remove code fences, a repeated prefix and a duplicated suffix from a suggestion."""
    text = suggestion
    fenced = _OPENING_FENCE.match(text)
    if fenced:
        text = text[fenced.end() :]
        # the closing fence and anything after it (explanations) go too
        close = text.find("\n```") if not markdown else text.rfind("\n```")
        if close != -1:
            text = text[:close]
        elif text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    elif not markdown and text.rstrip().endswith("\n```"):
        text = text.rstrip()[:-4]
    text = _strip_repeated_prefix(text, request.prefix)
    text = _strip_duplicated_suffix(text, request.suffix)
    return text if text.strip() else ""


def _strip_repeated_prefix(text: str, prefix: str) -> str:
    if not prefix:
        return text
    if text.startswith(prefix):
        return text[len(prefix) :]
    # the model often repeats the line being typed
    line = prefix.rsplit("\n", 1)[-1]
    if len(line.strip()) >= 2:
        if text.startswith(line):
            return text[len(line) :]
        stripped = line.lstrip()
        if text.startswith(stripped) and len(stripped) < len(text):
            return text[len(stripped) :]
    return text


_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _strip_duplicated_suffix(text: str, suffix: str) -> str:
    suffix = suffix.strip()
    if not suffix or not text:
        return text
    body = text.rstrip()
    if body.endswith(suffix) and not _only_closers(suffix):
        return body[: -len(suffix)]
    # the suggestion's tail repeats the first line(s) of the suffix
    lines = suffix.split("\n")
    for n in range(len(lines), 0, -1):
        head = "\n".join(lines[:n]).rstrip()
        if not head or not body.endswith(head):
            continue
        # ")" after "g(x)" is the suggestion's own bracket, not a copy of the suffix's
        if _only_closers(head) and not _over_closed(body, head):
            continue
        return body[: -len(head)]
    return text


def _only_closers(text: str) -> bool:
    return all(ch in _CLOSERS or ch in ",;: \t" for ch in text)


def _over_closed(body: str, head: str) -> bool:
    """True when ``body`` closes more brackets of each kind in ``head`` than it opens."""
    return all(
        body.count(ch) - body.count(_CLOSERS[ch]) >= head.count(ch)
        for ch in set(head)
        if ch in _CLOSERS
    )


# ---------------------------------------------------------------------------
# Superseded requests
# ---------------------------------------------------------------------------


class Supersession:
    """Tracks the newest request per (provider, path, cell).

    JupyterLab sends a new request at every pause in typing and drops replies to older
    ones: an older request still waiting on the model is cancelled (its model call or
    stream is closed) so it does not hold up the newer one or waste tokens.
    """

    def __init__(self, max_tracked: int = 1024) -> None:
        self.max_tracked = max_tracked
        self._latest: OrderedDict[tuple[Any, ...], asyncio.Event] = OrderedDict()

    def register(self, provider: Any, request: InlineCompletionRequest) -> asyncio.Event:
        """Mark ``request`` as the newest for its cell; returns the event set when a
        newer one arrives."""
        key = (id(provider), request.path, request.cell_id)
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


async def _unless_superseded(awaitable: Any, superseded: asyncio.Event) -> Any:
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


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

STOP = ["\n```"]


def _error(exc: BaseException, provider: Any = None) -> CompletionError:
    """A one-line error for the client, never a traceback nor an API key."""
    secrets: list[Any] = []
    for name in ("api_key", "openai_api_key"):
        value: Any = getattr(provider, name, None)
        secrets.append(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    try:
        from jupyter_ai_vision.llm.error_messages import user_message

        title = user_message(exc, secrets=[s for s in secrets if isinstance(s, str)])
    except Exception:
        title = f"Completion failed ({type(exc).__name__}); check the model settings."
    return CompletionError(type=type(exc).__name__, title=title, traceback="")


#: The vision provider appends a note for the chat when it had to drop images; in a
#: completion it would be inserted into the user's code, so it is removed.
_PROVIDER_NOTE = re.compile(r"\n\n_Images were not sent:[\s\S]*_\s*$")


def _without_note(text: str) -> str:
    return _PROVIDER_NOTE.sub("", text)


def _text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content or "")


def _without_images(messages: list[Any]) -> list[Any]:
    """The same messages with image parts dropped (retry for models that refuse images)."""
    out = []
    for m in messages:
        if isinstance(m.content, list):
            parts = [
                p for p in m.content if not (isinstance(p, dict) and p.get("type") == "image_url")
            ]
            m = m.model_copy(update={"content": parts})
        out.append(m)
    return out


def _refuses_images(exc: BaseException) -> bool:
    from jupyter_ai_vision.llm.error_messages import images_refused

    return images_refused(exc)


async def generate(
    provider: Any,
    request: InlineCompletionRequest,
    *,
    server_settings: Mapping[str, Any] | None = None,
) -> InlineCompletionReply:
    """One completion (non-streaming). Never raises for bad input: an empty or plain
    completion, or an empty list with a one-line error when the model call failed."""
    superseded = SUPERSESSION.register(provider, request)
    try:
        prompt = await _unless_superseded(
            build_prompt(provider, request, server_settings=server_settings), superseded
        )
        message = await _invoke(provider, prompt, superseded)
    except Superseded:
        return _reply(request, "")
    except Exception as exc:
        log.info("Inline completion failed: %s", type(exc).__name__)
        return InlineCompletionReply(
            list=InlineCompletionList(items=[]),
            reply_to=request.number,
            error=_error(exc, provider),
        )
    text = _without_note(_text(message))
    return _reply(request, post_process(text, request, markdown=prompt.markdown))


async def _invoke(provider: Any, prompt: Prompt, superseded: asyncio.Event) -> Any:
    try:
        return await _unless_superseded(provider.ainvoke(prompt.messages, stop=STOP), superseded)
    except Superseded:
        raise
    except Exception as exc:
        if not (prompt.images and _refuses_images(exc)):
            raise
        messages = _without_images(prompt.messages)
        return await _unless_superseded(provider.ainvoke(messages, stop=STOP), superseded)


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
    superseded = SUPERSESSION.register(provider, request)
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
        prompt = await _unless_superseded(
            build_prompt(provider, request, server_settings=server_settings), superseded
        )
        try:
            async for text in _stream_text(provider, prompt, request, superseded):
                yield _chunk(request, token, text, done=False)
        except Exception as exc:
            if text or not (prompt.images and _refuses_images(exc)):
                raise
            prompt.messages, prompt.images = _without_images(prompt.messages), 0
            async for text in _stream_text(provider, prompt, request, superseded):
                yield _chunk(request, token, text, done=False)
    except Superseded:
        pass
    except Exception as exc:
        log.info("Inline completion stream failed: %s", type(exc).__name__)
        error = _error(exc, provider)
    yield _chunk(request, token, text, done=True, error=error)


async def _stream_text(
    provider: Any, prompt: Prompt, request: InlineCompletionRequest, superseded: asyncio.Event
) -> AsyncIterator[str]:
    """The post-processed suggestion so far, each time it changes."""
    raw = text = ""
    async with contextlib.aclosing(provider.astream(prompt.messages, stop=STOP)) as chunks:
        iterator = chunks.__aiter__()
        while True:
            try:
                chunk = await _unless_superseded(iterator.__anext__(), superseded)
            except StopAsyncIteration:
                return
            raw += _text(chunk)
            new = post_process(_without_note(raw), request, markdown=prompt.markdown)
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
