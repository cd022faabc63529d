"""Safe SVG rasterisation.

``vl_convert.svg_to_png`` (resvg) reads local files and fetches URLs named in
``<image href>``, and aborts the whole process on a huge canvas. So the SVG is first
re-written by a strict expat pass that:

- rejects DOCTYPE internal subsets and any ENTITY declaration (XXE, billion laughs);
- drops ``<script>``, ``<foreignObject>``, comments and processing instructions;
- keeps only ``#fragment`` references and ``data:`` raster images (whose header size is
  checked against the decode cap); every other ``href`` / ``url(...)`` / ``@import`` is removed;
- pins the root ``width``/``height`` to the size the policy allows (and adds a
  ``viewBox`` so content scales), so the canvas can never exceed ``max_svg_pixels``.

Only then is it rendered with vl_convert, in a small pool of persistent worker processes
(``python -c``, address space limited by ``resource``, killed on timeout): some SVG
constructs (e.g. a huge ``<pattern>``) still make resvg allocate terabytes and abort, and
that must cost one SVG, never the Jupyter server.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import re
import struct
import subprocess
import sys
import threading
from typing import IO, Any
from xml.parsers import expat

from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy, fit_within
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.mimes import decode_base64

_DROP_ELEMENTS = {"script", "foreignobject", "iframe", "handler", "listener", "audio", "video"}
_RASTER_DATA = re.compile(r"^\s*data:image/(png|jpeg|jpg|gif|webp)\s*;\s*base64\s*,", re.I)
_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.I | re.S)
_IMPORT = re.compile(r"@import[^;]*;?", re.I)
# CSS units -> px at 96 dpi, as resvg resolves them.
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z%]*)\s*$", re.I)
_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def rasterize_svg(svg: bytes | str, policy: ImagePolicy) -> bytes:
    """Render an SVG to PNG bytes safely, at most the policy's size (never upscaled).
    Raises :class:`ImageRejected` with a one-line reason."""
    text = _as_text(svg, policy)
    clean, _size = sanitize_svg(text, policy)
    png = _POOL.render(clean, policy)
    head = image_size(png)
    if head is None or head[0] * head[1] > policy.max_svg_pixels:
        raise ImageRejected("SVG could not be rendered: unexpected renderer output")
    return png


def prewarm(policy: ImagePolicy | None = None) -> None:
    """Start one render worker in the background, so the first SVG does not wait for it."""
    memory = (policy or ImagePolicy()).svg_memory_bytes

    def start() -> None:
        with contextlib.suppress(ImageRejected):  # the next real render reports it
            _POOL._release(_POOL._acquire(memory))

    threading.Thread(target=start, name="svg-prewarm", daemon=True).start()


def _as_text(svg: bytes | str, policy: ImagePolicy) -> str:
    if len(svg) > policy.max_svg_chars:
        raise ImageRejected(
            f"SVG too large: {len(svg) / 1_000_000:.1f} MB "
            f"(limit {policy.max_svg_chars / 1_000_000:.1f} MB); save it as PNG instead"
        )
    if isinstance(svg, bytes):
        try:
            return svg.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImageRejected("SVG is not UTF-8 text") from None
    return svg


def sanitize_svg(text: str, policy: ImagePolicy) -> tuple[str, tuple[int, int]]:
    """Safe SVG source and the canvas size (px) it will render at."""
    return _Sanitizer(policy).run(text)


class _Sanitizer:
    def __init__(self, policy: ImagePolicy) -> None:
        self.policy = policy
        self.out: list[str] = []
        self.skip_depth = 0  # >0 while inside a dropped element
        self.depth = 0
        self.size: tuple[int, int] | None = None
        self.in_style = False

    def run(self, text: str) -> tuple[str, tuple[int, int]]:
        p = expat.ParserCreate()
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.buffer_text = True
        p.StartDoctypeDeclHandler = self._doctype
        p.EntityDeclHandler = self._entity
        p.UnparsedEntityDeclHandler = self._entity
        p.ExternalEntityRefHandler = self._external
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        try:
            p.Parse(text, True)
        except ImageRejected:
            raise
        except expat.ExpatError as exc:
            raise ImageRejected(f"invalid SVG (not well-formed XML: {exc})") from None
        if self.size is None:
            raise ImageRejected("invalid SVG: no <svg> root element")
        return "".join(self.out), self.size

    # -- rejections: nothing in a DTD is needed to draw an SVG
    def _doctype(self, name: str, sysid: Any, pubid: Any, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise ImageRejected(
                "SVG rejected: inline DOCTYPE declarations and entities are not allowed (XXE risk)"
            )

    def _entity(self, *args: Any) -> None:
        raise ImageRejected(
            "SVG rejected: inline DOCTYPE declarations and entities are not allowed (XXE risk)"
        )

    def _external(self, *args: Any) -> int:
        raise ImageRejected("SVG rejected: external entities are not allowed (XXE risk)")

    # -- elements
    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(":", 1)[-1].lower()
        if self.skip_depth or local in _DROP_ELEMENTS:
            self.skip_depth += 1
            return
        self.depth += 1
        if self.depth == 1:
            if local != "svg":
                raise ImageRejected(f"invalid SVG: root element is <{name}>, not <svg>")
            attrs = self._root(attrs)
        clean = {}
        for key, value in attrs.items():
            kept = self._attr(local, key, value)
            if kept is not None:
                clean[key] = kept
        self.in_style = local == "style"
        self.out.append(
            "<" + name + "".join(f' {k}="{v.translate(_ESC)}"' for k, v in clean.items()) + ">"
        )

    def _end(self, name: str) -> None:
        if self.skip_depth:
            self.skip_depth -= 1
            return
        self.depth -= 1
        self.in_style = False
        self.out.append(f"</{name}>")

    def _chars(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_style:
            data = _clean_css(data)
        self.out.append(data.translate(_ESC))

    def _attr(self, element: str, key: str, value: str) -> str | None:
        local = key.rsplit(":", 1)[-1].lower()
        if local.startswith("on"):  # event handlers
            return None
        if local in ("href", "src"):
            ref = value.strip()
            if ref.startswith("#"):
                return value
            if element in ("image", "feimage") and _RASTER_DATA.match(ref):
                return value if self._data_image_ok(ref) else None
            return None
        if "url(" in value.lower() or "@import" in value.lower():
            return _clean_css(value)
        return value

    def _data_image_ok(self, uri: str) -> bool:
        try:
            raw = decode_base64(uri, self.policy)
        except ImageRejected:
            return False
        head = image_size(raw)
        return head is not None and head[0] * head[1] <= self.policy.max_decode_pixels

    def _root(self, attrs: dict[str, str]) -> dict[str, str]:
        """Pin width/height to the allowed canvas; keep the drawing's scale via viewBox."""
        attrs = dict(attrs)
        vb = _viewbox(attrs.get("viewBox"))
        w = _length(attrs.get("width"))
        h = _length(attrs.get("height"))
        if w is None and h is None and vb:
            w, h = vb[2], vb[3]
        elif vb and (w is None or h is None):  # one side given: keep the viewBox's aspect
            if w is None and h is not None:
                w = h * vb[2] / vb[3]
            elif h is None and w is not None:
                h = w * vb[3] / vb[2]
        w = 100.0 if w is None else w  # resvg's default for a missing size
        h = 100.0 if h is None else h
        if not (0 < w < 1e9 and 0 < h < 1e9):
            raise ImageRejected("invalid SVG: width/height are not usable sizes")
        if vb is None:  # user units are px: a viewBox equal to the size keeps the drawing
            attrs["viewBox"] = f"0 0 {_num(w)} {_num(h)}"
        pixels = min(self.policy.max_pixels, self.policy.max_svg_pixels)
        tw, th = fit_within(max(1, int(w)), max(1, int(h)), self.policy.max_edge, pixels)
        attrs["width"], attrs["height"] = str(tw), str(th)
        self.size = (tw, th)
        return attrs


