"""Image normalisation: validate, size-check from the header, downscale, re-encode, cache.

Every function here is thread-safe (the builder runs :func:`prepare_image` in a thread
pool). Pillow is imported lazily: the Jupyter server imports this package at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_ai_vision.budget import ImagePolicy

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: Formats every vision API accepts as-is.
SENDABLE = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


class ImageRejected(ValueError):
    """An image that cannot be used; ``reason`` is one line, fit for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send (within the policy), plus what it was."""

    data: bytes
    mime: str
    width: int
    height: int
    original_width: int
    original_height: int
    original_bytes: int
    sha256: str  # of the original bytes
    original_format: str = "png"  # what the bytes really were (sniffed, not the label)
    note: str | None = None  # e.g. "labelled image/png but is JPEG"

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def resized(self) -> bool:
        return (self.width, self.height) != (self.original_width, self.original_height)


def _mb(n: float) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _mpx(n: float) -> str:
    return f"{n / 1_000_000:.0f} Mpx" if n >= 10_000_000 else f"{n / 1_000_000:.1f} Mpx"


# ---------------------------------------------------------------- base64


def decode_base64(s: str | list[str] | bytes, policy: ImagePolicy) -> bytes:
    """Decode notebook base64 (a str, or nbformat's list of lines; a ``data:`` URI prefix
    is accepted). The length is checked before anything is joined or decoded."""
    if isinstance(s, list):
        if not all(isinstance(x, str) for x in s):
            raise ImageRejected("invalid base64 image data: expected text lines")
        total = sum(len(x) for x in s)
    elif isinstance(s, (str, bytes)):
        total = len(s)
    else:
        raise ImageRejected(f"invalid base64 image data: expected text, got {type(s).__name__}")
    if total > policy.max_base64_chars:
        raise ImageRejected(
            f"image data too large: {_mb(total)} of base64 "
            f"(limit {_mb(policy.max_base64_chars)}); save a smaller figure"
        )
    text = "".join(s) if isinstance(s, list) else s
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ImageRejected("invalid base64 image data: not ASCII text") from None
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.endswith(";base64"):
            raise ImageRejected("invalid base64 image data: data URI is not base64-encoded")
    if any(ws in text for ws in " \n\r\t"):  # nbformat stores lines; skip the copy otherwise
        text = "".join(text.split())
    if not text:
        raise ImageRejected("empty image data")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("invalid base64 image data: not decodable") from None


# ---------------------------------------------------------------- header sniffing


def image_size(data: bytes) -> tuple[int, int, str] | None:
    """``(width, height, format)`` from the header alone (microseconds, no decode), or None
    when the bytes are not a PNG, JPEG, GIF or WebP header we can read."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            if data[12:16] != b"IHDR":
                return None
            w, h = struct.unpack(">II", data[16:24])
            return w, h, "png"
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return w, h, "gif"
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:
        return None
    return None


# SOF markers carry the frame size (all except DHT C4, JPG C8, DAC CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int, str] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h, "jpeg"
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int, str] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF, "webp"
    if chunk == b"VP8L":
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h, "webp"
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h, "webp"
    return None


def _structure_problem(data: bytes, fmt: str) -> str | None:
    """Cheap integrity check for images we would pass through without decoding:
    catches truncation and corruption (PNG chunk CRCs) in well under a millisecond."""
    if fmt == "png":
        return _png_problem(data)
    if fmt == "jpeg":
        return None if data.rstrip(b"\x00")[-2:] == b"\xff\xd9" else "truncated JPEG"
    if fmt == "gif":
        return None if data.rstrip(b"\x00")[-1:] == b";" else "truncated GIF"
    if fmt == "webp":
        (size,) = struct.unpack("<I", data[4:8])
        return None if len(data) >= size + 8 else "truncated WebP"
    return None


def _png_problem(data: bytes) -> str | None:
    i, n, idat = 8, len(data), False
    while i + 12 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        end = i + 12 + length
        if end > n:
            return "truncated PNG"
        ctype = data[i + 4 : i + 8]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[i + 4 : end - 4]) != crc:
            return f"corrupt PNG (bad {ctype.decode('latin-1')} checksum)"
        if ctype == b"IDAT":
            idat = True
        elif ctype == b"IEND":
            return None if idat else "corrupt PNG (no image data)"
        i = end
    return "truncated PNG"


# ---------------------------------------------------------------- preparation


