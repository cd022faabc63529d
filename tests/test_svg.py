"""SVG rasterisation: real matplotlib SVGs render; hostile SVGs read no file, make no request,
and cannot take the process down."""

from __future__ import annotations

import base64
import http.server
import io
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from jupyter_ai_vision.context.budget import ImagePolicy
from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.media.svg import rasterize_svg, sanitize_svg

matplotlib.use("Agg")
import matplotlib.pyplot as plt

POLICY = ImagePolicy()
MAGENTA = (255, 0, 255)
SVG_HEAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="60" height="60">'
)


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _count(png: bytes, colour: tuple[int, int, int]) -> int:
    """Pixels within 30 of ``colour`` on every channel."""
    return int((np.abs(_rgb(png) - np.array(colour)) < 30).all(axis=-1).sum())


def _raw_vl_convert(svg: str, cwd: Path) -> bytes:
    """What vl_convert does with an unsanitised SVG (in a child process, so a fetch from a
    server in this process cannot deadlock on the GIL) — proves the hostile inputs bite."""
    code = (
        "import sys, vl_convert; sys.stdout.buffer.write(vl_convert.svg_to_png(sys.stdin.read()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=svg.encode(), capture_output=True, cwd=cwd, timeout=60
    )
    return done.stdout


@pytest.fixture(scope="module")
def mpl_svg() -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot([0, 1, 2], [0, 2, 1], color="#ff0000", linewidth=6)
    ax.set_title("revenue")
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()


@pytest.fixture(scope="module")
def secret_png(tmp_path_factory) -> Path:
    """A real local image file in a distinctive colour: if it shows up, it was read."""
    root = tmp_path_factory.mktemp("secret")
    path = root / "secret.png"
    Image.new("RGB", (60, 60), MAGENTA).save(path)
    (root / "work").mkdir()
    return path


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []
    body = b""

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_server(secret_png):
    _Recorder.body = secret_png.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


# ---------------------------------------------------------------- normal SVGs


def test_matplotlib_svg_renders_with_the_right_colours(mpl_svg):
    png = rasterize_svg(mpl_svg, POLICY)
    assert image_size(png) == (614, 460, "png")  # 460.8pt × 345.6pt at 96 dpi
    assert _count(png, (255, 0, 0)) > 1500  # the 6-px red line
    assert _count(png, (255, 255, 255)) > 614 * 460 // 2  # matplotlib's white background


def test_svg_with_byte_order_mark_renders(mpl_svg):
    assert image_size(rasterize_svg(b"\xef\xbb\xbf" + mpl_svg, POLICY)) == (614, 460, "png")


def test_svg_str_input_and_downscale_to_the_policy(mpl_svg):
    png = rasterize_svg(mpl_svg.decode(), ImagePolicy(max_edge=300))
    assert image_size(png) == (300, 224, "png")