def _clean_css(css: str) -> str:
    """Drop ``@import`` and every ``url(...)`` that is not a ``#fragment``."""
    css = _IMPORT.sub("", css)
    return _URL.sub(lambda m: m.group(0) if m.group(2).strip().startswith("#") else "none", css)


def _length(value: str | None) -> float | None:
    if not value:
        return None
    m = _LENGTH.match(value)
    if not m or m.group(2).lower() not in _UNITS:
        return None  # %, em, auto...: fall back to the viewBox
    number = float(m.group(1)) * _UNITS[m.group(2).lower()]
    return number if math.isfinite(number) else None


def _viewbox(value: str | None) -> tuple[float, float, float, float] | None:
    if not value:
        return None
    try:
        parts = [float(x) for x in re.split(r"[\s,]+", value.strip())]
    except ValueError:
        return None
    if len(parts) != 4 or not all(math.isfinite(x) for x in parts):
        return None
    if parts[2] <= 0 or parts[3] <= 0:
        return None
    return parts[0], parts[1], parts[2], parts[3]


def _num(x: float) -> str:
    return f"{x:.6g}"


# ---------------------------------------------------------------- render workers

# Runs in the worker: read length-prefixed SVG text, answer status byte + length + payload.
_WORKER = r"""
import sys
sys.path = [p for p in sys.path if p not in ("", ".")]  # never import from the server's cwd
import struct
limit = int(sys.argv[1])
if limit > 0:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import vl_convert
vl_convert.svg_to_png('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')  # warm
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    svg = inp.read(struct.unpack(">I", head)[0]).decode("utf-8")
    try:
        status, payload = b"K", vl_convert.svg_to_png(svg)
    except Exception as exc:
        status, payload = b"E", (str(exc).splitlines() or ["error"])[0][:200].encode()
    out.write(status + struct.pack(">I", len(payload)) + payload)
    out.flush()
"""


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        limit = memory_bytes if sys.platform != "win32" else 0
        self.memory_bytes = memory_bytes
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # resvg's abort message is not for the server log
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

    def render(self, svg: str, timeout: float) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = svg.encode("utf-8")
        # A watchdog kills the worker on timeout: the blocking read then sees EOF.
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
            status = _read(self.proc.stdout, 1)
            (length,) = struct.unpack(">I", _read(self.proc.stdout, 4))
            payload = _read(self.proc.stdout, length)
        except (OSError, EOFError):
            self.kill()
            if not timer.is_alive():
                raise ImageRejected(
                    f"SVG rejected: rendering took longer than {timeout:g} s"
                ) from None
            raise ImageRejected(
                "SVG rejected: it made the renderer run out of memory or crash"
            ) from None
        finally:
            timer.cancel()
        if status == b"E":
            raise ImageRejected(f"SVG could not be rendered: {payload.decode(errors='replace')}")
        return payload

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


class _Pool:
    """Up to ``size`` persistent workers; a dead or timed-out worker is replaced."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        atexit.register(self.shutdown)

    def render(self, svg: str, policy: ImagePolicy) -> bytes:
        worker = self._acquire(policy.svg_memory_bytes)
        try:
            return worker.render(svg, policy.svg_timeout)
        finally:
            self._release(worker)

    def _acquire(self, memory_bytes: int) -> _Worker:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive() and worker.memory_bytes == memory_bytes:
                        return worker
                    worker.kill()
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _Worker(memory_bytes)
        except OSError as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise ImageRejected(f"SVG renderer could not start: {exc}") from None

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive():
                self._idle.append(worker)
            else:
                worker.kill()
                self._count -= 1
            self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            for worker in self._idle:
                worker.kill()
            self._count -= len(self._idle)
            self._idle.clear()


_POOL = _Pool()
