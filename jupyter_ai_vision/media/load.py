"""One entry for "make this image sendable": sniffs what the bytes really are and hands them
to the SVG sandbox or the raster normaliser, through the shared cache.

Kept apart from ``raster`` and ``svg`` so that neither imports the other.
"""

from __future__ import annotations

import hashlib

from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.media.raster import (
    ImageCache,
    PreparedImage,
    check_decode_size,
    prepare_raster,
    probe_other,
)
from jupyter_ai_vision.mimes import SVG_MIME, normalise


def _mb(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _check_input(data: bytes, mime: str, policy: ImagePolicy) -> None:
    """The checks every image passes before anything reads it: not empty, not too big."""
    if not data:
        raise ImageRejected(f"empty image data ({mime})")
    if len(data) > policy.max_input_bytes:
        raise ImageRejected(
            f"image too large: {_mb(len(data))} (limit {_mb(policy.max_input_bytes)}); "
            "save a smaller figure"
        )


def prepare_image(
    data: bytes, mime: str, policy: ImagePolicy, cache: ImageCache | None = None
) -> PreparedImage:
    """Validate and normalise one image (raster, or SVG drawn in the sandbox) for sending.
    Raises :class:`ImageRejected` with a one-line reason. Results and rejections are cached
    by ``(sha256, policy)``."""
    _check_input(data, mime, policy)
    sha = hashlib.sha256(data).hexdigest()
    if cache is not None:
        hit = cache.get(sha, policy)
        if isinstance(hit, ImageRejected):
            raise ImageRejected(hit.reason)
        if hit is not None:
            return hit
    try:
        result = _prepare(data, mime, policy, sha)
    except ImageRejected as exc:
        if cache is not None:
            cache.put(sha, policy, exc)
        raise
    if cache is not None:
        cache.put(sha, policy, result)
    return result


def _prepare(data: bytes, mime: str, policy: ImagePolicy, sha: str) -> PreparedImage:
    if image_size(data) is None and looks_like_svg(data, mime):
        from jupyter_ai_vision.media.svg import rasterize_svg  # starts the sandbox on first use

        png = rasterize_svg(data, policy)
        w, h, _ = image_size(png) or (0, 0, "png")
        return PreparedImage(png, "image/png", w, h, w, h, len(data), sha, "svg")
    return prepare_raster(data, mime, policy, sha)


def probe_size(data: bytes, mime: str, policy: ImagePolicy) -> tuple[int, int] | None:
    """The size of an image without decoding any pixels (``None`` for SVG: its size is known
    once drawn). PNG/JPEG/GIF/WebP are read from their headers (every frame's), other
    formats (BMP, TIFF, ...) by Pillow's lazy open. Raises :class:`ImageRejected` when the
    image is unreadable or over the decode cap, so a rejection costs no decode either."""
    _check_input(data, mime, policy)
    head = image_size(data)
    if head is not None:
        check_decode_size(data, head, policy)  # every frame: a bomb is refused right here
        return head[0], head[1]
    if looks_like_svg(data, mime):
        return None
    width, height, _fmt = probe_other(data, mime, policy)
    return width, height


def looks_like_svg(data: bytes, mime: str) -> bool:
    if normalise(mime) == SVG_MIME:
        return True
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]
