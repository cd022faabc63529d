"""jupyter-ai-vision: lets the AI in Jupyter see a notebook's plots, images, charts and tables.

Public API (imported lazily so that ``import jupyter_ai_vision`` stays cheap: the Jupyter
server imports every provider at start-up):

- :func:`build_context` / :func:`build_context_async`: notebook -> :class:`VisionContext`
- :class:`VisionContext`, :class:`TextPart`, :class:`ImagePart`, :class:`SkippedItem`
- :class:`ImagePolicy`: the image budget
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_ai_vision import _compat

__version__ = "0.2.0"

_compat.install()

_LAZY = {
    "build_context": "jupyter_ai_vision.context.builder",
    "build_context_async": "jupyter_ai_vision.context.builder",
    "NotebookError": "jupyter_ai_vision.context.snapshot",
    "ImagePolicy": "jupyter_ai_vision.limits",
    "VisionContext": "jupyter_ai_vision.context.parts",
    "TextPart": "jupyter_ai_vision.context.parts",
    "ImagePart": "jupyter_ai_vision.context.parts",
    "SkippedItem": "jupyter_ai_vision.context.parts",
    "Provenance": "jupyter_ai_vision.context.parts",
}

__all__ = [
    "ImagePart",
    "ImagePolicy",
    "NotebookError",
    "Provenance",
    "SkippedItem",
    "TextPart",
    "VisionContext",
    "__version__",
    "build_context",
    "build_context_async",
    "load_ipython_extension",
]

if TYPE_CHECKING:
    from jupyter_ai_vision.context.budget import ImagePolicy
    from jupyter_ai_vision.context.builder import build_context, build_context_async
    from jupyter_ai_vision.context.parts import (
        ImagePart,
        Provenance,
        SkippedItem,
        TextPart,
        VisionContext,
    )
    from jupyter_ai_vision.context.snapshot import NotebookError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_ai_vision' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_ai_vision``: ``%%ai`` with ``@name`` references, and remembering
    displayed figures for ``@last_figure`` / ``@figures``.

    On Jupyter AI 2.x it loads jupyter_ai_magics (``%%ai vision:MODEL``); on 3.x (or without
    jupyter-ai-magics) it registers our own ``%%ai MODEL`` over LiteLLM.
    """
    from jupyter_ai_vision.host import uses_own_ai_magic

    if uses_own_ai_magic():
        from jupyter_ai_vision.hosts.jupyter_ai_3.magic import load_ipython_extension as load
    else:
        from jupyter_ai_vision.kernel.extension import load_ipython_extension as load
    load(ipython)
