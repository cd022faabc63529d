"""Which notebook and cell a chat user is looking at, and reading it (live or from disk).

The chat message carries no notebook path, so we ask the collaboration layer (jupyter-
collaboration or jupyter-server-documents, :mod:`.collaboration`): the global awareness room
``JupyterLab:globalAwareness`` holds, per browser client, ``user.username`` and
``current = "notebook:<path>"``; each open notebook has a room ``json:notebook:<file_id>``
whose live ``YNotebook`` holds unsaved edits and outputs. When the server has no RTC at all
(Jupyter AI 3.2's default install) the browser tab that has the notebook open is asked for
it (:mod:`.frontend_notebook`, through jupyterlab-commands-toolkit). Otherwise, or when no
tab has it open, we read the file through the contents manager.

Everything here is read-only: the live document is read through a forked copy.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from jupyter_ai_vision.context.snapshot import check_notebook_size, read_notebook_json
from jupyter_ai_vision.errors import (
    AmbiguousNotebook,
    NoNotebookOpen,
    NotebookError,
    NotebookNotFound,
    NotebookUnreadable,
    UnsafePath,
)
from jupyter_ai_vision.paths import confine, relative_posix
from jupyter_ai_vision.server.collaboration import (
    GLOBAL_AWARENESS,
    NOTEBOOK_ROOM,
    OutputPlaceholders,
    collaboration,
)

# Fields that awareness extensions (e.g. jupyterlab-notebook-awareness) use for the active cell.
_ACTIVE_CELL_KEYS = ("activeCellId", "active_cell_id", "activeCell", "cellId", "cell_id")


@dataclass
class Target:
    """The notebook a /see question is about, read once."""

    path: str  # server-relative, POSIX
    #: live: the shared document's state as a Yjs update (bytes, rebuilt off the event loop
    #: with :func:`notebook_from_update`); disk: the nbformat dict read from the file.
    #: browser: the nbformat dict a JupyterLab tab sent (no RTC on the server).
    notebook: Any
    source: Literal["live", "browser", "disk"]
    how: str  # "explicit" | "awareness" | "browser" | "only open" | "selection"
    active_cell: str | int | None = None  # from awareness, when an extension publishes it
    selection: str | None = None
    focus: str | int | None = None  # cell id (preferred) or index, see pick_focus()
    focus_how: str = "none"  # "awareness" | "selection" | "last executed" | "none"
    notes: list[str] = field(default_factory=list)
    #: jupyter-server-documents' outputs service: outputs kept outside the live YDoc
    placeholders: OutputPlaceholders | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def load(self) -> Any:
        """The notebook as the context builder takes it (call it in a worker thread)."""
        if self.source != "live":
            return self.notebook
        live = notebook_from_update(self.notebook)
        if self.placeholders is None:
            return live
        from jupyter_ai_vision.context.snapshot import read_ynotebook

        nb = self.placeholders.notebook(read_ynotebook(live))
        self.notes.extend(self.placeholders.notes)
        return nb


# ----- what the collaboration layer knows ---------------------------------------------------
def _rooms(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    collab = collaboration(settings)
    return collab.rooms() if collab is not None else {}


def _relative(path: str, root_dir: str | None) -> str:
    """Server-relative POSIX path (file-id managers may store absolute paths)."""
    if root_dir and os.path.isabs(path):
        path = os.path.relpath(path, root_dir)
    return path.replace(os.sep, "/").lstrip("/")


def open_notebooks(
    settings: Mapping[str, Any] | None, root_dir: str | None = None
) -> dict[str, Any]:
    """Path -> room of every notebook some browser has open right now (rooms with clients)."""
    collab = collaboration(settings)
    if collab is None:
        return {}
    fim = (settings or {}).get("file_id_manager")
    found: dict[str, Any] = {}
    for room_id, room in collab.rooms().items():
        if not room_id.startswith(NOTEBOOK_ROOM) or not collab.has_clients(room):
            continue
        path = fim.get_path(room_id[len(NOTEBOOK_ROOM) :]) if fim is not None else None
        if path:
            found[_relative(path, root_dir)] = room
    return found


def _states_by_recency(room: Any, settings: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    collab = collaboration(settings)
    awareness = collab.awareness(room) if collab is not None and room is not None else None
    if awareness is None:
        return []
    states = dict(awareness.states)
    meta = getattr(awareness, "meta", {}) or {}
    order = sorted(
        states, key=lambda cid: (meta.get(cid) or {}).get("lastUpdated", 0), reverse=True
    )
    return [states[cid] for cid in order if isinstance(states[cid], dict)]


def _username(state: Mapping[str, Any]) -> str | None:
    user = state.get("user")
    return user.get("username") if isinstance(user, Mapping) else None


def viewed_notebook(settings: Mapping[str, Any] | None, username: str) -> str | None:
    """The notebook ``username`` is looking at (most recently updated browser tab first)."""
    room = _rooms(settings).get(GLOBAL_AWARENESS)
    for state in _states_by_recency(room, settings):
        current = state.get("current")
        if (
            _username(state) == username
            and isinstance(current, str)
            and current.startswith("notebook:")
        ):
            return current[len("notebook:") :]
    return None


def active_cell(room: Any, username: str, settings: Mapping[str, Any] | None) -> str | int | None:
    """The user's active cell in a notebook room, when an awareness extension publishes it."""
    for state in _states_by_recency(room, settings):
        if _username(state) != username:
            continue
        for key in _ACTIVE_CELL_KEYS:
            value = state.get(key)
            if isinstance(value, Mapping):
                value = value.get("id") or value.get("cellId") or value.get("index")
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return value
    return None


