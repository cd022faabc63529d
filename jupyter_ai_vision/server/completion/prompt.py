"""The messages for one inline completion: system prompt, the window as notebook context
(through the shared context builder), then jupyter-ai's completion instruction.

The window's cells keep their real notebook numbers ("cell 8 of 200"), the cursor's cell is
a placeholder (its text comes fresher from the request), and nothing visual below the cursor
is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.server.completion.settings import CompletionSettings
from jupyter_ai_vision.server.completion.window import Window, read_window

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import VisionContext

log = logging.getLogger(__name__)


class CompletionRequest(Protocol):
    """What a host's inline completion request carries (jupyter-ai's
    ``InlineCompletionRequest`` has these fields)."""

    @property
    def number(self) -> int: ...
    @property
    def path(self) -> str | None: ...
    @property
    def cell_id(self) -> str | None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...
    @property
    def language(self) -> str | None: ...
    @property
    def mime(self) -> str: ...


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


def is_markdown(request: CompletionRequest, window: Window | None = None) -> bool:
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


def image_policy(settings: CompletionSettings) -> ImagePolicy:
    """A small image budget for completions (inline completion is latency-bound: no chart
    is drawn in a browser for it, and a sandboxed render gets at most 2 s)."""
    return ImagePolicy(
        max_images=settings.max_images,
        max_image_tokens=settings.image_tokens,
        max_edge=settings.max_edge,
        max_chart_renders=0,
        max_render_seconds=2.0,
    )


def _filename(request: CompletionRequest) -> str:
    return request.path.split("/")[-1] if request.path else "untitled"


def completion_instruction(
    request: CompletionRequest, settings: CompletionSettings, *, markdown: bool
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
    origin: Literal["live", "file", "none"]
    markdown: bool
    images: int = 0
    context_cells: int = 0


async def build_prompt(
    request: CompletionRequest,
    *,
    model: str | None,
    images: bool,
    server_settings: Mapping[str, Any] | None,
    settings: CompletionSettings,
    window: Window | None = None,
) -> Prompt:
    """Messages for one completion; any failure reading the notebook -> prefix/suffix only.

    ``images``: whether figures may be sent (the model is known to take them and the
    settings allow them)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    if window is None:
        try:
            window = await read_window(request.path, request.cell_id, server_settings, settings)
        except Exception as exc:
            log.debug("Completion context unavailable for %s: %s", request.path, exc)
            window = None
    markdown = is_markdown(request, window)
    instruction = completion_instruction(request, settings, markdown=markdown)
    system = MARKDOWN_SYSTEM_PROMPT if markdown else CODE_SYSTEM_PROMPT
    plain = Prompt(
        [SystemMessage(content=system), HumanMessage(content=instruction)],
        origin="none",
        markdown=markdown,
    )
    if window is None or len(window.cells) <= 1:
        return plain
    try:
        ctx = await _context(request, window, settings, model=model, images=images)
    except Exception as exc:  # the builder rejecting a notebook must not break completion
        log.warning(
            "Completion context failed for %s (%s): %s", request.path, type(exc).__name__, exc
        )
        return plain
    return Prompt(
        ctx.to_langchain_messages(instruction, system=system),
        origin=window.origin,
        markdown=markdown,
        images=len(ctx.images),
        context_cells=len(window.cells) - 1,
    )


async def _context(
    request: CompletionRequest,
    window: Window,
    settings: CompletionSettings,
    *,
    model: str | None,
    images: bool,
) -> VisionContext:
    """The shared context builder over the window, in a worker thread."""
    from jupyter_ai_vision.context.builder import build_from_snapshot
    from jupyter_ai_vision.context.snapshot import load_notebook

    wanted = settings.images and settings.max_images > 0
    # A text-only model with a caption model: the figure is prepared as for the caption
    # model, then sent as its caption.
    captioner = settings.caption_model if wanted and not images else None

    def build() -> VisionContext:
        snapshot = load_notebook(
            prepare_window(window, settings),
            path=window.path or request.path,
            root_dir=window.root_dir,
        )
        snapshot.numbers, snapshot.total_cells = window.numbers, window.total_cells
        return build_from_snapshot(
            snapshot,
            focus=window.focus,
            model=captioner or model,
            policy=image_policy(settings),
            supports_images=True if captioner else images and wanted,
        )

    ctx = await asyncio.get_running_loop().run_in_executor(None, build)
    if captioner:
        from jupyter_ai_vision.llm.captions import CaptionSettings, captioned_context

        caption = CaptionSettings(
            model=captioner,
            api_base=settings.caption_api_base,
            budget=settings.caption_budget,
            max_images=settings.max_images,
        )
        ctx, _ = await captioned_context(ctx, caption)
    return ctx
