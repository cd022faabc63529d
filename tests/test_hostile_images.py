"""Issue 11, classes 4 and 5: decoders and colours.

Class 4: the pixel cap holds for what the decoder really allocates (every GIF frame, every
JPEG frame header, WebP frames, Pillow's own reading of any other header), and formats other
than PNG/JPEG/GIF/WebP are never decoded while every image is probed: only the selected ones.
Class 5: every mode Pillow opens is sent with the tones a viewer shows, after resizing.

Hostile notebooks are hand-made with nbformat; the normal figures next to them come from a
real kernel. Builds run in a child process (``fixtures.isolated``) whose peak RSS is asserted.
"""

from __future__ import annotations

import base64
import copy
import io
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from fixtures.isolated import build_isolated, decoded
from fixtures.notebooks import cell_index, execute, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media import raster
from jupyter_ai_vision.media.headers import decoded_size
from jupyter_ai_vision.media.load import prepare_image, probe_size

POLICY = ImagePolicy()
#: Every usable image is sent: what is refused is refused for itself, never for the budget.
NO_BUDGET = {"max_images": 50, "max_image_tokens": 500_000, "window_fraction": 1.0}
#: A child that builds a context holds Python, Pillow and the builder: ~30-200 MB here.
#: Decoding the 13000x13000 GIF frame cost 834 MB before the fix; the bound leaves no room.
MAX_CHILD_RSS_MB = 400


# ---------------------------------------------------------------- hostile image bytes


def gif_frame_bomb(side: int = 13000, frames: int = 2) -> bytes:
    """An animated GIF whose logical screen is 2x2 but whose frame descriptors say side²."""
    buf = io.BytesIO()
    images = [Image.new("P", (2, 2), k) for k in range(frames)]
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=100)
    data = bytearray(buf.getvalue())
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    i = data.index(b",", start)
    while i != -1:
        data[i + 5 : i + 9] = struct.pack("<HH", side, side)
        i = data.find(b"\x00,", i + 10)
        i = i + 1 if i != -1 else -1
    return bytes(data)


_REAL_GIF_BOMB = r"""
import io, struct, sys
from PIL import Image
frames = [Image.new("P", (13000, 13000), k) for k in (0, 1)]
buf = io.BytesIO()
frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
data = bytearray(buf.getvalue())
data[6:10] = struct.pack("<HH", 2, 2)  # the logical screen says 2x2
open(sys.argv[1], "wb").write(bytes(data))
"""


@pytest.fixture(scope="module")
def real_gif_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The issue's GIF: ~250 kB of real LZW data, two 13000x13000 frames, a 2x2 screen
    (before the fix, decoding it cost 834 MB). Made in a child process: 340 MB to build."""
    path = tmp_path_factory.mktemp("gif") / "bomb.gif"
    subprocess.run([sys.executable, "-c", _REAL_GIF_BOMB, str(path)], check=True, timeout=600)
    return path.read_bytes()


def jpeg_with_two_frame_headers(side: int = 12000) -> bytes:
    """A 16x16 JPEG with a second SOF0 claiming side² (Pillow allocates the last one)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "JPEG")
    data = buf.getvalue()
    i = next(k for k in range(2, len(data) - 1) if data[k] == 0xFF and data[k + 1] == 0xC0)
    (length,) = struct.unpack(">H", data[i + 2 : i + 4])
    sof = bytearray(data[i : i + 2 + length])
    sof[5:9] = struct.pack(">HH", side, side)
    return data[: i + 2 + length] + bytes(sof) + data[i + 2 + length :]