# ----- the user's words ----------------------------------------------------------------------
_FIRST_PATH = re.compile(
    r"""^\s*(?:"(?P<dq>[^"]+\.ipynb)"|'(?P<sq>[^']+\.ipynb)'|(?P<bare>\S+\.ipynb))(?:\s+|$)""",
    re.IGNORECASE,
)


def split_path(question: str) -> tuple[str | None, str]:
    """``"analysis.ipynb why flat?"`` -> ("analysis.ipynb", "why flat?"); quotes allowed.

    Only a notebook path *first* in the question is taken as the target.
    """
    match = _FIRST_PATH.match(question or "")
    if match is None:
        return None, (question or "").strip()
    path = match["dq"] or match["sq"] or match["bare"]
    return path, question[match.end() :].strip()


def safe_path(path: str, root_dir: str) -> str:
    """Server-relative POSIX path of ``path`` inside ``root_dir`` (:func:`paths.confine`'s
    rules), or :class:`NotebookNotFound` saying why."""
    try:
        return relative_posix(root_dir, confine(root_dir, path))
    except UnsafePath as exc:
        raise NotebookNotFound(
            f"Cannot read {exc}; give a notebook path relative to the Jupyter root."
        ) from None


# ----- reading ---------------------------------------------------------------------------
async def read_live(settings: Mapping[str, Any] | None, path: str) -> bytes | None:
    """The live notebook's state (a Yjs update), or None when it is not open collaboratively.

    Encoding the state takes a few ms; rebuilding and reading it (tens of ms for a big
    notebook) happens later in a worker thread, on a private copy, so the server's event loop
    stays responsive and the shared document is never touched from another thread.
    """
    doc = await live_document(settings, path)
    return None if doc is None else bytes(doc.ydoc.get_update())


async def live_document(settings: Mapping[str, Any] | None, path: str) -> Any | None:
    """The server's shared YNotebook for ``path`` (not a copy: read it without awaiting,
    never write to it), or None when it is not open collaboratively."""
    collab = collaboration(settings)
    file_id = _file_id(settings, path)
    if collab is None or file_id is None:
        return None
    # Asking for a room that does not exist would create it: only notebooks with a room.
    room_id = f"{NOTEBOOK_ROOM}{file_id}"
    if room_id not in collab.rooms():
        return None
    return await collab.notebook(room_id, path)


def output_placeholders(settings: Mapping[str, Any] | None, path: str) -> OutputPlaceholders | None:
    """What restores ``path``'s outputs kept outside its live YDoc (JSD's outputs service)."""
    collab = collaboration(settings)
    file_id = _file_id(settings, path)
    return collab.placeholders(file_id) if collab is not None and file_id else None


