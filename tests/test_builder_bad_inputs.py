"""A notebook mixing every bad input from the issue with good, kernel-produced outputs:
each bad item gives one one-line ``skipped`` entry, everything good is still used, nothing is
fetched or read from outside the notebook's root, and the process survives."""

from __future__ import annotations

import base64
import copy
import io
import random
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures.notebooks import output_bytes, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from PIL import Image

from jupyter_ai_vision import ImagePolicy, build_context

GOOD_IMAGE_CELLS = [
    "mpl",
    "mpl-big",
    "altair-html",
    "altair-mime",
    "plotly",  # drawn by the chart browser (media/charts)
    "plotly-png",
    "pil",
    "formats",
    "svg",
]
ROOMY = ImagePolicy(max_images=40, max_image_tokens=200_000)


class _Recorder(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_trap() -> Iterator[tuple[str, list[str]]]:
    """A 127.0.0.1 server that records every request (there must be none)."""
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    server.shutdown()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height (a decompression bomb's signature)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _display(cell_id: str, data: dict[str, Any]) -> Any:
    cell = new_code_cell(f"# {cell_id}", id=cell_id)
    cell.execution_count = 1
    cell.outputs = [new_output("display_data", data={**data, "text/plain": "<object>"})]
    return cell


def _svg_with_image(href: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="120" height="80"><rect width="120" height="80" fill="white"/>'
        f'<image href="{href}" xlink:href="{href}" x="0" y="0" width="120" height="80"/></svg>'
    )


@pytest.fixture(scope="module")
def bad_notebook(tmp_path_factory, executed_notebook, http_trap) -> tuple[Path, dict[str, str]]:
    """(notebook path, {bad cell id: what it is}) under a root with a secret outside it."""
    base, _ = http_trap
    top = tmp_path_factory.mktemp("badroot")
    root = top / "root"
    (root / "sub").mkdir(parents=True)
    secret = top / "secret.png"  # outside the root: must never be read
    Image.new("RGB", (120, 80), (255, 0, 0)).save(secret)
    (root / ".hidden.png").write_bytes(secret.read_bytes())
    (root / "escape.png").symlink_to(secret)

    good_png = output_bytes(executed_notebook, "mpl")
    huge = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(huge, format="PNG")  # 100 Mpx, a real PNG
    bad: dict[str, Any] = {
        "bomb-400mpx": _display(
            "bomb-400mpx", {"image/png": _b64(png_header_only(20_000, 20_000))}
        ),
        "png-100mpx": _display("png-100mpx", {"image/png": _b64(huge.getvalue())}),
        "truncated": _display("truncated", {"image/png": _b64(good_png[: len(good_png) // 2])}),
        "random": _display("random", {"image/png": _b64(random.Random(0).randbytes(5000))}),
        "bad-b64": _display("bad-b64", {"image/png": "@@@ this is not base64 @@@"}),
        "b64-50mb": _display("b64-50mb", {"image/png": "A" * 50_000_000}),
        "svg-xxe": _display(
            "svg-xxe",
            {
                "image/svg+xml": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>'
            },
        ),
        "svg-laughs": _display(
            "svg-laughs",
            {
                "image/svg+xml": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
                '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&c;</text></svg>'
            },
        ),
        "vega-remote": _display(
            "vega-remote",
            {
                "application/vnd.vegalite.v5+json": {
                    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                    "data": {"url": f"{base}/data.csv"},
                    "mark": "bar",
                    "encoding": {"x": {"field": "a", "type": "nominal"}},
                }
            },
        ),
        "html-script": _display(
            "html-script", {"text/html": "<p>hello</p><script>fetch('/steal')</script>"}
        ),
    }
    links = {
        "md-dotdot": "../../etc/passwd",
        "md-abs": "/etc/passwd",
        "md-pct": "%2e%2e/secret.png",
        "md-file": "file:///etc/passwd",
        "md-home": "~/x.png",
        "md-symlink": "escape.png",
        "md-hidden": ".hidden.png",
        "md-remote": f"{base}/remote.png",
    }
    for cell_id, target in links.items():
        bad[cell_id] = new_markdown_cell(f"See ![img]({target})", id=cell_id)
    bad["md-missing"] = new_markdown_cell("See ![img](attachment:nope.png)", id="md-missing")

    nb = copy.deepcopy(executed_notebook)
    cells = list(nb.cells)
    nb.cells = []
    bad_cells = list(bad.values())
    for k, cell in enumerate(cells):  # interleave bad cells between the good ones
        nb.cells.append(cell)
        nb.cells.extend(bad_cells[k * 2 : k * 2 + 2])
    nb.cells.extend(bad_cells[len(cells) * 2 :])
    path = write_notebook(nb, root / "sub" / "bad.ipynb")
    return path, {k: k for k in bad}


@pytest.fixture(scope="module")
def bad_ctx(bad_notebook):
    path, _ = bad_notebook
    return build_context(path, root_dir=path.parent.parent, policy=ROOMY, model="gpt-4o")


def test_every_bad_item_gives_exactly_one_line(bad_ctx, bad_notebook):
    _, bad = bad_notebook
    for cell_id in bad:
        lines = [s.reason for s in bad_ctx.skipped if s.provenance.cell_id == cell_id]
        assert len(lines) == 1, (cell_id, lines)
        assert "\n" not in lines[0] and 10 < len(lines[0]) <= 300
    assert not [img for img in bad_ctx.images if img.provenance.cell_id in bad]


def test_everything_good_is_still_used(bad_ctx, executed_notebook):
    sent = {img.provenance.cell_id for img in bad_ctx.images}
    assert sent == set(GOOD_IMAGE_CELLS) | {"html-img"}
    assert len([i for i in bad_ctx.images if i.provenance.cell_id == "formats"]) == 3
    good_skips = [s for s in bad_ctx.skipped if s.provenance.cell_id in GOOD_IMAGE_CELLS]
    assert good_skips == []
    for needle in ("ValueError: bad value 42", "| 0 | Oslo | 3.5 |", "Temperatures", "line 2"):
        assert needle in bad_ctx.text


def test_reasons_say_what_went_wrong(bad_ctx):
    reasons = {s.provenance.cell_id: s.reason.lower() for s in bad_ctx.skipped}
    assert "px" in reasons["bomb-400mpx"] or "pixel" in reasons["bomb-400mpx"]
    assert "data.csv" in reasons["vega-remote"] and "never fetched" in reasons["vega-remote"]
    assert "remote" in reasons["md-remote"] and "not fetched" in reasons["md-remote"]
    assert "outside" in reasons["md-dotdot"] or "out of" in reasons["md-dotdot"]
    assert "hidden" in reasons["md-hidden"]
    assert "nope.png" in reasons["md-missing"]
    assert "script" in reasons["html-script"]
    assert "steal" not in bad_ctx.text


def test_nothing_was_fetched(bad_ctx, http_trap):
    _, requests = http_trap
    assert requests == []


def test_svg_external_references_are_never_loaded(executed_notebook, tmp_path, http_trap):
    base, requests = http_trap
    secret = tmp_path / "secret.png"
    Image.new("RGB", (120, 80), (255, 0, 0)).save(secret)
    root = tmp_path / "root"
    root.mkdir()
    hrefs = [str(secret), "../secret.png", secret.as_uri(), f"{base}/svg-image.png"]
    nb = copy.deepcopy(executed_notebook)
    for k, href in enumerate(hrefs):
        nb.cells.append(_display(f"svg-ref-{k}", {"image/svg+xml": _svg_with_image(href)}))
    nb.cells.append(
        _display(
            "svg-huge",
            {
                "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" width="40000" height="40000">'
                '<rect width="40000" height="40000" fill="navy"/></svg>'
            },
        )
    )
    path = write_notebook(nb, root / "svg.ipynb")
    ctx = build_context(path, policy=ROOMY)
    assert requests == []
    refs = {i.provenance.cell_id: i for i in ctx.images if i.provenance.cell_id.startswith("svg-")}
    assert set(refs) == {"svg-ref-0", "svg-ref-1", "svg-ref-2", "svg-ref-3", "svg-huge"}
    for k in range(4):  # the SVG itself is drawn, the referenced (red) image is not
        with Image.open(io.BytesIO(refs[f"svg-ref-{k}"].data)) as im:
            colors = {c for _, c in im.convert("RGB").getcolors(1 << 16)}
        assert (255, 0, 0) not in colors and (255, 255, 255) in colors
        (line,) = [s.reason for s in ctx.skipped if s.provenance.cell_id == f"svg-ref-{k}"]
        assert line.startswith("SVG drawn without") and "never loaded" in line
    huge = refs["svg-huge"]  # the process survived a 40000×40000 canvas
    assert max(huge.width, huge.height) <= 1024
    assert {i.provenance.cell_id for i in ctx.images} >= set(GOOD_IMAGE_CELLS)


def test_many_unusable_images_never_lose_an_item(executed_notebook):
    """More broken images than selection rounds can replace: every image still ends up
    sent, stubbed or skipped, and the good ones near the focus are sent."""
    nb = copy.deepcopy(executed_notebook)
    png = output_bytes(executed_notebook, "mpl")
    for k in range(60):  # valid headers, broken bodies: only found out when decoded
        nb.cells.append(_display(f"noise-{k}", {"image/png": _b64(png[: 200 + k])}))
    nb.cells.append(copy.deepcopy(executed_notebook.cells[2]))  # a good figure, focused
    nb.cells[-1].id = "good-last"
    ctx = build_context(nb, focus="good-last", policy=ImagePolicy(max_images=4))
    assert [i.provenance.cell_id for i in ctx.images][-1] == "good-last"
    images_or_stubs = len(ctx.images) + ctx.text.count("[figure: ")
    assert images_or_stubs == 60 + 13  # 12 good images in the notebook + the focused copy
    assert len([s for s in ctx.skipped if s.provenance.cell_id.startswith("noise-")]) == 60
