"""The server's real-time collaboration layer, whichever one is enabled.

Two servers hold a live ``YNotebook`` per open notebook, with the same room names
(``json:notebook:<file_id>``, and ``JupyterLab:globalAwareness`` for what each browser tab
shows) but different Python APIs:

- **jupyter-collaboration** (``jupyter_server_ydoc``; Jupyter AI's ``rtc`` extra):
  ``settings["jupyter_server_ydoc"].ywebsocket_server.rooms`` and ``get_document(...)``.
- **jupyter-server-documents** (JSD; Jupyter AI 3's ``rtc-jsd`` extra, which disables
  ``jupyter_server_ydoc``): ``settings["yroom_manager"]``, one ``YRoom`` per room,
  ``await room.get_jupyter_ydoc()``. With its outputs service on, a cell's outputs in the
  YDoc are placeholders (``metadata.url = /api/outputs/<file_id>/<cell_id>/<n>.output``)
  and the outputs themselves are kept by ``settings["outputs_manager"]``:
  :class:`OutputPlaceholders` puts them back, as the browser does through that URL.

:func:`collaboration` returns one :class:`Collaboration` for either, or None without RTC.
Only rooms that already exist are looked at: asking for a room by id would create one (and
load the file) in both servers. Everything here is read-only.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from jupyter_ai_vision.limits import MAX_NOTEBOOK_BYTES

GLOBAL_AWARENESS = "JupyterLab:globalAwareness"
NOTEBOOK_ROOM = "json:notebook:"


class Collaboration:
    """What /see, the persona and the MCP tools need from a collaboration server."""

    #: the distribution's name, for notes and logs
    name = "real-time collaboration"

    def rooms(self) -> dict[str, Any]:
        """Room id -> room, for every room the server holds now (never creates one)."""
        raise NotImplementedError

    def has_clients(self, room: Any) -> bool:
        """Whether some browser is connected to ``room``."""
        raise NotImplementedError

    def awareness(self, room: Any) -> Any | None:
        """The room's ``pycrdt.Awareness`` (``states``, ``meta``), or None."""
        raise NotImplementedError

    async def notebook(self, room_id: str, path: str) -> Any | None:
        """The server's shared ``YNotebook`` of an existing room (not a copy)."""
        raise NotImplementedError

    def placeholders(self, file_id: str) -> OutputPlaceholders | None:
        """What puts back outputs stored outside the YDoc, when this server does that."""
        return None


class JupyterCollaboration(Collaboration):
    """jupyter-collaboration's ``YDocExtension`` (``settings["jupyter_server_ydoc"]``)."""

    name = "jupyter-collaboration"

    def __init__(self, extension: Any) -> None:
        self.extension = extension

    def rooms(self) -> dict[str, Any]:
        server = getattr(self.extension, "ywebsocket_server", None)
        return dict(getattr(server, "rooms", {}) or {})

    def has_clients(self, room: Any) -> bool:
        return bool(getattr(room, "clients", None))

    def awareness(self, room: Any) -> Any | None:
        return getattr(room, "awareness", None)

    async def notebook(self, room_id: str, path: str) -> Any | None:
        return await self.extension.get_document(
            path=path, content_type="notebook", file_format="json", copy=False
        )


class ServerDocuments(Collaboration):
    """jupyter-server-documents' ``YRoomManager`` (``settings["yroom_manager"]``)."""

    name = "jupyter-server-documents"

    def __init__(self, manager: Any, outputs_manager: Any = None) -> None:
        self.manager = manager
        self.outputs_manager = outputs_manager

    def rooms(self) -> dict[str, Any]:
        rooms = {getattr(r, "room_id", None): r for r in self.manager.list_document_rooms()}
        if self.manager.has_room(GLOBAL_AWARENESS):  # list_document_rooms() leaves it out
            rooms[GLOBAL_AWARENESS] = self.manager.get_room(GLOBAL_AWARENESS)
        return {room_id: room for room_id, room in rooms.items() if room_id and room}

    def has_clients(self, room: Any) -> bool:
        count = getattr(getattr(room, "clients", None), "count", 0)
        return isinstance(count, int) and count > 0

    def awareness(self, room: Any) -> Any | None:
        get = getattr(room, "get_awareness", None)
        return get() if callable(get) else None

    async def notebook(self, room_id: str, path: str) -> Any | None:
        if not self.manager.has_room(room_id):
            return None
        room = self.manager.get_room(room_id)
        return None if room is None else await room.get_jupyter_ydoc()

    def placeholders(self, file_id: str) -> OutputPlaceholders | None:
        if self.outputs_manager is None:  # the outputs service is off: outputs are in the YDoc
            return None
        return OutputPlaceholders(self.outputs_manager, file_id)