def prepare_image(
    data: bytes, mime: str, policy: ImagePolicy, cache: ImageCache | None = None
) -> PreparedImage:
    """Validate and normalise one raster image for sending. Raises :class:`ImageRejected`.

    Order: byte cap, header sniff (the label is not trusted), pixel cap from the header
    (before any decode), then pass-through when already within limits, else decode,
    bicubic downscale (never up) and PNG (JPEG/PNG8 only to meet ``max_image_bytes``).
    """
    if not data:
        raise ImageRejected(f"empty image data ({mime})")
    if len(data) > policy.max_input_bytes:
        raise ImageRejected(
            f"image too large: {_mb(len(data))} (limit {_mb(policy.max_input_bytes)}); "
            "save a smaller figure"
        )
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
    head = image_size(data)
    if head is None:
        return _prepare_other(data, mime, policy, sha)
    width, height, fmt = head
    _check_pixels(width, height, policy)
    note = _label_note(mime, fmt)
    problem = _structure_problem(data, fmt)
    if problem and fmt == "png":  # chunk checksums make this certain
        raise ImageRejected(f"{problem}: the image data is incomplete or damaged")
    fits = policy.fit(width, height) == (width, height)
    if (
        fits
        and not problem
        and len(data) <= policy.max_image_bytes
        and not _needs_conversion(data, fmt)
    ):
        return PreparedImage(
            data, SENDABLE[fmt], width, height, width, height, len(data), sha, fmt, note
        )
    # A missing JPEG/GIF end marker may just be trailing bytes: decoding decides.
    return _convert(_open(data, fmt), policy, sha, len(data), fmt, note, problem)


def _prepare_other(data: bytes, mime: str, policy: ImagePolicy, sha: str) -> PreparedImage:
    """SVG (rasterised safely), and formats we do not sniff ourselves (BMP, TIFF, ...):
    Pillow reads their header lazily."""
    if _looks_like_svg(data, mime):
        from jupyter_ai_vision.svg import rasterize_svg

        png = rasterize_svg(data, policy)
        w, h, _ = image_size(png) or (0, 0, "png")
        return PreparedImage(png, "image/png", w, h, w, h, len(data), sha, "svg")
    im = _open(data, None)
    fmt = (im.format or "unknown").lower()
    _check_pixels(im.width, im.height, policy)
    return _convert(im, policy, sha, len(data), fmt, _label_note(mime, fmt))


def _looks_like_svg(data: bytes, mime: str) -> bool:
    if mime.split(";")[0].strip().lower() == "image/svg+xml":
        return True
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]


def _check_pixels(width: int, height: int, policy: ImagePolicy) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid image header: {width}×{height} px")
    if width * height > policy.max_decode_pixels:
        raise ImageRejected(
            f"image too large to decode: {width}×{height} px ({_mpx(width * height)}, "
            f"limit {_mpx(policy.max_decode_pixels)}); save a smaller figure"
        )


def _label_note(mime: str, fmt: str) -> str | None:
    label = (mime or "").split(";")[0].strip().lower()
    expected = SENDABLE.get(fmt, f"image/{fmt}")
    if label in (expected, "image/jpg" if fmt == "jpeg" else expected):
        return None
    return f"labelled {label or 'without a type'} but is {fmt.upper()}"


def _open(data: bytes, fmt: str | None) -> PILImage:
    from PIL import Image, UnidentifiedImageError

    try:
        formats = [fmt.upper()] if fmt else None
        return Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise ImageRejected("not a recognisable image; supported: PNG, JPEG, GIF, WebP") from None
    except Image.DecompressionBombError:
        raise ImageRejected("image too large to decode (decompression bomb)") from None
    except Exception as exc:  # noqa: BLE001 - any Pillow parse failure is a bad image
        raise ImageRejected(f"unreadable image: {_one_line(exc)}") from None


def _needs_conversion(data: bytes, fmt: str) -> bool:
    """Animated GIF/WebP (send the first frame), CMYK JPEG (not universally accepted) and
    EXIF-rotated JPEG (not every API applies the rotation)."""
    if fmt == "jpeg":
        return _jpeg_components(data) == 4 or _orientation(_open(data, fmt)) != 1
    if fmt in ("gif", "webp"):
        im = _open(data, fmt)
        return bool(getattr(im, "is_animated", False))
    return False


def _orientation(im: PILImage) -> int:
    if "exif" not in im.info:  # no EXIF block at all: skip parsing
        return 1
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to reject the image
        return 1


def _jpeg_components(data: bytes) -> int:
    i, n = 2, len(data)
    while i + 10 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in _SOF:
            return data[i + 9]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return 3