def _file_id(settings: Mapping[str, Any] | None, path: str) -> str | None:
    """The file id of a path the server already knows (never indexes a new one)."""
    fim = (settings or {}).get("file_id_manager")
    file_id = fim.get_id(path) if fim is not None else None
    return file_id if isinstance(file_id, str) else None


def notebook_from_update(update: bytes) -> Any:
    """A private YNotebook rebuilt from :func:`read_live`'s update (any thread)."""
    from jupyter_ydoc import YNotebook
    from pycrdt import Doc

    doc: Any = Doc()
    doc.apply_update(update)
    return YNotebook(doc)


async def read_disk(settings: Mapping[str, Any] | None, path: str, root_dir: str) -> dict:
    """The notebook file through the contents manager (confined to the server root)."""
    from jupyter_core.utils import ensure_async

    cm = (settings or {}).get("contents_manager")
    if cm is None:  # outside a server (CLI, tests): read the file directly, off the loop
        return await asyncio.to_thread(_read_file, root_dir, path)
    try:
        exists = await ensure_async(cm.file_exists(path))
    except Exception:
        exists = False
    if not exists:
        raise NotebookNotFound(f"Notebook not found: {path}.")
    try:  # the size first: the contents manager would read a 2 GB file whole
        info = await ensure_async(cm.get(path, content=False, type="notebook"))
        size = info.get("size") if isinstance(info, Mapping) else None
        if isinstance(size, int):
            check_notebook_size(size, name=path)
    except NotebookError as e:
        raise NotebookUnreadable(f"{e}.") from None
    except Exception:
        pass  # no size from this contents manager: its own read decides
    try:
        model = await ensure_async(cm.get(path, content=True, type="notebook"))
    except Exception as e:  # unreadable / not JSON / not a notebook
        raise NotebookUnreadable(_unreadable(path, e)) from e
    return dict(model["content"])


def _read_file(root_dir: str, path: str) -> dict[str, Any]:
    try:
        full = confine(root_dir, path, must_exist=True)
    except UnsafePath:
        raise NotebookNotFound(f"Notebook not found: {path}.") from None
    try:  # regular files only, size-limited, deep JSON cut (the snapshot normalises the rest)
        data = read_notebook_json(full, name=path)
    except NotebookError as e:
        raise NotebookUnreadable(f"{e}.") from None
    if not isinstance(data, dict):
        raise NotebookUnreadable(_unreadable(path, ValueError("not a notebook")))
    return data


def _unreadable(path: str, exc: BaseException) -> str:
    reason = "it is not JSON" if "JSON" in str(exc) else "it cannot be read as a notebook"
    return (
        f"{path} is not a valid notebook ({reason}): fix or re-save it in JupyterLab, "
        "or ask about another notebook."
    )


def _cells(notebook: Any) -> list[dict[str, Any]]:
    if isinstance(notebook, bytes):
        notebook = notebook_from_update(notebook)
    if isinstance(notebook, Mapping):
        return list(notebook.get("cells", []))
    return list(notebook.get().get("cells", []))


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def cell_matching(cells: list[dict[str, Any]], selection: str) -> str | int | None:
    """The cell whose source matches the chat selection (exact, then containment)."""
    wanted = selection.strip()
    if not wanted:
        return None
    for exact in (True, False):
        for i, cell in enumerate(cells):
            src = _source(cell).strip()
            if (src == wanted) if exact else (wanted in src and len(wanted) >= 8):
                return cell.get("id") or i
    return None


def last_executed(cells: list[dict[str, Any]]) -> str | int | None:
    """The cell with the highest execution count (what the user most likely just ran)."""
    best: tuple[int, str | int] | None = None
    for i, cell in enumerate(cells):
        count = cell.get("execution_count")
        if isinstance(count, int) and (best is None or count >= best[0]):
            best = (count, cell.get("id") or i)
    return best[1] if best else None


