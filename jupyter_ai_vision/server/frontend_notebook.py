"""The live notebook from the user's browser, when the server has no real-time collaboration.

Without jupyter-collaboration or jupyter-server-documents (Jupyter AI 3.2's default install)
the server holds no ``YNotebook``: unsaved edits and outputs live only in the browser's
notebook model. Jupyter AI 3.2 ships two pieces that reach it:

- **jupyterlab-commands-toolkit** (server extension + JupyterLab plugin): the server emits a
  Jupyter Event ``lab_command/v1`` ``{name, args, requestId[, client_id]}``; every browser
  subscribed to ``/api/events/subscribe`` (or only the one whose web client id is
  ``client_id``) runs the JupyterLab command and POSTs ``lab_command_result/v1``
  ``{requestId, success, result | error}`` back to ``/api/events``.
- **jupyterlab-ai-commands** (JupyterLab plugin): the command
  ``jupyterlab-ai-commands:get-notebook-content {notebookPath}`` answers
  ``{success, notebookPath, notebookName, content, isDirty}``, ``content`` being the notebook
  model's ``sharedModel.toJSON()``: nbformat JSON *with outputs* (images as base64). A tab
  that has the notebook open answers from its widget's model (``notebookPath`` is then the
  widget's canonical path); a tab without it loads the *saved file* into a throw-away model
  (without opening or activating anything) and echoes the ``notebookPath`` it was given.
  ``isDirty`` tells neither apart: a freshly loaded model is dirty too (JupyterLab fills in
  metadata), and an open notebook is dirty as soon as its kernel reports ``language_info``.
  So we ask for ``"/<path>"``: a canonical ``"<path>"`` in the answer means "open in that
  tab", an echoed ``"/<path>"`` means "the saved file".

We speak that event protocol ourselves instead of calling the toolkit's
``execute_command()``, which waits a fixed 10 s, adds a 0.1 s delay and keeps only the first
answer: with two tabs, a tab without the notebook (answering with the saved file) could win
over the tab holding the unsaved outputs. Here every answer to our request is looked at (a
tab with the notebook open wins; among several, the one with unsaved changes that ran a cell
last), and the wait is bounded (``timeout``, and a short grace once some tab has answered).
With no browser subscribed nothing is sent at all, and a request no browser answered is not
repeated for a while (until another browser subscribes). A notebook that does not exist on
the server is never asked for (the browser would show the user an error).

What a browser sends is untrusted notebook JSON, like a file: it is size-checked
(:func:`~jupyter_ai_vision.context.snapshot.check_notebook_size`), copied by a serialise/parse
round trip in a worker thread (huge integers become floats, as for files), and then goes
through the same snapshot normaliser as a notebook read from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_ai_vision import limits
from jupyter_ai_vision.errors import NotebookError, NotebookUnreadable
from jupyter_ai_vision.server.collaboration import collaboration

log = logging.getLogger(__name__)

#: the toolkit's event schemas (jupyterlab_commands_toolkit/events/*.yml)
COMMAND_SCHEMA = "https://events.jupyter.org/jupyterlab_command_toolkit/lab_command/v1"
RESULT_SCHEMA = "https://events.jupyter.org/jupyterlab_command_toolkit/lab_command_result/v1"
#: jupyterlab-ai-commands (0.4) commands
GET_CONTENT = "jupyterlab-ai-commands:get-notebook-content"
GET_INFO = "jupyterlab-ai-commands:get-notebook-info"

#: how long a browser may take to answer (a plot notebook answers in tens of ms)
DEFAULT_TIMEOUT = 4.0
#: once one tab has answered, how long the other tabs get
ANSWER_GRACE = 0.75
#: after a request no browser answered, how long the same subscribers are not asked again
NO_ANSWER_TTL = 30.0


@dataclass
class FrontendAnswer:
    """What the browsers said about one notebook."""

    path: str
    #: the notebook of a browser tab that has it open (nbformat dict, a private copy)
    notebook: dict[str, Any] | None = None
    #: "live" (``notebook`` is set) | "not open" (the tabs that answered have it not open)
    #: | "no browser" | "no answer"
    #: | "no such file" | "unavailable" (RTC on, toolkit not loaded, no event logger)
    #: | "failed" (the command failed in every browser that answered)
    status: str = "unavailable"
    #: whether that tab's model has unsaved changes (JupyterLab's dirty flag)
    dirty: bool = False
    answers: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class FrontendView:
    """The notebook a browser tab shows (``get-notebook-info`` on its current notebook)."""

    path: str
    active_cell_id: str | None
    dirty: bool


async def read_from_frontend(
    settings: Mapping[str, Any] | None,
    path: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str | None = None,
) -> dict[str, Any] | None:
    """The live notebook ``path`` (nbformat dict, outputs included) from a JupyterLab browser
    tab that has it open, or None.

    None when RTC is enabled (read the YNotebook instead), the commands toolkit is not
    loaded, no browser is connected or answered within ``timeout``, the file does not exist,
    or no tab has the notebook open (read the saved file). ``client_id`` (a chat message's
    ``metadata["web_client_id"]``, which the toolkit stamps) asks only that browser tab;
    without it, the tab an MCP tool call is routed to (jupyter-server-mcp's client routing),
    else every tab. Call it on the server's event loop. Raises
    :class:`~jupyter_ai_vision.errors.NotebookUnreadable` when the live notebook is over the
    notebook size limit.
    """
    answer = await query_frontend(settings, path, timeout=timeout, client_id=client_id)
    return answer.notebook


async def query_frontend(
    settings: Mapping[str, Any] | None,
    path: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str | None = None,
) -> FrontendAnswer:
    """:func:`read_from_frontend` with the reason when there is no notebook."""
    started = time.monotonic()
    answer = FrontendAnswer(path=_norm(path))
    channel = _channel(settings)
    if channel is None:
        return answer
    if not await _exists(settings, answer.path):
        # A browser asked for a missing file shows the user an error: never ask.
        answer.status = "no such file"
        return answer
    best: dict[str, Any] | None = None
    saved = False  # some tab answered with the saved file
    # Asked as "/<path>": a tab with the notebook open answers with its widget's canonical
    # path, a tab without it loads the saved file and echoes "/<path>" (see the module doc).
    asked = "/" + answer.path
    answers = channel.ask(GET_CONTENT, {"notebookPath": asked}, timeout, client_id)
    async with contextlib.aclosing(answers):
        async for data in answers:
            answer.answers += 1
            result = _result(data, answer, asked)
            if result is None:
                continue
            if result["notebookPath"] == asked:
                saved = True  # that tab has it not open: it read the saved file
            elif best is None or _rank(result) > _rank(best):
                # Several tabs with it open (each has its own model without RTC): the one
                # with unsaved changes that ran a cell last (execution counts are the
                # kernel's).
                best = result
    if best is not None:
        answer.notebook = await asyncio.to_thread(_private_copy, best["content"], answer.path)
        answer.status = "live"
        answer.dirty = best.get("isDirty") is True
    else:
        answer.status = (
            "not open" if saved else "failed" if answer.answers else channel.last_silence
        )
    answer.seconds = time.monotonic() - started
    log.debug(
        "frontend read of %s: %s, %d answer(s), %.3f s",
        answer.path,
        answer.status,
        answer.answers,
        answer.seconds,
    )
    return answer


async def viewed_in_frontend(
    settings: Mapping[str, Any] | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str | None = None,
) -> FrontendView | None:
    """The notebook a browser tab is showing, and its active cell, or None.

    ``client_id`` (the chat message's ``metadata["web_client_id"]``) picks the tab that sent
    the message; without it the first tab with a current notebook answers (ambiguous with
    several tabs).
    """
    channel = _channel(settings)
    if channel is None:
        return None
    answers = channel.ask(GET_INFO, {}, timeout, client_id)
    async with contextlib.aclosing(answers):
        async for data in answers:
            result = data.get("result") if data.get("success") is True else None
            if not isinstance(result, Mapping) or result.get("success") is not True:
                continue
            path, cell = result.get("notebookPath"), result.get("activeCellId")
            if isinstance(path, str) and path.endswith(".ipynb"):
                return FrontendView(
                    path=_norm(path),
                    active_cell_id=cell if isinstance(cell, str) and cell else None,
                    dirty=result.get("isDirty") is True,
                )
    return None


# ----- checks --------------------------------------------------------------------------------
def _rtc_enabled(settings: Mapping[str, Any]) -> bool:
    """Whether the server holds live documents (then they, not a browser, are the truth);
    any trace of an RTC extension counts, even one :func:`collaboration` cannot read."""
    if collaboration(settings) is not None:
        return True
    return settings.get("jupyter_server_ydoc") is not None or (
        settings.get("yroom_manager") is not None
    )


def _norm(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def _result(data: Mapping[str, Any], answer: FrontendAnswer, asked: str) -> dict[str, Any] | None:
    """The command's result when it is this notebook's content, else None (noted)."""
    result = data.get("result")
    if data.get("success") is not True or not isinstance(result, dict):
        error = data.get("error")
        answer.errors.append(str(error)[:200] if error else "the command failed")
        return None
    if result.get("success") is not True or not isinstance(result.get("content"), dict):
        answer.errors.append("no notebook content in the answer")
        return None
    if result.get("notebookPath") not in (asked, answer.path):
        answer.errors.append("the answer is about another notebook")
        return None
    return result


def _rank(result: Mapping[str, Any]) -> tuple[bool, int]:
    return result.get("isDirty") is True, _last_run(result["content"])


def _last_run(content: Mapping[str, Any]) -> int:
    cells = content.get("cells")
    counts = (
        [c.get("execution_count") for c in cells if isinstance(c, Mapping)]
        if isinstance(cells, list)
        else []
    )
    return max((n for n in counts if isinstance(n, int)), default=-1)


async def _exists(settings: Mapping[str, Any] | None, path: str) -> bool:
    """Whether the server's contents manager has ``path`` (True when it cannot tell)."""
    from jupyter_core.utils import ensure_async

    cm = (settings or {}).get("contents_manager")
    if cm is None:
        return True
    try:
        return bool(await ensure_async(cm.file_exists(path)))
    except Exception:
        return False


def _private_copy(content: dict[str, Any], path: str) -> dict[str, Any]:
    """A size-checked private copy of the browser's notebook JSON (worker thread).

    The dict is shared with the event logger's other listeners (the websocket subscribers
    serialise it, the toolkit logs it), so it is only read here, never changed.
    """
    from jupyter_ai_vision.context.snapshot import check_notebook_size

    try:
        text = json.dumps(content)  # ASCII: len() is the size in bytes
        check_notebook_size(len(text), name=path)
        copy = limits.loads_json(text)  # as for files: depth-limited, huge integers as floats
    except NotebookError as e:
        raise NotebookUnreadable(f"{e}.") from None
    except (RecursionError, ValueError, TypeError) as e:
        raise NotebookUnreadable(
            f"{path}: the browser's notebook cannot be read ({type(e).__name__})."
        ) from None
    if not isinstance(copy, dict):
        raise NotebookUnreadable(f"{path}: the browser's answer is not a notebook.")
    return copy


def _routed_client() -> str | None:
    """The browser tab an MCP tool call comes from: jupyter-server-mcp's client routing puts
    the calling chat message's ``web_client_id`` into the toolkit's ``target_client_id``."""
    try:
        from jupyterlab_commands_toolkit.tools import target_client_id
    except Exception:  # not installed, or an older toolkit without routing
        return None
    value = target_client_id.get()
    return value if isinstance(value, str) and value else None


# ----- the event channel ---------------------------------------------------------------------
#: a number per browser event websocket, never reused (``id()`` is, once a socket is gone, and
#: a new tab must not inherit a closed tab's "did not answer")
_SOCKET_TOKENS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_NEXT_TOKEN = itertools.count()


def _token(socket: Any) -> int:
    token = _SOCKET_TOKENS.get(socket)
    if token is None:
        token = _SOCKET_TOKENS[socket] = next(_NEXT_TOKEN)
    return token


_CHANNELS: weakref.WeakKeyDictionary[Any, _Channel] = weakref.WeakKeyDictionary()


def _channel(settings: Mapping[str, Any] | None) -> _Channel | None:
    """The request/answer channel over the server's event bus, or None when not usable."""
    settings = settings or {}
    if _rtc_enabled(settings):
        return None
    logger = settings.get("event_logger")
    schemas = getattr(logger, "schemas", None)
    try:
        loaded = COMMAND_SCHEMA in schemas and RESULT_SCHEMA in schemas  # type: ignore[operator]
    except TypeError:
        loaded = False
    if not loaded:  # the toolkit's server extension registers both schemas when it loads
        return None
    channel = _CHANNELS.get(logger)
    if channel is None:
        channel = _CHANNELS[logger] = _Channel(logger)
    return channel


class _Channel:
    """Commands out as ``lab_command`` events, answers in as ``lab_command_result`` events."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.pending: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        #: (subscribers, client id) -> when a request to them last went unanswered
        self.silent: dict[tuple[frozenset[int], str | None], float] = {}
        self.last_silence = "no answer"
        logger.add_listener(schema_id=RESULT_SCHEMA, listener=self._on_result)

    async def _on_result(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        queue = self.pending.get(data.get("requestId") or "")
        if queue is not None:
            queue.put_nowait(data)

    def subscribers(self) -> frozenset[int] | None:
        """Tokens of the browsers' event websockets that get our commands (None: unknown)."""
        listeners = getattr(self.logger, "_modified_listeners", None)
        if not isinstance(listeners, Mapping):
            return None
        try:
            from jupyter_server.services.events.handlers import SubscribeWebsocket
        except ImportError:
            return None
        return frozenset(
            _token(owner)
            for listener in listeners.get(COMMAND_SCHEMA, ())
            if isinstance(owner := getattr(listener, "__self__", None), SubscribeWebsocket)
        )

    async def ask(
        self, command: str, args: dict[str, Any], timeout: float, client_id: str | None
    ) -> Any:
        """Every browser's answer to ``command`` (async iterator), until all subscribers
        answered, ``timeout`` passed, or :data:`ANSWER_GRACE` after the first answer."""
        client_id = client_id or _routed_client()
        subscribers = self.subscribers()
        if subscribers is not None and not subscribers:
            self.last_silence = "no browser"
            return
        key = (subscribers or frozenset(), client_id)
        silent_since = self.silent.get(key)
        if silent_since is not None and time.monotonic() - silent_since < NO_ANSWER_TTL:
            self.last_silence = "no answer"  # the same browsers did not answer just now
            return
        expected = 1 if client_id else (len(subscribers) if subscribers else None)
        request_id = str(uuid.uuid4())
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[request_id] = queue
        data: dict[str, Any] = {"name": command, "args": args, "requestId": request_id}
        if client_id:
            data["client_id"] = client_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answered = 0
        try:
            self.logger.emit(schema_id=COMMAND_SCHEMA, data=data)
            while expected is None or answered < expected:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    answer = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if answered == 0:
                    deadline = min(deadline, loop.time() + ANSWER_GRACE)
                answered += 1
                yield answer
        finally:
            self.pending.pop(request_id, None)
            if answered == 0 and loop.time() >= deadline:
                if len(self.silent) > 64:
                    self.silent.clear()
                self.silent[key] = time.monotonic()
                self.last_silence = "no answer"
            elif answered:
                self.silent.pop(key, None)