def test_embedded_data_png_is_kept():
    dot = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 255)).save(dot, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(dot.getvalue()).decode()
    svg = f'{SVG_HEAD}<image xlink:href="{uri}" width="60" height="60"/></svg>'
    assert _count(rasterize_svg(svg, POLICY), (0, 0, 255)) > 3000


def test_embedded_data_png_declaring_400_mpx_is_dropped():
    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    uri = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()
    clean, _ = sanitize_svg(f'{SVG_HEAD}<image href="{uri}" width="9" height="9"/></svg>', POLICY)
    assert "data:" not in clean and "<image" in clean


# ---------------------------------------------------------------- local files and requests


def _image_svg(href: str) -> str:
    return f'{SVG_HEAD}<image xlink:href="{href}" width="60" height="60"/></svg>'


@pytest.mark.parametrize("form", ["absolute", "dotdot", "file-url", "plain-href"])
def test_local_file_refs_are_never_read(form, secret_png, monkeypatch):
    workdir = secret_png.parent / "work"
    href = {
        "absolute": str(secret_png),
        "dotdot": "../secret.png",
        "file-url": secret_png.as_uri(),
        "plain-href": str(secret_png),
    }[form]
    svg = _image_svg(href)
    if form == "plain-href":
        svg = svg.replace("xlink:href", "href")
    if form in ("absolute", "dotdot", "plain-href"):
        # Unsanitised, vl_convert really does read the file: the test can fail.
        assert _count(_raw_vl_convert(svg, workdir), MAGENTA) > 3000
    monkeypatch.chdir(workdir)
    present = rasterize_svg(svg, POLICY)
    assert _count(present, MAGENTA) == 0
    # Same pixels whether or not the file exists: its content never reached the renderer.
    hidden = secret_png.with_name("moved.png")
    secret_png.rename(hidden)
    try:
        absent = rasterize_svg(svg, POLICY)
    finally:
        hidden.rename(secret_png)
    assert np.array_equal(_rgb(present), _rgb(absent))


def test_http_refs_make_no_request(http_server, secret_png):
    port = http_server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    svg = (
        SVG_HEAD
        + f'<image xlink:href="{base}/image.png" width="60" height="60"/>'
        + f'<use href="{base}/sprite.svg#a"/>'
        + f'<filter id="f"><feImage href="{base}/fe.png"/></filter>'
        + f"<style>@import url({base}/style.css); rect {{ fill: url({base}/p.svg#p) }}</style>"
        + f'<rect width="10" height="10" style="fill: url(\'{base}/s.svg#x\')" filter="url(#f)"/>'
        + "</svg>"
    )
    # Unsanitised, vl_convert fetches from the server: the assertion below can fail.
    _Recorder.requests.clear()
    raw = _raw_vl_convert(_image_svg(f"{base}/image.png"), secret_png.parent)
    assert _Recorder.requests == ["/image.png"] and _count(raw, MAGENTA) > 3000
    _Recorder.requests.clear()
    png = rasterize_svg(svg, POLICY)
    time.sleep(0.2)  # a late request would still be recorded
    assert _Recorder.requests == []
    assert _count(png, MAGENTA) == 0
    clean = sanitize_svg(svg, POLICY)[0]
    assert "127.0.0.1" not in clean


def test_scripts_handlers_and_foreign_objects_are_dropped():
    svg = (
        SVG_HEAD
        + '<script>alert(1)</script><rect width="5" height="5" onload="alert(2)"/>'
        + "<foreignObject><div xmlns='http://www.w3.org/1999/xhtml'>x</div></foreignObject>"
        + '<?xml-stylesheet href="http://x/y.css"?><!-- note --></svg>'
    )
    clean = sanitize_svg(svg, POLICY)[0]
    for banned in ("script", "alert", "onload", "foreignObject", "xml-stylesheet", "note"):
        assert banned not in clean


def test_nested_svg_data_uri_is_dropped(secret_png):
    inner = _image_svg(str(secret_png))
    uri = "data:image/svg+xml;base64," + base64.b64encode(inner.encode()).decode()
    png = rasterize_svg(_image_svg(uri), POLICY)
    assert _count(png, MAGENTA) == 0


# ---------------------------------------------------------------- XML attacks


def test_xxe_is_rejected():
    svg = (
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
    )
    with pytest.raises(ImageRejected) as err:
        rasterize_svg(svg, POLICY)
    assert err.value.reason.startswith("SVG rejected:") and "\n" not in err.value.reason


def test_billion_laughs_is_rejected_quickly():
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    svg = (
        f"<!DOCTYPE svg [{entities}]>"
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>'
    )
    # refused before any entity is expanded (the expansion would be 10^9 "lol"s; the cost of
    # the refusal: benchmarks/bench_bounds.py)
    with pytest.raises(
        ImageRejected, match="inline DOCTYPE declarations and entities are not allowed"
    ):
        rasterize_svg(svg, POLICY)


def test_matplotlib_style_doctype_without_internal_subset_is_fine(mpl_svg):
    assert b"<!DOCTYPE svg PUBLIC" in mpl_svg
    clean, size = sanitize_svg(mpl_svg.decode(), POLICY)
    assert "DOCTYPE" not in clean and size == (614, 460)


@pytest.mark.parametrize(
    ("svg", "reason"),
    [
        ("<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>", "not well-formed XML"),
        ("<html><body/></html>", "root element is <html>, not <svg>"),
        ("<svg xmlns='http://www.w3.org/2000/svg' width='-5' height='3'/>", "not usable sizes"),
        ("<svg><text>&undefined;</text></svg>", "not well-formed XML"),
    ],
)
def test_invalid_svgs_are_one_line_rejections(svg, reason):
    with pytest.raises(ImageRejected) as err:
        rasterize_svg(svg, POLICY)
    assert reason in err.value.reason and "\n" not in err.value.reason


def test_oversized_and_non_utf8_svg_are_rejected():
    with pytest.raises(ImageRejected, match="SVG too large"):
        rasterize_svg("<svg>" + " " * 2000 + "</svg>", ImagePolicy(max_svg_chars=1000))
    with pytest.raises(ImageRejected, match="not UTF-8"):
        rasterize_svg(b"<svg>\xff\xfe</svg>", POLICY)


# ---------------------------------------------------------------- giant canvases and crashes


def test_40000_square_svg_renders_within_the_policy():
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="40000" height="40000">'
        '<rect width="40000" height="20000" fill="#0000ff"/></svg>'
    )
    png = rasterize_svg(svg, POLICY)
    assert image_size(png) == (1024, 1024, "png")
    assert 0.45 < _count(png, (0, 0, 255)) / (1024 * 1024) < 0.55  # top half blue: scaled