def webp_canvas_smaller_than_frame() -> bytes:
    """A VP8X WebP whose canvas says 2x2 around a 3000x3000 bitstream."""
    buf = io.BytesIO()
    Image.new("RGB", (3000, 3000), "red").save(buf, "WEBP")
    chunk = buf.getvalue()[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (1).to_bytes(3, "little") * 2
    body = b"WEBP" + vp8x + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_bytes(
    size: tuple[int, int], colour: Any = (30, 144, 255), *, truncate: bool = False
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "TIFF")
    data = buf.getvalue()
    if truncate:  # header and IFD intact (lazy open works), pixel data cut short
        (ifd,) = struct.unpack("<I", data[4:8])
        data = data[:8] + b"\x00" * 64 + data[ifd:] if ifd > 200 else data[: len(data) // 3]
    return data


def huge_tiff_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny TIFF whose IFD claims width x height (no pixel data to speak of)."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height % 2**32),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


# ---------------------------------------------------------------- notebooks


def _display(mime: str, data: bytes) -> Any:
    return new_output(
        "display_data", data={mime: base64.b64encode(data).decode(), "text/plain": "x"}
    )


@pytest.fixture(scope="module")
def mpl_png(executed_notebook: Any) -> tuple[bytes, int]:
    """A real matplotlib PNG from the kernel, and the index of its cell."""
    index = cell_index(executed_notebook, "mpl")
    out = next(
        o for o in executed_notebook.cells[index].outputs if "image/png" in o.get("data", {})
    )
    return base64.b64decode(out["data"]["image/png"]), index


def _with_hostile_cells(
    executed_notebook: Any, hostile: list[tuple[str, bytes]]
) -> tuple[nbformat.NotebookNode, list[int]]:
    nb = copy.deepcopy(executed_notebook)
    indices = []
    for mime, data in hostile:
        cell = new_code_cell("show(hostile)", execution_count=99)
        cell.outputs = [_display(mime, data)]
        nb.cells.append(cell)
        indices.append(len(nb.cells) - 1)
    return nb, indices


def test_gif_jpeg_webp_frames_larger_than_their_headers_are_refused_without_decoding(
    executed_notebook: Any, tmp_path: Path, real_gif_bomb: bytes
) -> None:
    hostile = [
        ("image/webp", webp_canvas_smaller_than_frame()),  # focused: selected, then refused
        ("image/gif", real_gif_bomb),  # refused by the probe, whatever the budget
        ("image/jpeg", jpeg_with_two_frame_headers()),
    ]
    nb, cells = _with_hostile_cells(executed_notebook, hostile)
    mpl = cell_index(nb, "mpl")
    built = build_isolated(write_notebook(nb, tmp_path / "bombs.ipynb"), policy=NO_BUDGET)
    assert built.returncode == 0, built.stderr
    assert built.self_maxrss_mb < MAX_CHILD_RSS_MB, built.self_maxrss_mb
    webp, gif, jpeg = (built.skipped_of(c) for c in cells)
    assert gif == [
        "image too large to decode: 13000×13000 px (169 Mpx, limit 64 Mpx) although its header "
        "says 2×2; save a smaller figure"
    ]
    assert jpeg == [
        "image too large to decode: 12000×12000 px (144 Mpx, limit 64 Mpx) although its header "
        "says 16×16; save a smaller figure"
    ]
    assert len(webp) == 1 and "\n" not in webp[0] and webp[0].startswith("unreadable image")
    for c in cells:
        assert not built.images_of(c)
    # The kernel's matplotlib figure is still sent, with its colours (white background).
    [figure] = built.images_of(mpl)
    rgb = np.asarray(decoded(figure).convert("RGB"))
    assert (rgb[5, 5] == 255).all() and (rgb < 200).any()


def test_decoded_size_reads_every_frame() -> None:
    assert decoded_size(gif_frame_bomb(side=3000), "gif") == (3000, 3000)
    assert decoded_size(jpeg_with_two_frame_headers(side=5000), "jpeg") == (5000, 5000)
    assert decoded_size(webp_canvas_smaller_than_frame(), "webp") == (3000, 3000)
    normal = io.BytesIO()
    frames = [Image.new("RGB", (120, 80), c) for c in ("blue", "green")]
    frames[0].save(normal, "GIF", save_all=True, append_images=frames[1:])
    assert decoded_size(normal.getvalue(), "gif") == (120, 80)  # real GIFs: the screen size


def test_gif_frame_within_the_cap_but_beyond_the_screen_is_decoded_not_passed_through() -> None:
    # Small enough to decode: then it is normalised (the screen size lied), not sent as-is.
    buf = io.BytesIO()
    Image.new("P", (300, 300), 1).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", 2, 2)  # the logical screen says 2x2
    out = prepare_image(bytes(data), "image/gif", POLICY)
    assert (out.mime, out.width, out.height) == ("image/png", 300, 300)


def test_pillows_view_of_the_header_is_checked_for_other_formats() -> None:
    # 100 Mpx: over our cap (64 Mpx), under Pillow's own error threshold (179 Mpx).
    bomb = huge_tiff_header(10_000, 10_000)
    with pytest.raises(ImageRejected) as err:
        probe_size(bomb, "image/tiff", POLICY)
    assert err.value.reason.startswith("image too large to decode: 10000×10000 px (100 Mpx")
    with pytest.raises(ImageRejected, match="too large to decode: 10000"):
        prepare_image(bomb, "image/tiff", POLICY)
    # Pillow's MAX_IMAGE_PIXELS guard stays in place behind ours.
    with pytest.raises(ImageRejected, match="decompression bomb"):
        probe_size(huge_tiff_header(), "image/tiff", POLICY)


def test_eps_and_ico_are_never_handed_to_their_decoders() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"
    ico = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(ico, "ICO")
    for data in (eps, ico.getvalue()):
        with pytest.raises(ImageRejected, match="not a recognisable image"):
            prepare_image(data, "image/png", POLICY)


def test_tiffs_are_probed_lazily_and_only_the_selected_ones_decoded(tmp_path: Path) -> None:
    """59 TIFFs whose pixel data is cut short plus one good one in the focused cell, and a
    budget of one image: had the probe decoded them, they would be reported unusable; they
    are reported as left out for the budget, and the good one is sent with its colour."""
    nb = new_notebook()
    broken = tiff_bytes((1500, 1000), truncate=True)
    for k in range(59):
        # Each payload distinct (dedupe would hide the probe otherwise): vary a trailing byte.
        cell = new_markdown_cell(f"![scan](attachment:scan{k}.tiff)")
        cell["attachments"] = {
            f"scan{k}.tiff": {"image/tiff": base64.b64encode(broken + bytes([k])).decode()}
        }
        nb.cells.append(cell)
    good = new_markdown_cell("![good](attachment:good.tiff)")
    good["attachments"] = {
        "good.tiff": {"image/tiff": base64.b64encode(tiff_bytes((1500, 1000))).decode()}
    }
    nb.cells.append(good)
    built = build_isolated(
        write_notebook(nb, tmp_path / "tiffs.ipynb"), focus=59, policy={"max_images": 1}
    )
    assert built.returncode == 0, built.stderr
    [sent] = built.images
    assert sent["cell"] == 59 and (sent["width"], sent["height"]) == (1024, 682)
    assert decoded(sent).convert("RGB").getpixel((10, 10)) == (30, 144, 255)
    reasons = [r for i, r in built.skipped if i is not None and i < 59]
    assert len(reasons) == 59 and all(r.startswith("budget") for r in reasons), reasons[:3]
    assert "unreadable" not in built.text


def test_probe_size_reads_headers_only() -> None:
    assert probe_size(tiff_bytes((3000, 2000), truncate=True), "image/tiff", POLICY) == (3000, 2000)
    assert probe_size(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png", POLICY) is None
    with pytest.raises(ImageRejected, match="empty image data"):
        probe_size(b"", "image/png", POLICY)


# ---------------------------------------------------------------- class 5: colour fidelity

#: Kernel code for one cell per mode a file can store: each shows a 1600x1200 image
#: (it must be resized) split into a dark left and a light right half, and prints the
#: grey level (0..255) or RGB colour a viewer would show for each half.
_MODES_SETUP = r"""
import base64, io, json
import numpy as np
from PIL import Image
from IPython.display import display
W, H = 1600, 1200
def show(im, fmt, label, attach=False):
    buf = io.BytesIO(); im.save(buf, fmt); data = base64.b64encode(buf.getvalue()).decode()
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "TIFF": "image/tiff"}[fmt]
    if attach:  # TIFF reaches a notebook as a markdown attachment; here: as a labelled output
        mime = "image/png"
    display({mime: data, "text/plain": label}, raw=True)
def halves(dtype, low, high):
    a = np.full((H, W), low, dtype); a[:, W // 2:] = high; return a
"""

MODE_CELLS: list[tuple[str, str, Any, Any]] = [
    # (cell id, code, expected left, expected right): grey level or RGB
    ("i16-png", "show(Image.fromarray(halves(np.uint16, 10000, 50000)), 'PNG', 'I;16')", 39, 195),
    (
        "i16b-tiff",
        "big = halves(np.uint16, 10000, 50000).astype('>u2')\n"
        "show(Image.frombytes('I;16B', (W, H), big.tobytes()), 'TIFF', 'I;16B', True)",
        39,
        195,
    ),
    ("i32-tiff", "show(Image.fromarray(halves(np.int32, 1000, 60000)), 'TIFF', 'I', True)", 4, 233),
    ("f-tiff", "show(Image.fromarray(halves(np.float32, 0.2, 0.8)), 'TIFF', 'F', True)", 51, 204),
    (
        "f-wide-tiff",
        "show(Image.fromarray(halves(np.float32, -5.0, 45.0)), 'TIFF', 'F wide', True)",
        0,
        255,
    ),
    ("one-png", "show(Image.fromarray(halves(np.uint8, 0, 255)).convert('1'), 'PNG', '1')", 0, 255),
    (
        "p-trns-png",
        "p = Image.new('P', (W, H), 1); p.putpalette([0, 0, 0, 200, 30, 30, 30, 30, 200])\n"
        "p.paste(2, (W // 2, 0, W, H)); p.info['transparency'] = 0\n"
        "show(p, 'PNG', 'P+tRNS')",
        (200, 30, 30),
        (30, 30, 200),
    ),
    (
        "la-png",
        "la = Image.merge('LA', (Image.fromarray(halves(np.uint8, 40, 220)), Image.new('L', (W, H), 128)))\n"
        "show(la, 'PNG', 'LA')",
        40,
        220,
    ),
    (
        "pa-tiff",
        "p = Image.new('P', (W, H), 1); p.putpalette([0, 0, 0, 200, 30, 30, 30, 30, 200])\n"
        "p.paste(2, (W // 2, 0, W, H)); pa = p.convert('PA')\n"
        "show(pa, 'TIFF', 'PA', True)",
        (200, 30, 30),
        (30, 30, 200),
    ),
    (
        "cmyk-jpeg",
        "c = Image.new('RGB', (W, H), (200, 40, 40)); c.paste((40, 40, 200), (W // 2, 0, W, H))\n"
        "show(c.convert('CMYK'), 'JPEG', 'CMYK')",
        (200, 40, 40),
        (40, 40, 200),
    ),
    (
        "cmyk-tiff",
        "show(c.convert('CMYK'), 'TIFF', 'CMYK tiff', True)",
        (200, 40, 40),
        (40, 40, 200),
    ),
    (
        "ycbcr-tiff",
        "show(c.convert('YCbCr'), 'TIFF', 'YCbCr', True)",
        (200, 40, 40),
        (40, 40, 200),
    ),
    ("lab-tiff", "show(c.convert('LAB'), 'TIFF', 'LAB', True)", (200, 40, 40), (40, 40, 200)),
]


@pytest.fixture(scope="module")
def modes_notebook(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells.append(new_code_cell(_MODES_SETUP, id="setup"))
    for cell_id, code, _, _ in MODE_CELLS:
        nb.cells.append(new_code_cell(code, id=cell_id))
    return execute(nb, tmp_path_factory.mktemp("modes"))


def _tone(image: Any, x: int, y: int) -> Any:
    im = image.convert("RGB")
    r, g, b = im.getpixel((x, y))
    return r if r == g == b else (r, g, b)


def _close(actual: Any, expected: Any, tol: int = 6) -> bool:
    if isinstance(expected, int):
        return isinstance(actual, int) and abs(actual - expected) <= tol
    return not isinstance(actual, int) and all(
        abs(a - e) <= tol for a, e in zip(actual, expected, strict=True)
    )


@pytest.mark.kernel
def test_every_storable_mode_keeps_its_tones_after_resizing(
    modes_notebook: Any, tmp_path: Path
) -> None:
    for cell in modes_notebook.cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    built = build_isolated(
        write_notebook(modes_notebook, tmp_path / "modes.ipynb"),
        policy=NO_BUDGET,
    )
    assert built.returncode == 0, built.stderr
    wrong = []
    for cell_id, _code, left, right in MODE_CELLS:
        [image] = built.images_of(cell_index(modes_notebook, cell_id))
        im = decoded(image)
        assert im.size == (1024, 768), (cell_id, im.size)  # resized, never upscaled
        got = (_tone(im, 100, 384), _tone(im, 924, 384))
        if not (_close(got[0], left) and _close(got[1], right)):
            wrong.append((cell_id, got, (left, right)))
    assert wrong == []
    assert built.skipped == []


@pytest.mark.parametrize(
    ("mode", "make", "left", "right"),
    [
        # Modes no file format stores, only made in memory: the conversion itself.
        ("RGBa", lambda im: im.convert("RGBA").convert("RGBa"), (200, 40, 40), (40, 40, 200)),
        ("HSV", lambda im: im.convert("HSV"), (200, 40, 40), (40, 40, 200)),
        ("La", lambda im: im.convert("L").convert("LA").convert("La"), 88, 58),
        (
            "I;16L",
            lambda im: Image.frombytes(
                "I;16L", im.size, (np.asarray(im.convert("L"), "<u2") * 257).tobytes()
            ),
            88,
            58,
        ),
    ],
)
def test_in_memory_modes_convert_with_their_tones(
    mode: str, make: Any, left: Any, right: Any
) -> None:
    base = Image.new("RGB", (1600, 1200), (200, 40, 40))
    base.paste((40, 40, 200), (800, 0, 1600, 1200))
    im = make(base)
    assert im.mode == mode
    out = raster._normalise_mode(im).resize((1024, 768), Image.Resampling.BICUBIC)
    assert _close(_tone(out, 100, 384), left) and _close(_tone(out, 924, 384), right)


def test_16bit_grayscale_png_is_scaled_not_clipped() -> None:
    """The issue's case through the public entry: a 16-bit ramp that needs resizing."""
    ramp = (np.linspace(0, 65535, 2000)[None, :].repeat(1500, 0)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    out = prepare_image(buf.getvalue(), "image/png", POLICY)
    im = Image.open(io.BytesIO(out.data)).convert("L")
    assert (out.width, out.height) == (1024, 768) == im.size
    row = [int(im.getpixel((x, 300))) for x in (5, 256, 512, 768, 1018)]  # type: ignore[arg-type]
    assert row[0] < 5 and 55 < row[1] < 72 and 120 < row[2] < 136 and 185 < row[3] < 200
    assert row[4] > 250
