"""What a chat message has attached, for the Vision persona.

jupyterlab-chat attaches by id (``message.attachments``); ``chat.get_attachments()`` maps each
id to a ``NotebookAttachment`` (cells dragged from a notebook: its path and cell ids) or a
``FileAttachment`` (a file dropped or picked: its path and mimetype). jupyterlab-chat 0.25
returns dataclasses, older versions dicts: both are read.

- dragged cells: their notebook becomes the target and the first cell the focus;
- image files (PNG, JPEG, GIF, WebP, SVG) are sent as images, within what the notebook's
  figures left of the request's image budget (``RemainingBudget``);
- other files are sent as text (bounded), as data inside the notebook-content markers.

Every path is confined to the server root (``paths.confine``); a file that cannot be used
becomes one note line. Reading and image work run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from jupyter_ai_vision.mimes import IMAGE_SUFFIXES, normalise

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import Kind, Part, VisionContext
    from jupyter_ai_vision.media.raster import ImageCache

#: Characters of one attached text file the model gets (the rest is cut, with a note).
MAX_TEXT_CHARS = 20_000
#: Bytes of an attached text file read at all.
MAX_TEXT_BYTES = 2_000_000
#: The provenance kind of a prepared (sendable) image.
_KINDS: dict[str, Kind] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
#: Attachments looked at per message.
MAX_ATTACHMENTS = 20


@dataclass
class Attached:
    """A message's attachments, sorted by what the persona does with them."""

    notebook: str | None = None  # a notebook whose cells were dragged in (or attached whole)
    cells: list[str] = field(default_factory=list)  # ids of the dragged cells
    images: list[tuple[str, str]] = field(default_factory=list)  # (path, mime)
    texts: list[str] = field(default_factory=list)  # paths
    notes: list[str] = field(default_factory=list)


def _get(obj: Any, name: str) -> Any:
    """``obj.name`` (dataclasses, jupyterlab-chat >= 0.25) or ``obj[name]`` (older dicts)."""
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def sort(chat: Any, attachment_ids: list[str] | None) -> Attached:
    """Read ``attachment_ids`` from ``chat`` (any unreadable entry becomes a note)."""
    found = Attached()
    if not attachment_ids:
        return found
    try:
        table = chat.get_attachments() or {}
    except Exception:
        found.notes.append("the chat's attachments could not be read")
        return found
    for attachment_id in list(attachment_ids)[:MAX_ATTACHMENTS]:
        item = table.get(attachment_id)
        value = _get(item, "value") if item is not None else None
        if not isinstance(value, str) or not value.strip():
            found.notes.append("an attachment without a file was ignored")
            continue
        kind = _get(item, "type")
        suffix = PurePosixPath(value).suffix.lower()
        if kind == "notebook" or suffix == ".ipynb":
            if found.notebook is None:
                found.notebook = value
                for cell in _get(item, "cells") or []:
                    cell_id = _get(cell, "id")
                    if isinstance(cell_id, str) and cell_id:
                        found.cells.append(cell_id)
            elif value != found.notebook:
                found.notes.append(f"{value}: one notebook per question, {found.notebook} used")
            continue
        mime = normalise(_get(item, "mimetype") or IMAGE_SUFFIXES.get(suffix, ""))
        if suffix in IMAGE_SUFFIXES or mime.startswith("image/"):
            found.images.append((value, IMAGE_SUFFIXES.get(suffix, mime)))
        else:
            found.texts.append(value)
    if len(attachment_ids) > MAX_ATTACHMENTS:
        found.notes.append(f"only the first {MAX_ATTACHMENTS} attachments were looked at")
    return found


async def add_files(
    ctx: VisionContext, attached: Attached, *, root_dir: str, cache: ImageCache | None
) -> list[str]:
    """Attached image and text files into ``ctx`` (inside its notebook-content markers, images
    within the request's remaining image budget). Returns one-line notes."""
    if not attached.images and not attached.texts:
        return []
    return await asyncio.to_thread(_add_files, ctx, attached, root_dir, cache)


def _add_files(
    ctx: VisionContext, attached: Attached, root_dir: str, cache: ImageCache | None
) -> list[str]:
    from jupyter_ai_vision.context import messages
    from jupyter_ai_vision.context.budget import RemainingBudget

    budget = RemainingBudget.after(ctx)
    parts: list[Part] = []
    notes: list[str] = []
    number = len(ctx.images)
    for path, mime in attached.images:
        part_or_note = _image(path, mime, root_dir, budget, cache)
        if isinstance(part_or_note, str):
            notes.append(part_or_note)
            continue
        number += 1
        parts.append(
            messages.figure_marker(number, part_or_note, flags=(f"attached file: {path}",))
        )
        parts.append(part_or_note)
    for path in attached.texts:
        text_or_note = _text(path, root_dir)
        if text_or_note[0] is None:
            notes.append(text_or_note[1])
        else:
            parts.extend(_text_parts(path, text_or_note[0]))
            if text_or_note[1]:
                notes.append(text_or_note[1])
    messages.add_inside(ctx, parts)
    return notes


def _read(path: str, root_dir: str, limit: int) -> bytes:
    from jupyter_ai_vision.paths import confine

    real = confine(root_dir, path, must_exist=True)
    with real.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit // 1_000_000} MB, not read")
    return data


def _image(path: str, mime: str, root_dir: str, budget: Any, cache: ImageCache | None) -> Any:
    """The ImagePart for an attached image file, or a one-line note why not."""
    from jupyter_ai_vision.context.budget import estimate_image_tokens, image_part
    from jupyter_ai_vision.context.parts import Provenance
    from jupyter_ai_vision.errors import VisionError
    from jupyter_ai_vision.media.load import prepare_image

    name = PurePosixPath(path).name
    if budget.profile.supports_images is False:
        return f"{name} not sent: the model does not accept images"
    try:
        data = _read(path, root_dir, budget.policy.max_input_bytes)
        prepared = prepare_image(data, mime, budget.policy, cache)
    except (VisionError, ValueError, OSError) as exc:
        return f"{name} not sent: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if prepared.sha256 in budget.seen:
        return f"{name} not sent again: already in this conversation"
    tokens = estimate_image_tokens(budget.profile, prepared.width, prepared.height)
    refused = budget.refuse(tokens)
    if refused:
        return f"{name} not sent: {refused}"
    kind: Kind = _KINDS.get(prepared.mime, "png")
    part = image_part(prepared, profile=budget.profile, provenance=Provenance(kind=kind, mime=mime))
    budget.take(part.tokens, part.sha256)
    return part


def _text(path: str, root_dir: str) -> tuple[str | None, str]:
    """(text, note) for an attached text file; (None, note) when it cannot be used."""
    name = PurePosixPath(path).name
    try:
        data = _read(path, root_dir, MAX_TEXT_BYTES)
    except Exception as exc:
        return (
            None,
            f"{name} not read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        )
    if b"\x00" in data[:8192]:
        return None, f"{name} not read: not a text file"
    text = data.decode("utf-8", errors="replace")
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS], f"{name}: only the first {MAX_TEXT_CHARS} characters sent"
    return text, ""


def _text_parts(path: str, text: str) -> list[Part]:
    from jupyter_ai_vision.context.parts import Provenance, TextPart

    # Plain TextParts: add_inside defuses them like notebook text (data, never instructions).
    return [TextPart(f"# File attached to the chat: {path}\n{text}", Provenance(kind="text"))]
