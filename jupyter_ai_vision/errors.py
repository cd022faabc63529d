"""Every exception this package raises for the user to read, under one base.

``str(error)`` is the one line shown to the user (no traceback, no secrets): each surface
catches :class:`VisionError` and shows it, and treats anything else as a bug to log. A leaf
module: exceptions only (the messages for *model* faults live in ``llm/error_messages.py``).
"""

from __future__ import annotations


class VisionError(Exception):
    """An error whose message is one line, fit to show the user as it is."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback (``%%ai``, kernel-side errors).
        return [f"{type(self).__name__}: {self}"]


# -- the notebook ----------------------------------------------------------------------------


class NotebookError(VisionError, ValueError):
    """The notebook cannot be used (missing, empty, invalid JSON, not a v4 notebook, too big,
    not a regular file)."""


class LiveError(VisionError):
    """No notebook could be found or read for a request (server side)."""


class NoNotebookOpen(LiveError):
    """The user has no notebook open and named none."""


class NotebookNotFound(LiveError):
    """The named notebook does not exist inside the server root."""


class AmbiguousNotebook(LiveError):
    """Several notebooks are open and nothing says which one is meant."""


class NotebookUnreadable(LiveError):
    """The notebook exists but cannot be read."""


# -- content ---------------------------------------------------------------------------------


class ImageRejected(VisionError, ValueError):
    """An image that cannot be used; ``reason`` is one line, fit for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenderError(VisionError):
    """A chart or drawing could not be rendered."""


class ChartRefused(RenderError):
    """An interactive chart that is never drawn, whatever the browser's state (it would load
    remote map data, run code, ...): the same answer every time, so it may be cached."""


class ChartsStarting(RenderError):
    """The chart browser is still starting: this chart is described as text this time."""


class MarkdownImageError(VisionError):
    """A markdown image could not be used."""


class UnsafeLink(MarkdownImageError):
    """A link that points outside the server root, to a hidden/non-image file, or a URL."""


class MissingAttachment(MarkdownImageError):
    """``attachment:name`` names no attachment of the cell."""


class UnsafePath(VisionError, ValueError):
    """A path that leaves the server root (or breaks the caller's extra rules)."""


# -- kernels and @name -----------------------------------------------------------------------


class KernelQueryError(VisionError):
    """The kernel could not answer."""


class KernelBusy(KernelQueryError):
    """The kernel is running a cell and did not answer in time."""


class KernelDead(KernelQueryError):
    """The kernel is not running."""


class NameNotFound(VisionError, LookupError):
    """An ``@name`` reference that does not exist in the kernel."""


class ReprFailed(VisionError):
    """A repr raised, hung or returned something unusable."""


# -- models ----------------------------------------------------------------------------------


class ModelParameterError(VisionError, ValueError):
    """A model parameter with the wrong type or value."""


class ModelError(VisionError):
    """A model call failed (plain-litellm paths, e.g. ``llm.stream.stream_chat``); ``str`` is
    the one line from ``llm/error_messages``. ``kind`` is the LiteLLM exception class it maps
    from (None: not a LiteLLM error), ``images_refused`` says the model takes no images."""

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status_code: int | None = None,
        images_refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code
        self.images_refused = images_refused


# -- tools -----------------------------------------------------------------------------------


class ToolInputError(VisionError, ValueError):
    """An MCP tool argument that cannot be used (wrong type, too long, control characters), or
    a call that took too long: one line for the calling model."""