def _convert(
    im: PILImage,
    policy: ImagePolicy,
    sha: str,
    original_bytes: int,
    fmt: str,
    note: str | None,
    problem: str | None = None,
) -> PreparedImage:
    from PIL import Image

    width, height = im.size
    target = policy.fit(width, height)
    try:
        if fmt == "jpeg" and target != (width, height):
            im.draft("RGB", target)  # DCT-domain downscale: decodes far fewer pixels
        im.seek(0)  # GIF / WebP: first frame
        orientation = _orientation(im) if fmt in ("jpeg", "webp") else 1
        im = _normalise_mode(im)
        if orientation != 1:  # show it the way a viewer would
            from PIL import ImageOps

            im = ImageOps.exif_transpose(im)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            target = policy.fit(width, height)
        if im.size != target:
            im = im.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt data surfaces on decode
        if problem:
            raise ImageRejected(f"{problem}: the image data is incomplete or damaged") from None
        raise ImageRejected(f"unreadable image data ({fmt.upper()}): {_one_line(exc)}") from None
    data, mime = _encode_within(im, policy)
    return PreparedImage(
        data, mime, im.width, im.height, width, height, original_bytes, sha, fmt, note
    )


def _normalise_mode(im: PILImage) -> PILImage:
    im.load()
    if im.mode in ("RGBA", "LA") and im.getchannel("A").getextrema()[0] == 255:
        # Opaque alpha (matplotlib's PNGs): drop it, a quarter less to resize and encode.
        return im.convert("RGB" if im.mode == "RGBA" else "L")
    if im.mode in ("RGB", "RGBA", "L", "LA"):
        return im
    has_alpha = im.mode in ("PA", "RGBa", "La") or "transparency" in im.info
    if im.mode == "P":
        return im.convert("RGBA" if has_alpha else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return im.convert("L") if im.mode != "I" else im.point(lambda v: v / 256).convert("L")
    return im.convert("RGBA" if has_alpha else "RGB")


def _encode_within(im: PILImage, policy: ImagePolicy) -> tuple[bytes, str]:
    """PNG; if over ``max_image_bytes``: PNG8 or JPEG, then smaller, until it fits."""
    from PIL import Image

    cap = policy.max_image_bytes
    png = _save(im, "PNG", compress_level=policy.png_compress_level)
    if len(png) <= cap:
        return png, "image/png"
    for _ in range(6):
        png8 = _save(_quantize(im), "PNG")
        if len(png8) <= cap:
            return png8, "image/png"
        jpeg = _save(_flatten(im), "JPEG", quality=policy.jpeg_quality)
        if len(jpeg) <= cap:
            return jpeg, "image/jpeg"
        # Shrink by the area ratio still needed (with a margin), at least by 10 %.
        scale = max(0.25, min(0.9, 0.95 * math.sqrt(cap / min(len(png8), len(jpeg)))))
        w, h = im.size
        if w * scale < 16 or h * scale < 16:
            break
        im = im.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
    raise ImageRejected(f"image cannot be encoded within {_mb(cap)}; raise max_image_bytes")


def _save(im: PILImage, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _quantize(im: PILImage) -> PILImage:
    from PIL import Image

    mode = "RGBA" if im.mode in ("RGBA", "LA") else "RGB"
    return im.convert(mode).quantize(256, method=Image.Quantize.FASTOCTREE)


def _flatten(im: PILImage) -> PILImage:
    """JPEG has no alpha: composite onto white (plots are usually drawn on white)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB") if im.mode not in ("RGB", "L") else im


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# ---------------------------------------------------------------- cache


class ImageCache:
    """Byte-bounded, thread-safe LRU of prepared images (and rejections), keyed by
    ``(sha256 of the original bytes, policy)``."""

    def __init__(self, max_bytes: int = 64_000_000) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ImagePolicy], PreparedImage | ImageRejected] = (
            OrderedDict()
        )
        self._sizes: dict[tuple[str, ImagePolicy], int] = {}
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, sha256: str, policy: ImagePolicy) -> PreparedImage | ImageRejected | None:
        key = (sha256, policy)
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, sha256: str, policy: ImagePolicy, item: PreparedImage | ImageRejected) -> None:
        key = (sha256, policy)
        size = 200 + (len(item.data) if isinstance(item, PreparedImage) else len(item.reason))
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._nbytes -= self._sizes[key]
            self._items[key] = item
            self._items.move_to_end(key)
            self._sizes[key] = size
            self._nbytes += size
            while self._nbytes > self.max_bytes:
                old, _ = self._items.popitem(last=False)
                self._nbytes -= self._sizes.pop(old)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._nbytes = 0
