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

from jupyter_ai_vision.errors import ChartRefused, ChartsStarting, RenderError
from jupyter_ai_vision.media.charts._browser import (
    INSTALL_HINT,
    ChartRenderer,
    plotly_js_path,
    unavailable_reason,
)
from jupyter_ai_vision.media.charts.plotly_safety import sanitize_figure

__all__ = [
    "INSTALL_HINT",
    "ChartRefused",
    "ChartRenderer",
    "ChartsStarting",
    "Rendered",
    "default_renderer",
    "render_bokeh",
    "render_plotly",
    "shutdown",
    "start",
    "unavailable_reason",
    "vet",
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
    """A chart drawn as PNG, how long it took, and what was left out of it."""

    png: bytes
    seconds: float  # the whole call: waiting for the browser's start or a busy tab included
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


def vet(source: str, payload: Any) -> None:
    """Raise :class:`ChartRefused` for a chart that is never drawn (no browser involved)."""
    if source == "plotly":
        sanitize_figure(payload)
    else:
        from jupyter_ai_vision.media.charts import bokeh

        bokeh.sanitize(payload)


def render_plotly(
    fig: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    renderer: ChartRenderer | None = None,
) -> Rendered:
    """Plotly figure JSON -> PNG, with every URL / file reference removed first.

    Raises :class:`ChartRefused` (never drawn: keep the text summary), :class:`ChartsStarting`
    or :class:`RenderError` (not this time).
    """
    safe = sanitize_figure(fig)
    if plotly_js_path() is None:
        raise RenderError(
            "install plotly in the Jupyter server's environment to send Plotly charts as images"
        )
    width, height = chart_size(safe.figure["layout"])
    message = {
        "op": "plotly",
        "figure": safe.figure,
        "opts": {"format": "png", "width": width, "height": height, "scale": 1},
    }
    return _timed(renderer, message, timeout, "Plotly chart", safe.notes)


def _timed(
    renderer: ChartRenderer | None,
    message: dict[str, Any],
    timeout: float,
    what: str,
    notes: list[str],
) -> Rendered:
    started = time.perf_counter()
    png = (renderer or default_renderer()).request(message, timeout=timeout, what=what)
    return Rendered(png, time.perf_counter() - started, notes)


def canonical(value: Any, depth: int = 0) -> Any:
    """``value`` with integral floats as ints, for a content hash that is the same whether
    the notebook came from a file (``1``) or a live Y document (which stores ``1.0``)."""
    if depth > 200:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: canonical(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v, depth + 1) for v in value]
    return value


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


def render_bokeh(
    doc: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    renderer: ChartRenderer | None = None,
) -> Rendered:
    """A Bokeh document (:class:`bokeh.BokehDoc`) -> PNG, drawn by the server's own BokehJS.

    Raises :class:`ChartRefused`, :class:`ChartsStarting` or :class:`RenderError`.
    """
    from jupyter_ai_vision.media.charts import bokeh

    if bokeh.bokehjs_dir() is None:
        raise RenderError(
            "install bokeh in the Jupyter server's environment to send Bokeh plots as images"
        )
    safe = bokeh.sanitize(doc)
    message = {"op": "bokeh", "docs_json": safe.docs_json, "render_items": safe.render_items}
    return _timed(renderer, message, timeout, "Bokeh plot", safe.notes)
