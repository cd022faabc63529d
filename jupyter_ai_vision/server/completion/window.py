"""The window of a notebook around the cursor's cell: from the live YNotebook when the
notebook is open collaboratively, else from the saved file (cached by modification time).

A window is the ``context_cells`` cells on each side of the cursor's cell, plus the nearest
figure cell above it when none is inside (searched at most ``figure_lookback`` cells up).
Only the window's cells are copied out of a live document, without awaiting, so the copy is
consistent with the document at one instant and never changes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision.context.snapshot import load_notebook, read_notebook_json
from jupyter_ai_vision.errors import NotebookError, UnsafePath
from jupyter_ai_vision.limits import MAX_NOTEBOOK_BYTES
from jupyter_ai_vision.paths import confine
from jupyter_ai_vision.server.completion.settings import CompletionSettings

log = logging.getLogger(__name__)

Origin = Literal["live", "file"]


@dataclass
class Window:
    """Cells around the cursor's cell, as nbformat v4 dicts (focus cell included)."""

    cells: list[dict[str, Any]]
    focus: int  # index of the cursor's cell in ``cells``
    numbers: list[int]  # each cell's index in the whole notebook
    total_cells: int  # cells in the whole notebook
    cell_type: str  # of the cursor's cell
    origin: Origin
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the notebook file (confined), for its relative markdown links
    root_dir: Path | None = None  # the server root, which bounds those links

    @property
    def focus_cell_index(self) -> int:
        """The cursor's cell's index in the whole notebook."""
        return self.numbers[self.focus]


class _Cells(Protocol):
    """What reading a window needs from a notebook, live or saved."""

    def __len__(self) -> int: ...
    def cell_id(self, index: int) -> Any: ...
    def has_figure(self, index: int) -> bool: ...
    def cell(self, index: int) -> dict[str, Any]: ...


class _LiveCells:
    """A live ``YNotebook``: cells are converted only when the window takes them."""

    def __init__(self, ynb: Any) -> None:
        self.ynb = ynb
        self.ycells = ynb.ycells

    def __len__(self) -> int:
        return len(self.ycells)

    def cell_id(self, index: int) -> Any:
        return self.ycells[index].get("id")

    def has_figure(self, index: int) -> bool:
        # Only the mime keys are read (and an HTML output's text): converting whole outputs
        # would copy every figure's base64 just to look at its type.
        outputs = self.ycells[index].get("outputs")
        for output in outputs if outputs is not None else ():
            data = output.get("data") if hasattr(output, "get") else None
            if data is not None and _visual(data):
                return True
        return False

    def cell(self, index: int) -> dict[str, Any]:
        return dict(self.ynb.get_cell(index))


class _SavedCells:
    """nbformat cell dicts (the saved file)."""

    def __init__(self, cells: Sequence[Mapping[str, Any]]) -> None:
        self.cells = cells

    def __len__(self) -> int:
        return len(self.cells)

    def cell_id(self, index: int) -> Any:
        return self.cells[index].get("id")

    def has_figure(self, index: int) -> bool:
        return has_figure(self.cells[index])

    def cell(self, index: int) -> dict[str, Any]:
        return dict(self.cells[index])


def has_figure(cell: Mapping[str, Any]) -> bool:
    """Whether a cell's outputs hold anything visual (an image, a chart, an inline image)."""
    for output in cell.get("outputs") or ():
        data = output.get("data") if isinstance(output, Mapping) else None
        if isinstance(data, Mapping) and _visual(data):
            return True
    return False


def _visual(data: Any) -> bool:
    """Whether an output's ``data`` bundle (a dict, or a live document's map) is visual; an
    HTML output's text is read only when there is no image key."""
    mimes = list(data.keys())
    if any(k.startswith("image/") or "vegalite" in k or "plotly" in k for k in mimes):
        return True
    if "text/html" not in mimes:
        return False
    text = _py(data.get("text/html"))
    return bool(text) and "data:image/" in ("".join(text) if isinstance(text, list) else str(text))


def _py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


def window_indices(
    cells: _Cells, focus: int, settings: CompletionSettings
) -> tuple[list[int], int | None]:
    """Indices of the window, plus the nearest figure cell above it (if outside)."""
    start = max(0, focus - settings.context_cells)
    stop = min(len(cells), focus + settings.context_cells + 1)
    indices = list(range(start, stop))
    extra = None
    if settings.images and not any(cells.has_figure(i) for i in range(start, focus)):
        # the most recent figure above the cursor may lie further up (bounded)
        for i in range(start - 1, max(-1, start - 1 - settings.figure_lookback), -1):
            if cells.has_figure(i):
                extra = i
                break
    return indices, extra


def read_cells(
    cells: _Cells,
    cell_id: str,
    settings: CompletionSettings,
    *,
    origin: Origin,
    metadata: Mapping[str, Any] | None = None,
) -> Window | None:
    """The window around ``cell_id`` (None when no cell has that id)."""
    focus = next((i for i in range(len(cells)) if cells.cell_id(i) == cell_id), None)
    if focus is None:
        return None
    indices, extra = window_indices(cells, focus, settings)
    if extra is not None:
        indices.insert(0, extra)
    taken = [cells.cell(i) for i in indices]
    position = indices.index(focus)
    return Window(
        cells=taken,
        focus=position,
        numbers=indices,
        total_cells=len(cells),
        cell_type=str(taken[position].get("cell_type", "code")),
        origin=origin,
        metadata=dict(metadata or {}),
    )