def collaboration(settings: Mapping[str, Any] | None) -> Collaboration | None:
    """The enabled collaboration layer, or None (no RTC: notebooks are read from disk).

    JSD also puts a jupyter-collaboration look-alike under ``jupyter_server_ydoc`` (with
    ``get_document`` but no rooms), so its own manager is looked for first.
    """
    settings = settings or {}
    manager = settings.get("yroom_manager")
    if manager is not None and hasattr(manager, "list_document_rooms"):
        return ServerDocuments(manager, settings.get("outputs_manager"))
    extension = settings.get("jupyter_server_ydoc")
    if extension is not None and hasattr(extension, "get_document"):
        return JupyterCollaboration(extension)
    return None


# ----- JSD's outputs service -----------------------------------------------------------------
_CELL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OUTPUT_URL = re.compile(
    r"/api/outputs/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})/(\d{1,6})\.output"
)


class OutputPlaceholders:
    """Puts a notebook's stored outputs back in place of JSD's placeholders (worker thread).

    A placeholder is trusted only as far as its own cell: the URL must name this notebook's
    file id, the cell's own id and an index, so a notebook cannot make us read another
    notebook's (or any other) file. Stored outputs are read through the outputs manager,
    as its HTTP handler does, within the notebook size limit in all.
    """

    def __init__(self, outputs_manager: Any, file_id: str) -> None:
        self.outputs_manager = outputs_manager
        self.file_id = file_id
        self._left_out: Counter[tuple[str, str]] = Counter()  # (cell id, why) -> outputs
        self._budget = MAX_NOTEBOOK_BYTES

    @property
    def notes(self) -> list[str]:
        """One line per cell and reason for the outputs left out."""
        lines = []
        for (cell_id, why), n in self._left_out.items():
            what = "an output" if n == 1 else f"{n} outputs"
            lines.append(f"{what} of cell {cell_id} {why}: left out")
        return lines

    def notebook(self, nb: dict[str, Any]) -> dict[str, Any]:
        cells = nb.get("cells")
        if isinstance(cells, list):
            nb = {**nb, "cells": self.cells(cells)}
        return nb

    def cells(self, cells: list[Any]) -> list[Any]:
        return [self.cell(c) if isinstance(c, dict) else c for c in cells]

    def cell(self, cell: dict[str, Any]) -> dict[str, Any]:
        outputs = cell.get("outputs")
        cell_id = cell.get("id")
        if not isinstance(outputs, list) or not isinstance(cell_id, str):
            return cell
        if not _CELL_ID.fullmatch(cell_id):
            return cell
        restored = [self.output(cell_id, o) for o in outputs]
        return {**cell, "outputs": [o for o in restored if o is not None]}

    def output(self, cell_id: str, output: Any) -> Any:
        url = _placeholder_url(output)
        if url is None:
            return output  # a real output (the service keeps some in the YDoc)
        match = _OUTPUT_URL.fullmatch(url)
        if match is None or match[1] != self.file_id or match[2] != cell_id:
            self._left_out[cell_id, "pointed outside the cell"] += 1
            return None
        try:
            stored = self._read(cell_id, int(match[3]))
        except (OSError, ValueError) as exc:
            self._left_out[cell_id, f"could not be read ({exc.__class__.__name__})"] += 1
            return None
        return stored if isinstance(stored, dict) else None

    def _read(self, cell_id: str, index: int) -> Any:
        build = getattr(self.outputs_manager, "_build_path", None)
        if callable(build):  # the size first: never read more than a notebook may hold
            size = os.stat(build(self.file_id, cell_id, index)).st_size
            if size > self._budget:
                raise ValueError("over the notebook size limit")
            self._budget -= size
        stored = self.outputs_manager.get_output(self.file_id, cell_id, index)
        return json.loads(stored) if isinstance(stored, str) else stored


def _placeholder_url(output: Any) -> str | None:
    """The URL of a JSD output placeholder (an output with no content of its own)."""
    if not isinstance(output, dict):
        return None
    metadata = output.get("metadata")
    url = metadata.get("url") if isinstance(metadata, dict) else None
    if not isinstance(url, str) or any(k in output for k in ("data", "traceback")):
        return None
    if output.get("output_type") == "stream" and output.get("text"):
        return None
    return url
