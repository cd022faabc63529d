"""The one MIME table, and the one base64 / ``data:`` URI decoder.

Every module that asks "is this an image?", "which output do we prefer?" or "what does this
base64 hold?" asks here, so preference order, aliases and size limits cannot drift apart.
A leaf module: stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes

from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy

#: Raster mimes every vision API accepts, in preference order (a bundle may carry several,
#: e.g. PIL: png + jpeg).
RASTER_MIMES = ("image/png", "image/jpeg", "image/webp", "image/gif")
SVG_MIME = "image/svg+xml"
IMAGE_MIMES = (*RASTER_MIMES, SVG_MIME)
#: sniffed format -> the mime it is sent as
SENDABLE = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
#: image file types a local link or an attached file may be
IMAGE_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": SVG_MIME,
}
TEXT_MIMES = ("text/markdown", "text/plain")

PLOTLY_MIME = "application/vnd.plotly.v1+json"
BOKEH_LOAD_MIME = "application/vnd.bokehjs_load.v0+json"
BOKEH_EXEC_MIME = "application/vnd.bokehjs_exec.v0+json"
#: Bundles made only of these carry code for the browser, not content (Bokeh's loader and
#: exec outputs: the plot itself is the separate HTML output).
SCRIPT_ONLY_MIMES = frozenset({"application/javascript", BOKEH_LOAD_MIME, BOKEH_EXEC_MIME})
#: Vega-Lite outputs: ``application/vnd.vegalite.v3..v6+json`` and Altair 6's ``.v6.json``.
VEGALITE_MIME = re.compile(r"^application/vnd\.vegalite\.v([3-6])(?:\+json|\.json)$")
#: Vega (not Vega-Lite) outputs.
VEGA_MIME = re.compile(r"^application/vnd\.vega\.v(\d+)(?:\+json|\.json)$")

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


def normalise(mime: object) -> str:
    """``"Image/JPG; q=1"`` -> ``"image/jpeg"``; anything that is not text -> ``""``."""
    if not isinstance(mime, str):
        return ""
    base = mime.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def is_vegalite(mime: str) -> bool:
    return bool(VEGALITE_MIME.match(mime))


def is_vega(mime: str) -> bool:
    return bool(VEGA_MIME.match(mime))


def _mb(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


def decode_base64(payload: object, limit: int | ImagePolicy) -> bytes:
    """Decode notebook base64: a str, nbformat's list of lines, or bytes; a ``data:...;base64,``
    prefix is accepted. The length is checked before anything is joined or decoded.

    ``limit`` is a number of base64 characters (or a policy: its ``max_base64_chars``).
    Raises :class:`ImageRejected` with a one-line reason.
    """
    max_chars = limit.max_base64_chars if isinstance(limit, ImagePolicy) else limit
    if isinstance(payload, list):
        if not all(isinstance(x, str) for x in payload):
            raise ImageRejected("invalid base64 image data: expected text lines")
        total = sum(len(x) for x in payload)
    elif isinstance(payload, (str, bytes)):
        total = len(payload)
    else:
        raise ImageRejected(
            f"invalid base64 image data: expected text, got {type(payload).__name__}"
        )
    if total > max_chars:
        raise ImageRejected(
            f"image data too large: {_mb(total)} of base64 "
            f"(limit {_mb(max_chars)}); save a smaller figure"
        )
    text = "".join(payload) if isinstance(payload, list) else payload
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ImageRejected("invalid base64 image data: not ASCII text") from None
    assert isinstance(text, str)
    if text[:5].lower() == "data:":
        head, _, text = text.partition(",")
        if not head.lower().endswith(";base64"):
            raise ImageRejected("invalid base64 image data: data URI is not base64-encoded")
    if any(ws in text for ws in " \n\r\t"):  # nbformat stores lines; skip the copy otherwise
        text = "".join(text.split())
    if not text:
        raise ImageRejected("empty image data")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("invalid base64 image data: not decodable") from None


# Bounded, anchored and without nested quantifiers: linear on any input.
_DATA_URI_HEAD = re.compile(
    r"\s{0,64}data:([\w.+/-]{1,100})((?:;[\w=.+-]{1,100}){0,10}?)(;base64)?,", re.I
)


def parse_data_uri(uri: str, limit: int | ImagePolicy) -> tuple[str, bytes] | None:
    """``(mime, raw bytes)`` for a ``data:image/...`` URI, or None when it is not an image,
    is invalid or is larger than ``limit`` characters."""
    max_chars = limit.max_base64_chars if isinstance(limit, ImagePolicy) else limit
    match = _DATA_URI_HEAD.match(uri)
    if not match or len(uri) > max_chars:
        return None
    mime = normalise(match.group(1))
    if mime not in IMAGE_MIMES:
        return None
    payload = uri[match.end() :]
    if match.group(3):
        try:
            return mime, decode_base64(payload, max_chars)
        except ImageRejected:
            return None
    return mime, unquote_to_bytes(payload)
