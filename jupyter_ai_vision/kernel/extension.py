"""In-kernel helpers for ``%%ai vision:MODEL``: ``@name`` references and recent figures.

jupyter-ai-magics runs ``%%ai`` in the kernel and calls the provider with the templated
prompt as one string. The vision provider (see :meth:`VisionProvider._prepare`) then calls
:func:`expand_references`, which turns that string into a multimodal message:

- ``@name`` (a plain dotted identifier: ``@fig``, ``@df``, ``@model.coef_``) attaches the
  kernel variable as text and/or image parts through the ``_ai_repr_`` registry
  (:func:`jupyter_ai_vision.kernel.references.resolve_in_namespace`). Anything else after ``@``
  (``@__import__('os')``, ``@x; import os``) is rejected with a one-line note and never
  evaluated.
- ``@last_figure`` / ``@figures`` attach the most recently displayed figure / the last few
  figures of the session (unless a variable of that name exists). Figures are remembered
  from the moment ``%load_ext jupyter_ai_vision.kernel.extension`` runs (or the first ``%%ai vision:``).

``{name}`` interpolation is jupyter-ai's own and happens before, unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_ai_vision.context import messages as wire
from jupyter_ai_vision.context.budget import RemainingBudget
from jupyter_ai_vision.mimes import RASTER_MIMES

LAST_FIGURE = "last_figure"
FIGURES = "figures"
#: How many recent figures are remembered, and sent for ``@figures``.
MAX_FIGURES = 3


@dataclass(frozen=True)
class Figure:
    """One image output seen in this session."""

    mime: str
    data: str  # base64, as in the display message
    execution_count: int | None
    text: str


class FigureLog:
    """The last :data:`MAX_FIGURES` image outputs displayed in this kernel (thread-safe)."""

    def __init__(self, maxlen: int = MAX_FIGURES) -> None:
        self._figures: deque[Figure] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add_bundle(self, data: Mapping[str, Any], execution_count: int | None) -> None:
        mime = next((m for m in RASTER_MIMES if isinstance(data.get(m), (str, bytes))), None)
        if mime is None:
            return
        payload = data[mime]
        if isinstance(payload, bytes):  # the display hook sees raw bytes, display_pub base64
            payload = base64.b64encode(payload).decode("ascii")
        text = data.get("text/plain")
        text = text if isinstance(text, str) else "figure"
        with self._lock:
            self._figures.append(Figure(mime, payload, execution_count, text[:200]))

    def recent(self, n: int = MAX_FIGURES) -> list[Figure]:
        with self._lock:
            return list(self._figures)[-n:] if n > 0 else []

    def clear(self) -> None:
        with self._lock:
            self._figures.clear()


FIGURE_LOG = FigureLog()
_INSTALLED: dict[int, Any] = {}


# ----- figure capture ---------------------------------------------------------------------
def install_capture(shell: Any) -> bool:
    """Remember image outputs displayed from now on (idempotent). False if not in ipykernel."""
    if id(shell) in _INSTALLED:
        return True
    display_pub = getattr(shell, "display_pub", None)
    if display_pub is None or not hasattr(display_pub, "register_hook"):
        return False

    def hook(msg: dict[str, Any]) -> dict[str, Any]:
        # display_data (matplotlib inline, display(img)) passes through here; never block it
        with contextlib.suppress(Exception):
            if msg.get("header", {}).get("msg_type") == "display_data":
                data = msg.get("content", {}).get("data", {})
                FIGURE_LOG.add_bundle(data, shell.execution_count)
        return msg

    display_pub.register_hook(hook)
    displayhook = getattr(shell, "displayhook", None)
    original = getattr(displayhook, "write_format_data", None)
    if displayhook is not None and original is not None:

        def write_format_data(format_dict: dict[str, Any], md_dict: Any = None) -> Any:
            # execute_result: an image as the cell's last expression
            with contextlib.suppress(Exception):
                FIGURE_LOG.add_bundle(format_dict, shell.execution_count)
            return original(format_dict, md_dict)

        displayhook.write_format_data = write_format_data
    _INSTALLED[id(shell)] = (hook, displayhook, original)
    return True


def uninstall_capture(shell: Any) -> None:
    entry = _INSTALLED.pop(id(shell), None)
    if entry is None:
        return
    hook, displayhook, original = entry
    with contextlib.suppress(Exception):
        shell.display_pub.unregister_hook(hook)
    if displayhook is not None and original is not None:
        displayhook.write_format_data = original


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext jupyter_ai_vision.kernel.extension``: loads jupyter_ai_magics and starts remembering
    figures for ``@last_figure`` / ``@figures``."""
    shell.extension_manager.load_extension("jupyter_ai_magics")
    install_capture(shell)


