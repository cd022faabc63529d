"""Interactive charts as pixels: Plotly (kaleido 1.x) and Bokeh (BokehJS from the installed
``bokeh``), drawn by one long-lived, locked-down headless Chromium.

Optional: needs ``jupyter-ai-vision[charts]`` (kaleido) and a Chromium / Chrome on the
machine (``$BROWSER_PATH`` or on ``PATH``). Without them every chart keeps its text summary
and :func:`unavailable_reason` gives the one line to show ("install chromium ...").

Nothing here starts a browser at import: the first render does (in the background), and a
render asked for while the browser is still starting waits at most its own timeout, then
raises :class:`ChartsStarting` (the caller sends the text summary instead).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_ai_vision.errors import RenderError
from jupyter_ai_vision.media.charts._browser import (
    INSTALL_HINT,
    ChartRenderer,
    ChartsStarting,
    plotly_js_path,
    unavailable_reason,
)
from jupyter_ai_vision.media.charts.plotly_safety import sanitize_figure

__all__ = [
    "INSTALL_HINT",
    "ChartRenderer",
    "ChartsStarting",
    "Rendered",
    "default_renderer",
    "render_plotly",
    "shutdown",
    "start",
    "unavailable_reason",
]

#: Seconds one chart may take, the browser's start included when it is not running yet.
DEFAULT_TIMEOUT = 10.0
#: Pixels of a rendered chart at most (the image budget downscales afterwards).
MAX_CHART_PIXELS = 16_000_000
MAX_CHART_EDGE = 4096
_DEFAULT_SIZE = (700, 500)  # plotly.js's own default

_renderer: ChartRenderer | None = None
_renderer_lock = threading.Lock()


@dataclass
class Rendered:
    """A chart drawn as PNG, how long the browser took, and what was left out of it."""

    png: bytes
    seconds: float
    notes: list[str] = field(default_factory=list)


def default_renderer() -> ChartRenderer:
    """The process-wide renderer (created on first use; its browser starts on first render)."""
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            _renderer = ChartRenderer()
        return _renderer


def start() -> None:
    """Start the browser in the background (e.g. as soon as a build finds a chart)."""
    if unavailable_reason() is None:
        default_renderer().start()


def shutdown() -> None:
    """Stop the browser (the server's shutdown hook and ``atexit`` call this)."""
    with _renderer_lock:
        renderer = _renderer
    if renderer is not None:
        renderer.close()


def render_plotly(
    fig: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    renderer: ChartRenderer | None = None,
) -> Rendered:
    """Plotly figure JSON -> PNG, with every URL / file reference removed first.

    Raises :class:`RenderError` (one line: not rendered, keep the text summary) or
    :class:`ChartsStarting`.
    """
    safe = sanitize_figure(fig)
    if plotly_js_path() is None:
        raise RenderError(
            "install plotly in the Jupyter server's environment to send Plotly charts as images"
        )
    width, height = chart_size(safe.figure["layout"])
    opts = {"format": "png", "width": width, "height": height, "scale": 1}

    async def job(session: Any) -> bytes:
        png = await session.kaleido.calc_fig(safe.figure, opts=opts)
        return bytes(png)

    started = time.perf_counter()
    png = (renderer or default_renderer()).run(job, timeout=timeout, what="Plotly chart")
    return Rendered(png, time.perf_counter() - started, safe.notes)


def chart_size(layout: dict[str, Any]) -> tuple[int, int]:
    """The figure's own width and height (plotly.js defaults otherwise), kept within caps."""
    sizes = []
    for key, default in zip(("width", "height"), _DEFAULT_SIZE, strict=True):
        value = layout.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 10:
            value = default
        sizes.append(int(min(value, MAX_CHART_EDGE)))
    width, height = sizes
    if width * height > MAX_CHART_PIXELS:
        scale = (MAX_CHART_PIXELS / (width * height)) ** 0.5
        width, height = int(width * scale), int(height * scale)
    return width, height
