"""Image headers read without decoding: size and format in microseconds, and integrity checks
(PNG chunk CRCs, JPEG/GIF end markers). Stdlib only: no Pillow.
"""

from __future__ import annotations

import struct
import zlib


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
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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
        if marker in SOF_MARKERS:
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


def structure_problem(data: bytes, fmt: str) -> str | None:
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
