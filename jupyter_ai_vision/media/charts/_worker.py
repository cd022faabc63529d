"""The chart worker: a separate Python process that owns kaleido and the locked-down Chromium.

Run by ``_browser.ChartRenderer`` as ``python -m jupyter_ai_vision.media.charts._worker``. It
lives apart from the Jupyter server so that nothing it does shares the server's GIL: importing
kaleido (which imports plotly) held the GIL long enough to stall the server's event loop by
~200 ms (measured), and choreographer encodes every figure to JSON in Python.

Protocol on stdin/stdout: frames of a 4-byte big-endian length and UTF-8 JSON. The first frame
out is ``{"ready": true, "browser_pgid": N}`` or ``{"ready": false, "error": "..."}``; then one
reply per request: ``{"ok": true, "png": base64}`` or ``{"ok": false, "error": "...",
"broken": bool}`` (broken: the browser died, kill and restart). Requests:

- ``{"op": "plotly", "figure": {...}, "opts": {...}}``: kaleido's ``calc_fig``;
- ``{"op": "bokeh", "docs_json": {...}, "render_items": [...]}``: BokehJS from the server's
  ``bokeh`` package draws it in a fresh page, then a screenshot;
- ``{"op": "navigate", "urls": [...]}``: load each URL in a tab (a probe: the tests use it to
  show the browser has no network even for a top-level navigation, where no CSP applies).

The figure is sanitised by the caller before it gets here (``plotly_safety``, ``bokeh``);
the page's CSP and the browser's flags (``_browser``) hold on their own as well.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import struct
import sys
from pathlib import Path
from typing import IO, Any

from jupyter_ai_vision.media.charts._browser import (
    CSP_META,
    LOCKDOWN_FLAGS,
    UNSAFE_FLAGS,
    find_browser,
    plotly_js_path,
)

#: A tab is reloaded (fresh page state) after this many renders, and after any failed one.
RELOAD_EVERY = 50
MAX_EDGE = 4096


class WorkerError(Exception):
    """One line for the caller; ``broken``: the browser is gone."""

    def __init__(self, message: str, *, broken: bool = False) -> None:
        super().__init__(message)
        self.broken = broken


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own channel ...
    os.dup2(2, 1)  # ... and stray prints from libraries go to stderr
    inp = sys.stdin.buffer
    tmp = Path(sys.argv[1])
    heap_mb = int(sys.argv[2])
    _quiet_logs()
    return asyncio.run(_serve(inp, out, tmp, heap_mb))


async def _serve(inp: IO[bytes], out: IO[bytes], tmp: Path, heap_mb: int) -> int:
    try:
        kaleido = await _open(tmp, heap_mb)
    except Exception as exc:  # no browser, it died at start, kaleido too old...
        _write(out, {"ready": False, "error": _one_line(exc)})
        return 1
    _write(out, {"ready": True, "browser_pgid": kaleido.subprocess.pid})
    state: dict[str, Any] = {"tmp": tmp}
    loop = asyncio.get_running_loop()
    while True:
        request = await loop.run_in_executor(None, _read, inp)
        if request is None:  # the server closed the pipe: stop the browser and go
            break
        try:
            png = await _handle(kaleido, request, state)
            reply: dict[str, Any] = {"ok": True, "png": base64.b64encode(png).decode("ascii")}
        except WorkerError as exc:
            reply = {"ok": False, "error": str(exc), "broken": exc.broken}
        except Exception as exc:
            broken = kaleido.subprocess.poll() is not None
            reply = {"ok": False, "error": _one_line(exc), "broken": broken}
        _write(out, reply)
    await kaleido.close()
    return 0


async def _open(tmp: Path, heap_mb: int) -> Any:
    import kaleido

    browser_path = find_browser()
    if browser_path is None:
        raise WorkerError("install chromium to send interactive charts as images")
    (tmp / "profile").mkdir(exist_ok=True)
    k = _reusing_kaleido(kaleido)(
        n=1,
        timeout=None,  # the caller's wall-clock deadline; then this whole process is killed
        page_generator=_plotly_page(kaleido, plotly_js_path(), tmp),
        browser_cls=_locked_chromium(heap_mb),
        path=browser_path,
        enable_extensions=False,
        tmp_dir=str(tmp / "profile"),
    )
    await k.open()
    return k


async def _handle(kaleido: Any, request: dict[str, Any], state: dict[str, Any]) -> bytes:
    op = request.get("op")
    if op == "plotly":
        return bytes(await kaleido.calc_fig(request["figure"], opts=request["opts"]))
    if op == "bokeh":
        return await _bokeh(kaleido, request, state)
    if op == "navigate":
        tab = await kaleido.create_tab(url="")
        try:
            for url in request["urls"]:
                await tab.send_command("Page.navigate", params={"url": str(url)})
                await asyncio.sleep(0.5)
        finally:
            await tab.close()
        return b""
    raise WorkerError(f"unknown request {op!r}")


def _reusing_kaleido(kaleido: Any) -> type:
    """kaleido's browser, keeping its page between renders.

    kaleido reloads the page after every figure, which re-parses plotly.js (4.6 MB): ~0.2-0.4 s
    of a ~0.02-0.04 s render (measured). ``Plotly.toImage`` draws into a detached div it
    purges, so the page is reused, and reloaded every ``RELOAD_EVERY`` renders and after a
    failure. If a later kaleido renames this hook, it reloads every time: slower, never wrong.
    """

    class ReusingKaleido(kaleido.Kaleido):  # type: ignore[misc,name-defined]
        _renders_since_reload = 0

        async def _return_kaleido_tab(self, tab: Any) -> None:
            self._renders_since_reload += 1
            # Called from kaleido's ``finally``: an exception in flight means the render failed.
            if sys.exc_info()[0] is not None or self._renders_since_reload >= RELOAD_EVERY:
                self._renders_since_reload = 0
                await tab.reload()
            await self.tabs_ready.put(tab)

    return ReusingKaleido


def _plotly_page(kaleido: Any, plotly_js: Path | None, tmp: Path) -> Any:
    """kaleido's page with our CSP, the server's own plotly.js and no MathJax (a CDN)."""

    class LockedPage(kaleido.PageGenerator):  # type: ignore[misc,name-defined]
        header = kaleido.PageGenerator.header.replace("<head>", "<head>\n        " + CSP_META, 1)

    if plotly_js is None:
        # kaleido would fall back to a CDN. Without plotly.js the page renders no Plotly
        # chart (render_plotly says why before asking) but still serves Bokeh.
        plotly_js = tmp / "no-plotly.js"
        plotly_js.write_text("/* plotly is not installed in the server's environment */\n")
    return LockedPage(mathjax=False, plotly=str(plotly_js))


def _locked_chromium(heap_mb: int) -> type:
    """choreographer's Chromium launcher with its network and file openings closed."""
    from choreographer.browsers.chromium import Chromium

    class LockedChromium(Chromium):  # type: ignore[misc,valid-type]
        def get_cli(self) -> list[str]:
            cli = [arg for arg in super().get_cli() if arg not in UNSAFE_FLAGS]
            return [*cli, *LOCKDOWN_FLAGS, f"--js-flags=--max-old-space-size={heap_mb}"]

    return LockedChromium


