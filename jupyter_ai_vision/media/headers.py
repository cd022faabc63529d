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


def decoded_size(data: bytes, fmt: str) -> tuple[int, int]:
    """The largest canvas the decoder will allocate for ``data`` (px), from every frame header
    rather than the first one: a GIF's logical screen may say 2×2 while a frame says
    13000×13000 (Pillow grows the image to hold it), a JPEG may carry several frame headers
    (Pillow allocates the last one's size), a WebP's frames and bitstream carry their own
    sizes. Linear in the file; no decode. Call after :func:`image_size` found ``fmt``."""
    head = image_size(data)
    if head is None:
        return 0, 0
    width, height = head[0], head[1]
    try:
        if fmt == "gif":
            return _gif_extent(data, width, height)
        if fmt == "jpeg":
            return _jpeg_extent(data, width, height)
        if fmt == "webp":
            return _webp_extent(data, width, height)
    except (struct.error, IndexError):
        pass  # truncated headers: the decoder stops there too; the first size stands
    # PNG: IHDR is the canvas; Pillow refuses APNG frames outside it.
    return width, height


def _gif_extent(data: bytes, width: int, height: int) -> tuple[int, int]:
    n = len(data)
    i = 13
    if data[10] & 0x80:  # global colour table
        i += 3 << ((data[10] & 7) + 1)
    while i < n:
        block = data[i]
        if block == 0x2C:  # image descriptor: left, top, width, height, flags
            left, top, w, h = struct.unpack("<HHHH", data[i + 1 : i + 9])
            flags = data[i + 9]
            width, height = max(width, left + w), max(height, top + h)
            i += 10
            if flags & 0x80:  # local colour table
                i += 3 << ((flags & 7) + 1)
            i = _skip_sub_blocks(data, i + 1)  # after the LZW minimum code size
        elif block == 0x21:  # extension: label, then sub-blocks
            i = _skip_sub_blocks(data, i + 2)
        else:  # trailer (0x3B) or garbage: the decoder stops here
            break
    return width, height


def _skip_sub_blocks(data: bytes, i: int) -> int:
    n = len(data)
    while i < n:
        size = data[i]
        i += 1 + size
        if size == 0:
            break
    return i


def _jpeg_extent(data: bytes, width: int, height: int) -> tuple[int, int]:
    """Largest of every frame header before the first scan."""
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in SOF_MARKERS:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            width, height = max(width, w), max(height, h)
        i += 2 + length
    return width, height


def _webp_extent(data: bytes, width: int, height: int) -> tuple[int, int]:
    """Canvas and every frame (ANMF) and bitstream (VP8 / VP8L) size in the RIFF chunks."""
    i, n = 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while i + 8 <= n:
        chunk = data[i : i + 4]
        (size,) = struct.unpack("<I", data[i + 4 : i + 8])
        body = i + 8
        if chunk == b"ANMF":  # x, y (24 bit / 2), width-1, height-1 (24 bit), ...; frame data
            x = 2 * int.from_bytes(data[body : body + 3], "little")
            y = 2 * int.from_bytes(data[body + 3 : body + 6], "little")
            w = 1 + int.from_bytes(data[body + 6 : body + 9], "little")
            h = 1 + int.from_bytes(data[body + 9 : body + 12], "little")
            width, height = max(width, x + w), max(height, y + h)
            i = body + 16  # the frame's own chunks (ALPH, VP8, VP8L) follow inside it
            continue
        if chunk in (b"VP8 ", b"VP8L"):
            inner = _webp_size(b"RIFF\0\0\0\0WEBP" + data[i : body + 20])
            if inner is not None:
                width, height = max(width, inner[0]), max(height, inner[1])
        i = body + size + (size & 1)
    return width, height


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
