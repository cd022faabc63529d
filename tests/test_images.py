"""Image normalisation: real matplotlib / Pillow images; only the malformed ones are hand-made."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import matplotlib
import pytest
from PIL import Image

from jupyter_ai_vision.context.budget import ImagePolicy
from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.media.load import prepare_image
from jupyter_ai_vision.media.raster import ImageCache, PreparedImage
from jupyter_ai_vision.mimes import decode_base64

matplotlib.use("Agg")
import matplotlib.pyplot as plt

POLICY = ImagePolicy()


def _figure(width_in: float, height_in: float, dpi: int, fmt: str = "png", **kw) -> bytes:
    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=dpi)
    ax.plot([0, 1, 2, 3], [1, 3, 2, 4], color="red", linewidth=8)
    ax.set_title("sales")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, **kw)
    plt.close(fig)
    return buf.getvalue()


def _pillow(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _red_pixels(data: bytes) -> int:
    im = _open(data).convert("RGB")
    return sum(1 for r, g, b in im.getdata() if r > 200 and g < 60 and b < 60)


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


@pytest.fixture(scope="module")
def big_png() -> bytes:
    return _figure(20, 12, 100)  # 2000×1200, as matplotlib emits it


@pytest.fixture(scope="module")
def small_png() -> bytes:
    return _figure(6.4, 4.8, 100)  # 640×480


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return _figure(20, 12, 100, fmt="jpeg")


# ---------------------------------------------------------------- header


def test_image_size_reads_every_sendable_format_from_the_header(small_png):
    im = _open(small_png).convert("RGB")
    for fmt, kw in [
        ("PNG", {}),
        ("JPEG", {}),
        ("GIF", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ]:
        data = _pillow(im, fmt, **kw)
        assert image_size(data) == (640, 480, fmt.lower()), (fmt, kw)
    rgba = im.convert("RGBA")
    assert image_size(_pillow(rgba, "WEBP"))[:2] == (640, 480)  # VP8X (alpha)
    assert image_size(b"not an image at all") is None
    assert image_size(b"\x89PNG\r\n\x1a\n") is None  # signature only


# ---------------------------------------------------------------- normal images


def test_small_png_passes_through_untouched(small_png):
    out = prepare_image(small_png, "image/png", POLICY)
    assert out.data is small_png or out.data == small_png
    assert (out.mime, out.width, out.height) == ("image/png", 640, 480)
    assert (out.original_width, out.original_height) == (640, 480)
    assert out.original_bytes == len(small_png)
    assert out.sha256 == hashlib.sha256(small_png).hexdigest()
    assert not out.resized and out.note is None


def test_large_png_is_downscaled_bicubic_to_the_long_edge(big_png):
    out = prepare_image(big_png, "image/png", POLICY)
    assert (out.original_width, out.original_height) == (2000, 1200)
    assert (out.width, out.height) == (1024, 614)
    assert out.mime == "image/png"
    assert _open(out.data).size == (1024, 614)
    assert out.nbytes < len(big_png)
    assert _red_pixels(out.data) > 1000  # the plotted line survived the downscale
    assert out.sha256 == hashlib.sha256(big_png).hexdigest()


def test_pixel_cap_limits_area_when_the_edge_is_fine():
    data = _figure(15, 10, 100)  # 1500×1000 = 1.5 MP
    out = prepare_image(data, "image/png", ImagePolicy(max_edge=4096))
    assert out.width * out.height <= 1_150_000
    assert abs(out.width / out.height - 1.5) < 0.01


def test_never_upscales_tiny_images():
    data = _pillow(Image.new("RGB", (12, 7), (255, 0, 0)), "PNG")
    out = prepare_image(data, "image/png", POLICY)
    assert (out.width, out.height) == (12, 7) and out.data == data


def test_large_jpeg_downscaled_with_draft_to_exact_size(big_jpeg):
    out = prepare_image(big_jpeg, "image/jpeg", POLICY)
    assert (out.width, out.height) == (1024, 614)
    assert _open(out.data).size == (1024, 614)
    assert _red_pixels(out.data) > 1000


def test_animated_gif_sends_its_first_frame():
    frames = [Image.new("RGB", (64, 48), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = prepare_image(buf.getvalue(), "image/gif", POLICY)
    assert out.mime == "image/png" and out.original_format == "gif"
    assert _open(out.data).convert("RGB").getpixel((10, 10)) == (255, 0, 0)


def test_single_frame_gif_and_webp_pass_through(small_png):
    im = _open(small_png).convert("RGB")
    for fmt, mime in [("GIF", "image/gif"), ("WEBP", "image/webp")]:
        data = _pillow(im, fmt)
        out = prepare_image(data, mime, POLICY)
        assert out.data == data and out.mime == mime


def test_animated_webp_sends_its_first_frame():
    frames = [Image.new("RGB", (40, 30), c) for c in [(0, 255, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    out = prepare_image(buf.getvalue(), "image/webp", POLICY)
    assert out.mime == "image/png"
    assert _open(out.data).convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_large_webp_is_downscaled(big_png):
    data = _pillow(_open(big_png).convert("RGB"), "WEBP")
    out = prepare_image(data, "image/webp", POLICY)
    assert (out.width, out.height, out.mime) == (1024, 614, "image/png")


def test_cmyk_jpeg_is_converted(small_png):
    data = _pillow(_open(small_png).convert("CMYK"), "JPEG")
    out = prepare_image(data, "image/jpeg", POLICY)
    assert out.mime == "image/png" and _open(out.data).mode == "RGB"


def test_exif_rotated_jpeg_is_sent_upright():
    im = Image.new("RGB", (1600, 800), (255, 0, 0))
    im.paste((0, 0, 255), (800, 0, 1600, 800))  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    for size, want in [((1600, 800), (512, 1024)), ((400, 200), (200, 400))]:
        out = prepare_image(_pillow(im.resize(size), "JPEG", exif=exif), "image/jpeg", POLICY)
        assert (out.width, out.height) == want
        assert (out.original_width, out.original_height) == (size[1], size[0])
        shown = _open(out.data).convert("RGB")
        top, bottom = shown.getpixel((want[0] // 2, 5)), shown.getpixel((want[0] // 2, want[1] - 5))
        assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # red on top after rotation


def test_16bit_and_palette_pngs_are_normalised():
    grey16 = Image.new("I;16", (1500, 20), 40000)
    out = prepare_image(_pillow(grey16, "PNG"), "image/png", POLICY)
    assert out.width == 1024 and _open(out.data).mode in ("L", "RGB")
    pal = Image.new("RGBA", (1500, 40), (255, 0, 0, 0)).convert("P")
    pal.info["transparency"] = 0
    out = prepare_image(_pillow(pal, "PNG"), "image/png", POLICY)
    assert out.width == 1024 and _open(out.data).mode == "RGBA"


def test_bmp_is_converted_to_png(small_png):
    data = _pillow(_open(small_png).convert("RGB"), "BMP")
    out = prepare_image(data, "image/bmp", POLICY)
    assert (out.mime, out.width, out.original_format) == ("image/png", 640, "bmp")


def test_svg_given_to_prepare_image_is_rasterised_safely():
    fig, ax = plt.subplots(figsize=(16, 8))  # 1152×576 pt = 1536×768 px
    ax.plot([0, 1], [0, 1], color="red", linewidth=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    for mime in ("image/svg+xml", "application/octet-stream"):  # by label, and by sniffing
        out = prepare_image(svg, mime, POLICY)
        assert (out.mime, out.original_format) == ("image/png", "svg")
        assert (out.width, out.height) == (1024, 512) and _open(out.data).size == (1024, 512)
        assert out.sha256 == hashlib.sha256(svg).hexdigest()
        assert _red_pixels(out.data) > 1000
    xxe = b'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>'
    with pytest.raises(ImageRejected, match="XXE"):
        prepare_image(xxe, "image/svg+xml", POLICY)


def test_byte_cap_falls_back_to_smaller_encodings():
    noise = Image.frombytes("RGB", (600, 500), os.urandom(600 * 500 * 3))
    data = _pillow(noise, "PNG")  # ~0.9 MB of incompressible pixels
    out = prepare_image(data, "image/png", ImagePolicy(max_image_bytes=300_000))
    assert out.nbytes <= 300_000
    assert out.mime in ("image/png", "image/jpeg")
    assert _open(out.data).size[0] <= 600


def test_byte_cap_that_cannot_be_met_is_a_one_line_rejection():
    noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    with pytest.raises(ImageRejected) as err:
        prepare_image(_pillow(noise, "PNG"), "image/png", ImagePolicy(max_image_bytes=50))
    assert "max_image_bytes" in err.value.reason and "\n" not in err.value.reason


# ---------------------------------------------------------------- bad inputs


def _bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def test_png_header_declaring_400_mpx_is_rejected_before_decode():
    bomb = _bomb_png(20_000, 20_000)
    prepare_image(_figure(1, 1, 50), "image/png", POLICY)  # warm imports
    tracemalloc.start()
    with pytest.raises(ImageRejected) as err:
        prepare_image(bomb, "image/png", POLICY)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "20000×20000" in err.value.reason and "400 Mpx" in err.value.reason
    assert "\n" not in err.value.reason
    assert peak < 1_000_000  # nothing near 400 M pixels was decoded (time: bench_bounds.py)


@pytest.fixture(scope="module")
def png_100mpx() -> bytes:
    return _pillow(Image.new("L", (10_000, 10_000), 255), "PNG", compress_level=1)


def test_real_100_mpx_image_is_rejected_by_the_pixel_cap_without_decoding(png_100mpx):
    assert image_size(png_100mpx) == (10_000, 10_000, "png")
    tracemalloc.start()
    with pytest.raises(ImageRejected) as err:
        prepare_image(png_100mpx, "image/png", POLICY)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "100 Mpx" in err.value.reason and "64 Mpx" in err.value.reason
    assert peak < 5_000_000  # a full decode allocates 100 MB


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_100_mpx_image_under_a_raised_cap_is_downscaled(png_100mpx):
    out = prepare_image(png_100mpx, "image/png", ImagePolicy(max_decode_pixels=120_000_000))
    assert (out.width, out.height) == (1024, 1024)


def test_truncated_png_is_rejected(small_png, big_png):
    for data in (small_png, big_png):  # pass-through path and decode path
        with pytest.raises(ImageRejected) as err:
            prepare_image(data[: len(data) // 2], "image/png", POLICY)
        assert "truncated PNG" in err.value.reason and "\n" not in err.value.reason


def test_corrupted_png_body_is_rejected(small_png):
    data = bytearray(small_png)
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ImageRejected) as err:
        prepare_image(bytes(data), "image/png", POLICY)
    assert "corrupt PNG" in err.value.reason


def test_truncated_jpeg_is_rejected(big_jpeg):
    for data in (big_jpeg, _figure(3, 2, 100, fmt="jpeg")):
        with pytest.raises(ImageRejected) as err:
            prepare_image(data[: len(data) // 2], "image/jpeg", POLICY)
        assert err.value.reason == "truncated JPEG: the image data is incomplete or damaged"


def test_jpeg_with_trailing_bytes_after_its_end_marker_is_still_used():
    data = _figure(3, 2, 100, fmt="jpeg") + b"camera metadata"
    out = prepare_image(data, "image/jpeg", POLICY)
    assert (out.width, out.height) == (300, 200) and _open(out.data).size == (300, 200)


def test_random_bytes_labelled_png_are_rejected():
    with pytest.raises(ImageRejected) as err:
        prepare_image(os.urandom(5000), "image/png", POLICY)
    assert err.value.reason == "not a recognisable image; supported: PNG, JPEG, GIF, WebP"


def test_empty_data_is_rejected():
    with pytest.raises(ImageRejected, match="empty image data"):
        prepare_image(b"", "image/png", POLICY)


def test_jpeg_labelled_png_is_accepted_and_reported_as_jpeg():
    data = _figure(4, 3, 100, fmt="jpeg")
    out = prepare_image(data, "image/png", POLICY)
    assert out.mime == "image/jpeg" and out.original_format == "jpeg"
    assert out.note == "labelled image/png but is JPEG"
    assert out.data == data


def test_invalid_base64_is_rejected():
    with pytest.raises(ImageRejected, match="invalid base64"):
        decode_base64("iVBORw0KGgo$$$not*base64", POLICY)
    with pytest.raises(ImageRejected, match="invalid base64"):
        decode_base64("abc", POLICY)  # bad padding
    with pytest.raises(ImageRejected, match="invalid base64"):
        decode_base64(["iVBOR", 42], POLICY)  # type: ignore[list-item]


def test_base64_as_str_lines_and_data_uri(small_png):
    text = base64.b64encode(small_png).decode()
    lines = [text[i : i + 76] + "\n" for i in range(0, len(text), 76)]
    assert decode_base64(text, POLICY) == small_png
    assert decode_base64(lines, POLICY) == small_png
    assert decode_base64("data:image/png;base64," + text, POLICY) == small_png


def test_50_mb_base64_is_rejected_by_length_before_decoding():
    huge = "A" * 50_000_000
    lines = [huge[i : i + 1_000_000] for i in range(0, len(huge), 1_000_000)]
    for value in (huge, lines):
        tracemalloc.start()
        with pytest.raises(ImageRejected) as err:
            decode_base64(value, POLICY)  # the default policy
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert err.value.reason == (
            "image data too large: 50.0 MB of base64 (limit 27.0 MB); save a smaller figure"
        )
        assert peak < 1_000_000  # no join, no decode


def test_oversized_raw_bytes_are_rejected_before_hashing(small_png):
    with pytest.raises(ImageRejected, match="image too large"):
        prepare_image(small_png, "image/png", ImagePolicy(max_input_bytes=1000))


# ---------------------------------------------------------------- cache and threads


def test_cache_hits_by_hash_and_policy(big_png):
    cache = ImageCache()
    first = prepare_image(big_png, "image/png", POLICY, cache)
    again = prepare_image(big_png, "image/png", POLICY, cache)
    assert again is first and cache.hits == 1
    other = prepare_image(big_png, "image/png", ImagePolicy(max_edge=512), cache)
    assert (other.width, other.height) == (512, 307) and len(cache) == 2


def test_cache_remembers_rejections():
    cache = ImageCache()
    junk = os.urandom(1000)
    for _ in range(2):
        with pytest.raises(ImageRejected, match="not a recognisable image"):
            prepare_image(junk, "image/png", POLICY, cache)
    assert cache.hits == 1


def test_cache_is_byte_bounded_lru():
    images = [
        _pillow(Image.frombytes("RGB", (100, 100), os.urandom(30_000)), "PNG") for _ in range(6)
    ]
    size = len(images[0]) + 200
    cache = ImageCache(max_bytes=3 * size + 100)
    for data in images[:3]:
        prepare_image(data, "image/png", POLICY, cache)
    prepare_image(images[0], "image/png", POLICY, cache)  # touch: most recent now
    prepare_image(images[3], "image/png", POLICY, cache)  # evicts images[1]
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    sha = [hashlib.sha256(d).hexdigest() for d in images]
    assert cache.get(sha[0], POLICY) is not None
    assert cache.get(sha[1], POLICY) is None
    assert cache.get(sha[3], POLICY) is not None


def test_thread_pool_gives_the_same_results_as_serial(big_png, small_png, big_jpeg):
    inputs = [big_png, small_png, big_jpeg, os.urandom(800), _bomb_png(30_000, 30_000)] * 3

    def run(data: bytes, cache: ImageCache | None) -> PreparedImage | str:
        try:
            return prepare_image(data, "image/png", POLICY, cache)
        except ImageRejected as exc:
            return exc.reason

    def key(r: PreparedImage | str) -> object:
        return r if isinstance(r, str) else (r.data, r.mime, r.width, r.height, r.sha256)

    serial = [key(run(d, None)) for d in inputs]
    cache = ImageCache(max_bytes=2_000_000)
    with ThreadPoolExecutor(8) as pool:
        parallel = [key(r) for r in pool.map(lambda d: run(d, cache), inputs)]
    assert parallel == serial
    assert cache.nbytes <= cache.max_bytes
