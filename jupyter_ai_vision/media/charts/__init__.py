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

import io
import threading
import time
from collections.abc import Awaitable, Callable
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
    browser_seconds: float = 0.0  # drawing only


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
        return bytes(await session.kaleido.calc_fig(safe.figure, opts=opts))

    return _timed(renderer, job, timeout, "Plotly chart", safe.notes)


def _timed(
    renderer: ChartRenderer | None,
    job: Callable[[Any], Awaitable[bytes]],
    timeout: float,
    what: str,
    notes: list[str],
) -> Rendered:
    drawing: list[float] = []

    async def timed_job(session: Any) -> bytes:
        began = time.perf_counter()
        try:
            return await job(session)
        finally:
            drawing.append(time.perf_counter() - began)

    started = time.perf_counter()
    png = (renderer or default_renderer()).run(timed_job, timeout=timeout, what=what)
    return Rendered(png, time.perf_counter() - started, notes, sum(drawing))


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

    Raises :class:`RenderError` (one line: keep the text summary) or :class:`ChartsStarting`.
    """
    from jupyter_ai_vision.media.charts import bokeh

    js_dir = bokeh.bokehjs_dir()
    if js_dir is None:
        raise RenderError(
            "install bokeh in the Jupyter server's environment to send Bokeh plots as images"
        )
    safe = bokeh.sanitize(doc)

    async def job(session: Any) -> bytes:
        return await _bokeh_screenshot(session, js_dir, safe)

    return _timed(renderer, job, timeout, "Bokeh plot", safe.notes)


async def _bokeh_screenshot(session: Any, js_dir: Any, doc: Any) -> bytes:
    """Draw ``doc`` on a fresh page in the session's Bokeh tab and screenshot the plot."""
    import base64
    import json

    from jupyter_ai_vision.media.charts import bokeh
    from jupyter_ai_vision.media.charts._browser import CSP_META

    tab = session.extra.get("bokeh_tab")
    if tab is None:
        page = session.tmp / "bokeh.html"
        page.write_text(bokeh.page_html(js_dir, CSP_META), encoding="utf-8")
        tab = await session.kaleido.create_tab(url="")
        await _command(tab, "Page.enable")
        await _command(tab, "Runtime.enable")
        await _command(
            tab,
            "Emulation.setDeviceMetricsOverride",
            {
                "width": MAX_CHART_EDGE // 2,
                "height": MAX_CHART_EDGE // 2,
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )
        session.extra["bokeh_tab"] = tab
        session.extra["bokeh_page"] = page.as_uri()
    loaded = tab.subscribe_once("Page.loadEventFired")
    await _command(tab, "Page.navigate", {"url": session.extra["bokeh_page"]})  # a fresh page
    await loaded
    window = await _command(tab, "Runtime.evaluate", {"expression": "window"})
    result = await _command(
        tab,
        "Runtime.callFunctionOn",
        {
            "functionDeclaration": bokeh.EMBED_JS,
            "objectId": window["result"]["objectId"],
            "arguments": [{"value": doc.docs_json}, {"value": doc.render_items}],
            "awaitPromise": True,
            "returnByValue": True,
        },
    )
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text", "error")
        raise RenderError(
            f"Bokeh plot not rendered: BokehJS error: {str(text).splitlines()[0][:200]}"
        )
    box = json.loads(result["result"]["value"])
    width = min(int(box["width"] + 0.999), MAX_CHART_EDGE)
    height = min(int(box["height"] + 0.999), MAX_CHART_EDGE)
    if width < 2 or height < 2:
        raise RenderError("Bokeh plot not rendered: BokehJS drew nothing")
    shot = await _command(
        tab,
        "Page.captureScreenshot",
        {
            "format": "png",
            "clip": {"x": box["x"], "y": box["y"], "width": width, "height": height, "scale": 1},
            "captureBeyondViewport": True,
        },
    )
    return _trim_background(base64.b64decode(shot["data"]))


def _trim_background(png: bytes) -> bytes:
    """The screenshot without the page's blank margins (a layout may stretch its box to the
    viewport's width while drawing far less)."""
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(png)) as shot:
        rgb = shot.convert("RGB")
    blank = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, blank).getbbox()
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) > 0.8 * rgb.width * rgb.height:
        return png  # blank, or margins too small to matter: the plot exactly as drawn
    left, top, right, bottom = box
    pad = 4
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(rgb.width, right + pad),
        min(rgb.height, bottom + pad),
    )
    out = io.BytesIO()
    rgb.crop(box).save(out, "PNG", compress_level=3)
    return out.getvalue()


async def _command(tab: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await tab.send_command(method, params=params or {})
    if "error" in response:
        message = response["error"].get("message", "error")
        raise RenderError(f"chart browser error in {method}: {message}")
    result = response.get("result", {})
    return result if isinstance(result, dict) else {}
