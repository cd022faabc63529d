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

Only then is it rendered with vl_convert, in the sandbox (:mod:`.sandbox`: persistent worker
processes with a memory cap, killed on timeout and replaced): some SVG constructs (e.g. a
huge ``<pattern>``) still make resvg allocate terabytes and abort, and that must cost one
SVG, never the Jupyter server.
"""

from __future__ import annotations

import math
import re
from typing import Any
from xml.parsers import expat

from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy, fit_within
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.media.sandbox import Sandbox, SandboxFailure
from jupyter_ai_vision.mimes import decode_base64

_DROP_ELEMENTS = {"script", "foreignobject", "iframe", "handler", "listener", "audio", "video"}
_RASTER_DATA = re.compile(r"^\s*data:image/(png|jpeg|jpg|gif|webp)\s*;\s*base64\s*,", re.I)
_URL_START = re.compile(r"url\(", re.I)  # the rest of a url(...) is scanned by str.find
_IMPORT = re.compile(r"@import[^;]*;?", re.I)
# CSS units -> px at 96 dpi, as resvg resolves them.
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
# One way to match each digit (``\d+\.?\d*`` backtracks cubically on "111...1!").
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z%]*)\s*$", re.I)
_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def rasterize_svg(svg: bytes | str, policy: ImagePolicy, *, deadline: float | None = None) -> bytes:
    """Render an SVG to PNG bytes safely, at most the policy's size (never upscaled).
    ``deadline`` (``time.monotonic()``): no rendering after it, not even waiting for a worker.
    Raises :class:`ImageRejected` with a one-line reason."""
    text = _as_text(svg, policy)
    clean, _size = sanitize_svg(text, policy)
    png = _render(clean, policy, deadline)
    head = image_size(png)
    if head is None or head[0] * head[1] > policy.max_svg_pixels:
        raise ImageRejected("SVG could not be rendered: unexpected renderer output")
    return png


def prewarm(policy: ImagePolicy | None = None) -> None:
    """Start one render worker in the background, so the first SVG does not wait for it."""
    SANDBOX.prewarm((policy or ImagePolicy()).svg_memory_bytes)


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
    # A scan, not a lazy regex: ``url\((.*?)\)`` rescans to the end from every unclosed
    # ``url(`` (quadratic: 80 kB of them took 17 s). An unclosed one runs to the end, as in CSS.
    out: list[str] = []
    pos = 0
    while match := _URL_START.search(css, pos):
        end = _url_end(css, match.end())
        inner = css[match.end() : end].strip().strip("'\"").strip()
        closed = end < len(css)
        kept = css[match.start() : end + 1] if closed and inner.startswith("#") else "none"
        out += [css[pos : match.start()], kept]
        pos = end + 1
    out.append(css[pos:])
    return "".join(out)


def _url_end(css: str, start: int) -> int:
    """Index of the ``)`` closing a ``url(`` whose argument starts at ``start`` (len if none)."""
    i = start
    while i < len(css) and css[i] in " \t\r\n\f":
        i += 1
    if i < len(css) and css[i] in "'\"":
        quote_end = css.find(css[i], i + 1)
        i = len(css) if quote_end == -1 else quote_end + 1
    close = css.find(")", i)
    return len(css) if close == -1 else close


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

# What an SVG worker runs (see media/sandbox.py): resvg through vl_convert, nothing else.
_PROGRAM = r"""
import vl_convert
def warm():
    vl_convert.svg_to_png('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')
def svg_to_png(data, options):
    return vl_convert.svg_to_png(data.decode("utf-8"), scale=options.get("scale", 1.0))
OPS = {"svg_to_png": svg_to_png}
"""

#: The SVG render workers (resvg): two, each under ``ImagePolicy.svg_memory_bytes`` of
#: address space (resvg needs no large reservation, so the tighter RLIMIT_AS holds).
SANDBOX = Sandbox("SVG", _PROGRAM, size=2, cap_address_space=True)


def _render(svg: str, policy: ImagePolicy, deadline: float | None) -> bytes:
    try:
        return SANDBOX.call(
            "svg_to_png",
            svg.encode("utf-8"),
            timeout=policy.svg_timeout,
            memory_bytes=policy.svg_memory_bytes,
            deadline=deadline,
        )
    except SandboxFailure as exc:
        prefix = {
            "error": "SVG could not be rendered",
            "start": "SVG could not be rendered",
            "busy": "SVG not rendered",
            "deadline": "SVG not rendered",
        }.get(exc.kind, "SVG rejected")  # timeout, crash: the SVG itself
        raise ImageRejected(f"{prefix}: {exc.detail}") from None