def test_40000_square_viewbox_only_svg_renders_within_the_policy():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40000 40000"><rect/></svg>'
    assert image_size(rasterize_svg(svg, POLICY)) == (1024, 1024, "png")


def test_pattern_bomb_that_aborts_resvg_costs_one_svg_not_the_process(mpl_svg):
    bomb = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><defs>'
        '<pattern id="p" width="100000" height="100000" patternUnits="userSpaceOnUse" '
        'patternTransform="scale(100)"><rect width="100000" height="100000" fill="red"/>'
        '</pattern></defs><rect width="100" height="100" fill="url(#p)"/></svg>'
    )
    with pytest.raises(ImageRejected) as err:
        rasterize_svg(bomb, POLICY)
    assert err.value.reason == "SVG rejected: it made the renderer run out of memory or crash"
    assert os.getpid() and image_size(rasterize_svg(mpl_svg, POLICY))  # still alive, still works


def test_render_timeout_kills_the_worker_and_the_next_render_works(mpl_svg):
    with pytest.raises(ImageRejected, match="rendering took longer than"):
        rasterize_svg(mpl_svg, ImagePolicy(svg_timeout=0.001))
    assert image_size(rasterize_svg(mpl_svg, POLICY)) == (614, 460, "png")


def test_worker_never_imports_modules_from_the_working_directory(mpl_svg, tmp_path, monkeypatch):
    from jupyter_ai_vision.media import svg as svg_module

    svg_module.SANDBOX.shutdown()  # fresh workers start in the new working directory
    for name in ("struct", "resource", "json", "vl_convert"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('shadowed module imported')\n")
    monkeypatch.chdir(tmp_path)
    assert image_size(rasterize_svg(mpl_svg, POLICY)) == (614, 460, "png")


def test_prewarm_starts_a_worker_in_the_background(mpl_svg):
    from jupyter_ai_vision.media import svg as svg_module

    svg_module.SANDBOX.shutdown()
    assert svg_module.SANDBOX.idle_count() == 0
    svg_module.prewarm()
    deadline = time.monotonic() + 30
    while not svg_module.SANDBOX.idle_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert svg_module.SANDBOX.idle_count() == 1
    assert image_size(rasterize_svg(mpl_svg, POLICY)) == (614, 460, "png")


def test_concurrent_renders_are_correct(mpl_svg):
    sizes = [200, 300, 400, 500, 614, 250]
    with ThreadPoolExecutor(6) as pool:
        pngs = list(pool.map(lambda e: rasterize_svg(mpl_svg, ImagePolicy(max_edge=e)), sizes))
    assert [image_size(p)[0] for p in pngs] == sizes