def window_from_ynotebook(ynb: Any, cell_id: str, settings: CompletionSettings) -> Window | None:
    """The window from a live ``YNotebook`` (never mutates it; runs without awaiting)."""
    # One transaction for the whole read: a consistent view, and each cell access no
    # longer opens its own.
    with ynb.ydoc.transaction():
        meta = ynb.ymeta.to_py() if hasattr(ynb, "ymeta") else {}
        return read_cells(
            _LiveCells(ynb),
            cell_id,
            settings,
            origin="live",
            metadata=(meta or {}).get("metadata") or {},
        )


def window_from_cells(
    cells: Sequence[Mapping[str, Any]],
    cell_id: str,
    settings: CompletionSettings,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Window | None:
    """The same window, from a list of nbformat cell dicts (the saved file)."""
    return read_cells(_SavedCells(cells), cell_id, settings, origin="file", metadata=metadata)


# ----- the saved file ------------------------------------------------------------------------


def _entry_size(_key: str, entry: tuple[tuple[int, int], dict[str, Any]]) -> int:
    return entry[0][1]  # the file's size: a fair proxy for the parsed notebook's


class SavedNotebookCache:
    """Parsed saved notebooks keyed by real path, valid while (mtime, size) are unchanged;
    at most ``max_entries`` notebooks and ``max_total_bytes`` of files (:class:`_lru.LRU`)."""

    def __init__(
        self,
        max_entries: int = 8,
        max_file_bytes: int = 50_000_000,
        max_total_bytes: int = 200_000_000,
    ) -> None:
        self.max_file_bytes = max_file_bytes
        self._entries: LRU[str, tuple[tuple[int, int], dict[str, Any]]] = LRU(
            max_items=max_entries, max_size=max_total_bytes, sizeof=_entry_size
        )
        self.loads = 0  # how many times a file was actually parsed (tests, benchmark)

    def get(self, path: Path) -> dict[str, Any] | None:
        """The notebook's JSON, or None when missing, too large or not a notebook.
        Blocking (stat, read): call it in a worker thread."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if not path.is_file() or stat.st_size > min(self.max_file_bytes, MAX_NOTEBOOK_BYTES):
            return None
        key, stamp = str(path), (stat.st_mtime_ns, stat.st_size)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        nb = _parse(path, min(self.max_file_bytes, MAX_NOTEBOOK_BYTES))
        if nb is None:
            return None
        self.loads += 1
        self._entries.put(key, (stamp, nb))
        return nb

    def clear(self) -> None:
        self._entries.clear()


def _parse(path: Path, max_bytes: int) -> dict[str, Any] | None:
    try:  # regular files only (a FIFO swapped in after the stat cannot block), size-limited
        nb = read_notebook_json(path, max_bytes)
    except NotebookError:
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    try:  # every field type-checked once (a null cell, a numeric source...), as for /see
        snapshot = load_notebook(nb, path=path)
    except NotebookError:
        return None
    return {**nb, "cells": snapshot.cells, "metadata": snapshot.metadata}


SAVED_NOTEBOOKS = SavedNotebookCache()


def root_dir(server_settings: Mapping[str, Any]) -> Path | None:
    """The Jupyter server's root directory, from its settings."""
    root = server_settings.get("server_root_dir")
    if not root:
        cm = server_settings.get("contents_manager")
        root = getattr(cm, "root_dir", None)
    return Path(os.path.expanduser(str(root))) if root else None


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


def _output_placeholders(server_settings: Mapping[str, Any], path: str) -> Any | None:
    """jupyter-server-documents' outputs service keeps outputs outside the live YDoc."""
    from jupyter_ai_vision.server import notebooks

    return notebooks.output_placeholders(server_settings, path)


def _locate(root: Path, path: str) -> tuple[Path, Path] | None:
    """The notebook's real path and the real root, if ``path`` may be read for completion:
    a notebook inside the root, outside hidden folders (:func:`paths.confine`)."""
    try:
        return confine(root, path, notebooks_only=True, allow_hidden=False), root.resolve()
    except UnsafePath as exc:
        log.debug("No completion context: %s", exc)
        return None


async def read_window(
    path: str | None,
    cell_id: str | None,
    server_settings: Mapping[str, Any] | None,
    settings: CompletionSettings,
    *,
    cache: SavedNotebookCache = SAVED_NOTEBOOKS,
) -> Window | None:
    """The window from the live notebook, else the saved file, else None.

    ``path`` must name a notebook inside the server root, outside hidden folders
    (:func:`paths.confine`); anything else gives no window (prefix and suffix only).
    """
    if not path or not cell_id or not server_settings:
        return None
    root = root_dir(server_settings)
    if root is None:
        return None
    loop = asyncio.get_running_loop()
    # realpath / stat touch the file system (maybe a slow network one): off the loop
    located = await loop.run_in_executor(None, _locate, root, path)
    if located is None:
        return None
    real, real_root = located
    relative = posixpath.normpath(path.strip().replace("\\", "/"))
    ynb = await live_ynotebook(server_settings, relative)
    if ynb is not None:
        window = window_from_ynotebook(ynb, cell_id, settings)
        if window is not None and (kept := _output_placeholders(server_settings, relative)):
            window.cells = await loop.run_in_executor(None, kept.cells, window.cells)
    else:
        nb = await loop.run_in_executor(None, cache.get, real)
        if nb is None:
            return None
        meta = nb.get("metadata") or {}
        window = window_from_cells(nb["cells"], cell_id, settings, metadata=meta)
    if window is not None:
        window.path, window.root_dir = real, real_root
    return window
