"""Image normalisation: validate, size-check from the header, downscale, re-encode, cache.

Every function here is thread-safe (the builder runs :func:`prepare_image` in a thread
pool). Pillow is imported lazily: the Jupyter server imports this package at start-up.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision._text import first_line
from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media.headers import (
    SOF_MARKERS,
    decoded_size,
    image_size,
    structure_problem,
)
from jupyter_ai_vision.mimes import SENDABLE

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


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


# ---------------------------------------------------------------- preparation


def prepare_raster(data: bytes, mime: str, policy: ImagePolicy, sha: str) -> PreparedImage:
    """Validate and normalise one raster image (``sha`` = sha256 of ``data``). Raises
    :class:`ImageRejected`. Order: header sniff (the label is not trusted), pixel cap from the
    header (before any decode), then pass-through when already within limits, else decode,
    bicubic downscale (never up) and PNG (JPEG/PNG8 only to meet ``max_image_bytes``)."""
    head = image_size(data)
    if head is None:
        return _prepare_other(data, mime, policy, sha)
    width, height, fmt = head
    decoded = check_decode_size(data, (width, height, fmt), policy)
    note = _label_note(mime, fmt)
    problem = structure_problem(data, fmt)
    if problem and fmt == "png":  # chunk checksums make this certain
        raise ImageRejected(f"{problem}: the image data is incomplete or damaged")
    fits = policy.fit(width, height) == (width, height) and decoded == (width, height)
    if (
        fits
        and not problem
        and len(data) <= policy.max_image_bytes
        and not _needs_conversion(data, fmt, policy)
    ):
        return PreparedImage(
            data, SENDABLE[fmt], width, height, width, height, len(data), sha, fmt, note
        )
    # A missing JPEG/GIF end marker may just be trailing bytes: decoding decides.
    return _convert(_open(data, fmt, policy), policy, sha, len(data), fmt, note, problem)


def check_decode_size(
    data: bytes, head: tuple[int, int, str], policy: ImagePolicy
) -> tuple[int, int]:
    """The size the decoder will allocate for a PNG/JPEG/GIF/WebP (every frame header read,
    not just the first: see :func:`headers.decoded_size`), checked against the decode cap.
    Raises :class:`ImageRejected` before anything is decoded."""
    width, height, fmt = head
    _check_pixels(width, height, policy)
    decoded = decoded_size(data, fmt)
    if decoded != (width, height):
        _check_pixels(*decoded, policy, header=(width, height))
    return decoded


#: Formats other than PNG/JPEG/GIF/WebP that are decoded (then sent as PNG). Not EPS (Pillow
#: runs Ghostscript on it), ICO (an entry may embed a PNG larger than its directory says), or
#: anything else whose decoder allocates more than its header declares.
OTHER_FORMATS = ("BMP", "DIB", "TIFF", "PPM", "TGA")


def probe_other(data: bytes, mime: str, policy: ImagePolicy) -> tuple[int, int, str]:
    """``(width, height, format)`` of a format we do not sniff ourselves (BMP, TIFF, ...),
    read by Pillow's lazy open: the header only, no pixels decoded. Raises
    :class:`ImageRejected` for unreadable, unsupported or too large images."""
    im = _open(data, None, policy)
    return im.width, im.height, (im.format or "unknown").lower()


def _prepare_other(data: bytes, mime: str, policy: ImagePolicy, sha: str) -> PreparedImage:
    """Formats we do not sniff ourselves (BMP, TIFF, ...): Pillow reads their header lazily."""
    im = _open(data, None, policy)
    fmt = (im.format or "unknown").lower()
    return _convert(im, policy, sha, len(data), fmt, _label_note(mime, fmt))


def _check_pixels(
    width: int, height: int, policy: ImagePolicy, header: tuple[int, int] | None = None
) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid image header: {width}×{height} px")
    if width * height > policy.max_decode_pixels:
        says = f" although its header says {header[0]}×{header[1]}" if header else ""
        raise ImageRejected(
            f"image too large to decode: {width}×{height} px ({_mpx(width * height)}, "
            f"limit {_mpx(policy.max_decode_pixels)}){says}; save a smaller figure"
        )


def _label_note(mime: str, fmt: str) -> str | None:
    label = (mime or "").split(";")[0].strip().lower()
    expected = SENDABLE.get(fmt, f"image/{fmt}")
    if label in (expected, "image/jpg" if fmt == "jpeg" else expected):
        return None
    return f"labelled {label or 'without a type'} but is {fmt.upper()}"


def _open(data: bytes, fmt: str | None, policy: ImagePolicy) -> PILImage:
    """Pillow's lazy open (header only), its size checked against the decode cap: Pillow's
    own reading of the header is what it will allocate (its MAX_IMAGE_PIXELS guard, 89 Mpx
    warning / 179 Mpx error by default, stays in place as the outer guard)."""
    from PIL import Image, UnidentifiedImageError

    try:
        formats = [fmt.upper()] if fmt else list(OTHER_FORMATS)
        im = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise ImageRejected("not a recognisable image; supported: PNG, JPEG, GIF, WebP") from None
    except Image.DecompressionBombError:
        raise ImageRejected("image too large to decode (decompression bomb)") from None
    except Exception as exc:
        raise ImageRejected(f"unreadable image: {first_line(exc)}") from None
    _check_pixels(im.width, im.height, policy)
    return im


def _needs_conversion(data: bytes, fmt: str, policy: ImagePolicy) -> bool:
    """Animated GIF/WebP (send the first frame), CMYK JPEG (not universally accepted) and
    EXIF-rotated JPEG (not every API applies the rotation)."""
    if fmt == "jpeg":
        return _jpeg_components(data) == 4 or _orientation(_open(data, fmt, policy)) != 1
    if fmt in ("gif", "webp"):
        im = _open(data, fmt, policy)
        return bool(getattr(im, "is_animated", False))
    return False


def _orientation(im: PILImage) -> int:
    if "exif" not in im.info:  # no EXIF block at all: skip parsing
        return 1
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _jpeg_components(data: bytes) -> int:
    i, n = 2, len(data)
    while i + 10 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in SOF_MARKERS:
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
        im = _normalise_mode(im, target)
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
    except Exception as exc:
        if problem:
            raise ImageRejected(f"{problem}: the image data is incomplete or damaged") from None
        raise ImageRejected(f"unreadable image data ({fmt.upper()}): {first_line(exc)}") from None
    data, mime = _encode_within(im, policy)
    return PreparedImage(
        data, mime, im.width, im.height, width, height, original_bytes, sha, fmt, note
    )


def _normalise_mode(im: PILImage, target: tuple[int, int] | None = None) -> PILImage:
    """The image in a mode every API takes (RGB, RGBA, L, LA) with the tones a viewer shows.

    Pillow's own ``convert`` clips high-bit-depth values to 0..255 (a 16-bit grayscale PNG
    becomes all white) and cannot convert every mode: those are scaled here instead (and
    resized to ``target`` first, at their own depth, so no full-size float copy is made).
    """
    from PIL import Image

    im.load()
    if im.mode in ("RGBA", "LA") and im.getchannel("A").getextrema()[0] == 255:
        # Opaque alpha (matplotlib's PNGs): drop it, a quarter less to resize and encode.
        return im.convert("RGB" if im.mode == "RGBA" else "L")
    if im.mode in ("RGB", "RGBA", "L", "LA"):
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return _to_8bit(im, target)
    if im.mode == "La":  # premultiplied: Pillow has no La -> LA conversion
        luma, alpha = im.split()
        return Image.merge("RGBa", (luma, luma, luma, alpha)).convert("RGBA").convert("LA")
    has_alpha = im.mode in ("PA", "RGBa") or "transparency" in im.info
    # P, PA, RGBa, CMYK, YCbCr, LAB, HSV, RGBX...: Pillow converts these to RGB(A) faithfully.
    return im.convert("RGBA" if has_alpha else "RGB")


def _to_8bit(im: PILImage, target: tuple[int, int] | None) -> PILImage:
    """16-bit, 32-bit integer and float grayscale -> L, scaled rather than clipped.

    16-bit modes map their full range (v / 257, as viewers show them); 32-bit integers and
    floats keep values already in 0..255, map 0..65535 (integers) or 0..1 (floats) to it,
    and stretch any other range to 0..255.
    """
    from PIL import Image

    low, high = _tone_range(im)
    if im.mode not in ("I;16", "I", "F"):  # Pillow resizes I;16B wrongly: widen it first
        im = im.convert("I")
    if target is not None and im.size != target:
        im = im.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    scale = 255.0 / (high - low)
    wide = im.convert("F")  # linear maps keep full precision in float
    return wide.point(lambda v: (v - low) * scale).convert("L")


def _tone_range(im: PILImage) -> tuple[float, float]:
    """The value range of a high-depth grayscale image that maps to black..white."""
    if im.mode.startswith("I;16"):
        return 0.0, 65535.0
    extrema: Any = im.getextrema()  # (min, max) for single-band modes
    low, high = float(extrema[0]), float(extrema[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 255.0  # NaN / inf floats: nothing sensible to stretch
    if low >= 0 and high <= 1 and im.mode == "F":
        return 0.0, 1.0
    if low >= 0 and high <= 255:
        return 0.0, 255.0
    if low >= 0 and high <= 65535 and im.mode == "I":
        return 0.0, 65535.0
    return low, max(high, low + 1.0)


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


# ---------------------------------------------------------------- cache


class ImageCache(LRU[tuple[str, ImagePolicy], "PreparedImage | ImageRejected"]):
    """Byte-bounded LRU of prepared images (and rejections), keyed by
    ``(sha256 of the original bytes, policy)``."""

    def __init__(self, max_bytes: int = 64_000_000) -> None:
        super().__init__(max_size=max_bytes, sizeof=_cached_size)
        self.max_bytes = max_bytes

    def get(  # type: ignore[override]
        self, sha256: str, policy: ImagePolicy
    ) -> PreparedImage | ImageRejected | None:
        return super().get((sha256, policy))

    def put(  # type: ignore[override]
        self, sha256: str, policy: ImagePolicy, item: PreparedImage | ImageRejected
    ) -> None:
        super().put((sha256, policy), item)

    @property
    def nbytes(self) -> int:
        return self.size


def _cached_size(_key: object, item: PreparedImage | ImageRejected) -> int:
    return 200 + (len(item.data) if isinstance(item, PreparedImage) else len(item.reason))