async def resolve(
    settings: Mapping[str, Any] | None,
    *,
    username: str,
    root_dir: str,
    explicit_path: str | None = None,
    selection: str | None = None,
    client_id: str | None = None,
) -> Target:
    """Find and read the notebook (and focus cell) a /see question is about.

    Order: a path named in the command; the notebook the user is viewing (awareness, or
    without RTC the notebook the browser tab ``client_id`` shows); the only open notebook;
    the open notebook whose cell matches the selection. Raises a :class:`LiveError` subclass
    with a one-line message otherwise.
    """
    opened = open_notebooks(settings, root_dir)
    path: str | None = None
    how = ""
    active: str | None = None
    if explicit_path:
        path, how = safe_path(explicit_path, root_dir), "explicit"
    elif (viewed := viewed_notebook(settings, username)) is not None:
        path, how = _relative(viewed, root_dir), "awareness"
    elif (shown := await _shown_in_browser(settings, client_id, root_dir)) is not None:
        path, how, active = shown.path, "browser", shown.active_cell_id
    elif len(opened) == 1:
        path, how = next(iter(opened)), "only open"
    elif selection and opened:
        path = await _match_selection(settings, opened, selection)
        how = "selection"
    if path is None:
        if not opened:
            raise NoNotebookOpen(
                "No notebook is open: open one in JupyterLab, or name it: "
                "`/see analysis.ipynb your question`."
            )
        names = ", ".join(sorted(opened))
        raise AmbiguousNotebook(
            f"Several notebooks are open ({names}): name one, e.g. "
            f"`/see {sorted(opened)[0]} your question`."
        )
    target = await read_target(
        settings,
        path,
        how=how,
        username=username,
        root_dir=root_dir,
        selection=selection,
        client_id=client_id,
    )
    if target.source == "browser":  # no RTC, so no awareness: the tab's own active cell
        target.active_cell = active
    return target


async def _shown_in_browser(
    settings: Mapping[str, Any] | None, client_id: str | None, root_dir: str
) -> Any | None:
    """The notebook a browser tab shows, when the server has no RTC (else None: with RTC,
    :mod:`.frontend_notebook` never asks a browser)."""
    from jupyter_ai_vision.server.frontend_notebook import viewed_in_frontend

    view = await viewed_in_frontend(settings, client_id=client_id)
    if view is None:
        return None
    try:
        view.path = safe_path(view.path, root_dir)  # a browser's answer is untrusted too
    except NotebookNotFound:
        return None
    return view


async def _match_selection(
    settings: Mapping[str, Any] | None, opened: dict[str, Any], selection: str
) -> str | None:
    for path in sorted(opened):
        update = await read_live(settings, path)
        if update is not None:
            cells = await asyncio.to_thread(_cells, update)
            if cell_matching(cells, selection) is not None:
                return path
    return None


def pick_focus(
    cells: list[dict[str, Any]], *, active: str | int | None, selection: str | None
) -> tuple[str | int | None, str]:
    """The focus cell: the active cell (awareness), else the selection's cell, else the last
    executed one."""
    if active is not None:
        return active, "awareness"
    if selection and (match := cell_matching(cells, selection)) is not None:
        return match, "selection"
    if (last := last_executed(cells)) is not None:
        return last, "last executed"
    return None, "none"


async def read_target(
    settings: Mapping[str, Any] | None,
    path: str,
    *,
    how: str,
    username: str,
    root_dir: str,
    selection: str | None = None,
    client_id: str | None = None,
) -> Target:
    """Read ``path``: the live state, else (no RTC) the notebook from the browser tab that
    has it open, else the file on disk; the focus is picked later."""
    # imported here: the server imports this module at start-up, most servers have RTC
    from jupyter_ai_vision.server.frontend_notebook import read_from_frontend

    live = await read_live(settings, path)
    if live is not None:
        target = Target(path, live, "live", how)
        target.placeholders = output_placeholders(settings, path)
    elif (browser := await read_from_frontend(settings, path, client_id=client_id)) is not None:
        target = Target(path, browser, "browser", how)  # only asked when there is no RTC
    else:
        target = Target(path, await read_disk(settings, path, root_dir), "disk", how)
        target.notes.append(f"{path} is not open in JupyterLab: read the saved file.")
    room = open_notebooks(settings, root_dir).get(path)
    target.active_cell = active_cell(room, username, settings) if room is not None else None
    target.selection = selection
    return target