def unload_ipython_extension(shell: Any) -> None:
    uninstall_capture(shell)


# ----- @name expansion --------------------------------------------------------------------
def _figure_entries(name: str, namespace: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Entries for ``@last_figure`` / ``@figures`` (None when ``name`` is not one of them or
    a variable of that name exists)."""
    if name not in (LAST_FIGURE, FIGURES) or name in namespace:
        return None
    figures = FIGURE_LOG.recent(1 if name == LAST_FIGURE else MAX_FIGURES)
    if not figures:
        return [
            {
                "name": name,
                "error": f"@{name}: no figure displayed yet in this session (figures are "
                "remembered after %load_ext jupyter_ai_vision.kernel.extension or the first %%ai vision:)",
            }
        ]
    entries = []
    for fig in figures:
        where = f"cell [{fig.execution_count}]" if fig.execution_count else "this session"
        entries.append(
            {
                "name": name,
                "type": f"figure displayed by {where}",
                "data": {fig.mime: fig.data, "text/plain": f"{fig.text} (displayed by {where})"},
            }
        )
    return entries


def _last_human_text(messages: list[Any]) -> tuple[int, str] | None:
    from langchain_core.messages import HumanMessage

    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, HumanMessage):
            return (index, message.content) if isinstance(message.content, str) else None
    return None


def expand_references(
    provider: Any, messages: list[Any], supports_images: bool | None
) -> tuple[list[Any], list[str]]:
    """Turn ``@name`` references in the last human message into attached parts.

    Returns the new messages and one-line notes (also printed for the user: rejected names,
    missing variables, images left out). Messages without ``@`` come back unchanged.
    """
    found = _last_human_text(messages)
    if found is None or "@" not in found[1]:
        return messages, []
    index, text = found
    model = getattr(provider, "model", None)
    # Render images even for a text-only model: the provider then swaps them for stubs and
    # tells the user exactly that images were left out (and how to send them).
    if supports_images is False:
        model, supports_images = None, True
    parts, notes = reference_parts(text, model=model, supports_images=supports_images)
    return _replace(messages, index, text, parts, notes), notes


def reference_parts(
    text: str, *, model: str | None, supports_images: bool | None
) -> tuple[list[Any], list[str]]:
    """The parts for the ``@name`` references in ``text`` (kernel variables through
    ``_ai_repr_``, ``@last_figure`` / ``@figures``) and one-line notes (rejected names,
    missing variables, images left out), which are also printed for the user.

    Used by ``%%ai`` on both hosts; runs in the kernel, on the user's own namespace.
    """
    from jupyter_ai_vision.kernel import references

    refs = references.find_references(text)
    notes = list(refs.notes)
    if not refs:
        _show(notes)
        return [], notes
    shell = _shell()
    namespace: Mapping[str, Any] = shell.user_ns if shell is not None else {}
    if shell is not None:
        install_capture(shell)

    figure_entries: list[dict[str, Any]] = []
    names: list[str] = []
    for name in refs:
        entries = _figure_entries(name, namespace)
        if entries is None:
            names.append(name)
        else:
            figure_entries.extend(entries)
    # One budget for the whole question: named objects first, then remembered figures.
    budget = RemainingBudget.fresh(model=model, supports_images=supports_images)
    parts, more = references.resolve_in_namespace(names, namespace, budget=budget)
    notes.extend(more)
    if figure_entries:
        fig_parts, more = references.entries_to_parts(figure_entries, budget=budget)
        parts.extend(fig_parts)
        notes.extend(more)
    _show(notes)
    return parts, notes


def _replace(
    messages: list[Any], index: int, text: str, parts: list[Any], notes: list[str]
) -> list[Any]:
    """Copy of ``messages`` whose message ``index`` holds the question, parts and notes
    (framed by the wire format: the objects inside the notebook-content markers)."""
    content = [p.to_openai() for p in wire.frame_references(text, parts, notes)]
    new = list(messages)
    new[index] = messages[index].model_copy(update={"content": content})
    return new


def _shell() -> Any:
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _show(notes: list[str]) -> None:
    for note in notes:
        print(note, file=sys.stderr)