async def _bokeh(kaleido: Any, request: dict[str, Any], state: dict[str, Any]) -> bytes:
    """Draw a Bokeh document on a fresh page of the Bokeh tab and screenshot it."""
    from jupyter_ai_vision.media.charts import bokeh

    tab = state.get("bokeh_tab")
    if tab is None:
        js_dir = bokeh.bokehjs_dir()
        if js_dir is None:
            raise WorkerError("install bokeh in the Jupyter server's environment")
        page = state["tmp"] / "bokeh.html"
        page.write_text(bokeh.page_html(js_dir, CSP_META), encoding="utf-8")
        tab = await kaleido.create_tab(url="")
        await _command(tab, "Page.enable")
        await _command(tab, "Runtime.enable")
        metrics = {"width": MAX_EDGE // 2, "height": MAX_EDGE // 2, "deviceScaleFactor": 1}
        await _command(tab, "Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
        state["bokeh_tab"], state["bokeh_page"] = tab, page.as_uri()
    loaded = tab.subscribe_once("Page.loadEventFired")
    await _command(tab, "Page.navigate", {"url": state["bokeh_page"]})  # a fresh page each time
    await loaded
    window = await _command(tab, "Runtime.evaluate", {"expression": "window"})
    result = await _command(
        tab,
        "Runtime.callFunctionOn",
        {
            "functionDeclaration": bokeh.EMBED_JS,
            "objectId": window["result"]["objectId"],
            # The document goes in as data, never as code.
            "arguments": [{"value": request["docs_json"]}, {"value": request["render_items"]}],
            "awaitPromise": True,
            "returnByValue": True,
        },
    )
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text", "error")
        raise WorkerError(f"BokehJS error: {str(text).splitlines()[0][:200]}")
    box = json.loads(result["result"]["value"])
    width = min(int(box["width"] + 0.999), MAX_EDGE)
    height = min(int(box["height"] + 0.999), MAX_EDGE)
    if width < 2 or height < 2:
        raise WorkerError("BokehJS drew nothing")
    clip = {"x": box["x"], "y": box["y"], "width": width, "height": height, "scale": 1}
    shot = await _command(
        tab,
        "Page.captureScreenshot",
        {"format": "png", "clip": clip, "captureBeyondViewport": True},
    )
    return _trim_background(base64.b64decode(shot["data"]))


async def _command(tab: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await tab.send_command(method, params=params or {})
    if "error" in response:
        raise WorkerError(f"browser error in {method}: {response['error'].get('message')}")
    result = response.get("result", {})
    return result if isinstance(result, dict) else {}


def _trim_background(png: bytes) -> bytes:
    """The screenshot without the page's blank margins (a layout may stretch its box to the
    viewport's width while drawing far less); kept as drawn when little would go."""
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(png)) as shot:
        rgb = shot.convert("RGB")
    blank = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, blank).getbbox()
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) > 0.8 * rgb.width * rgb.height:
        return png
    pad = 4
    left, top, right, bottom = box
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(rgb.width, right + pad),
        min(rgb.height, bottom + pad),
    )
    out = io.BytesIO()
    rgb.crop(box).save(out, "PNG", compress_level=3)
    return out.getvalue()


def _read(inp: IO[bytes]) -> dict[str, Any] | None:
    head = inp.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    body = inp.read(size)
    if len(body) < size:
        return None
    value = json.loads(body)
    return value if isinstance(value, dict) else None


def _write(out: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def _quiet_logs() -> None:
    # kaleido, choreographer and the browser's stderr log through logistro (INFO, and a
    # warning each time a browser is killed on purpose): nobody reads this process's stderr.
    logging.basicConfig(level=logging.ERROR)
    for name in ("kaleido", "choreographer", "browser_proc", "chrome_wrapper", "logistro"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


if __name__ == "__main__":
    sys.exit(main())
