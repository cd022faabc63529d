"""What hostile or huge inputs cost, each against a benign input measured in the same run.

    python benchmarks/bench_bounds.py

The tests assert that these inputs are refused or bounded (and that the work grows linearly,
tests/fixtures/scaling.py); the absolute times live here, not in timed test assertions.
Prints median wall times (ms); BENCH_CPU=1 times CPU instead (steadier on a busy machine).
A ratio near 1 means the hostile input costs what an ordinary one of the same size does.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image

from jupyter_ai_vision.ai_repr import ai_repr
from jupyter_ai_vision.context.budget import ImagePolicy
from jupyter_ai_vision.errors import ImageRejected
from jupyter_ai_vision.media import markdown as mdi
from jupyter_ai_vision.media import vega
from jupyter_ai_vision.media.html import html_to_text
from jupyter_ai_vision.media.load import prepare_image
from jupyter_ai_vision.media.svg import rasterize_svg
from jupyter_ai_vision.mimes import decode_base64

POLICY = ImagePolicy()


def ms(fn: Callable[[], object], runs: int = 5) -> float:
    clock = time.process_time if os.environ.get("BENCH_CPU") == "1" else time.perf_counter
    fn()  # warm
    times = []
    for _ in range(runs):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times) * 1000


def row(label: str, ours: float, base: float) -> None:
    print(f"{label:<66} {ours:9.2f} ms   benign {base:9.2f} ms   ratio {ours / base:7.2f}")


def refused(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(ImageRejected, ValueError):
            fn()

    return run


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def html_rows() -> None:
    benign = "<p>" + "word " * 200 + "</p>"
    for unit, count in [
        ("<!--", 10_000),
        ("<", 100_000),
        ("</table></tr></td>", 1000),
        ("&#99999999;", 1000),
    ]:
        hostile = unit * count
        same_size = (benign * (len(hostile) // len(benign) + 1))[: len(hostile)]
        row(
            f"html_to_text {unit!r} x {count}",
            ms(lambda h=hostile: html_to_text(h)),
            ms(lambda b=same_size: html_to_text(b)),
        )
    table = pd.DataFrame(np.random.default_rng(0).random((5_000, 21))).to_html()
    small_table = pd.DataFrame(np.random.default_rng(0).random((30, 21))).to_html()
    row(
        f"html_to_text 5000x21 table ({len(table) // 1_000_000} MB; benign: 30 rows)",
        ms(lambda: html_to_text(table, max_chars=3000)),
        ms(lambda: html_to_text(small_table, max_chars=3000)),
    )
    unclosed = "<table>" * 40_000 + "</table>" + "<table>" + "<tr><td>1</td></tr>" * 50_000
    rows_only = "<table>" + "<tr><td>1</td></tr>" * (len(unclosed) // 19) + "</table>"
    row(
        "html_to_text 40k unclosed tables (benign: one table, same size)",
        ms(lambda: html_to_text(unclosed)),
        ms(lambda: html_to_text(rows_only)),
    )


def markdown_and_vega_rows() -> None:
    benign_md = "Some *text* with a [link](https://example.org) and `code`.\n"
    for source in ["![" * 50_000, "<img" * 30_000, "![a](" + "(" * 50_000, "[x]: " * 30_000]:
        same_size = (benign_md * (len(source) // len(benign_md) + 1))[: len(source)]
        row(
            f"find_image_refs {source[:6]!r}... ({len(source) // 1000} kB)",
            ms(lambda s=source: mdi.find_image_refs(s)),
            ms(lambda s=same_size: mdi.find_image_refs(s)),
        )
    for script in ['{"a":1,' * 50_000, '{"a":' * 5_000, "{" * 20_000, "vega " + "[" * 10_000]:
        hostile = f"<script>vegaEmbed({script})</script>"
        benign = "<script>" + "var x = 1;" * (len(script) // 10) + "</script>"
        row(
            f"spec_from_html vegaEmbed({script[:6]!r}...)",
            ms(lambda h=hostile: vega.spec_from_html(h)),
            ms(lambda b=benign: vega.spec_from_html(b)),
        )


def image_rows() -> None:
    small = _png(Image.new("RGB", (640, 480), (200, 30, 30)))
    row(
        "prepare_image: PNG header claiming 400 Mpx (benign: 640x480)",
        ms(refused(lambda: prepare_image(_bomb_png(20_000, 20_000), "image/png", POLICY))),
        ms(lambda: prepare_image(small, "image/png", POLICY)),
    )
    real_100mpx = _png(Image.new("L", (10_000, 10_000), 255))
    row(
        "prepare_image: real 100 Mpx PNG over the cap (benign: 640x480)",
        ms(refused(lambda: prepare_image(real_100mpx, "image/png", POLICY))),
        ms(lambda: prepare_image(small, "image/png", POLICY)),
    )
    huge = "A" * 50_000_000
    one_mb = base64.b64encode(b"\0" * 750_000).decode()
    row(
        "decode_base64: 50 MB refused by length (benign: decode 1 MB)",
        ms(refused(lambda: decode_base64(huge, POLICY))),
        ms(lambda: decode_base64(one_mb, POLICY)),
    )
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    laughs = (
        f"<!DOCTYPE svg [{entities}]>"
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>'
    )
    plain_svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text>lol</text></svg>'
    )
    row(
        "rasterize_svg: billion laughs refused (benign: 64x64 text)",
        ms(refused(lambda: rasterize_svg(laughs, POLICY))),
        ms(lambda: rasterize_svg(plain_svg, POLICY)),
    )


def ai_repr_rows() -> None:
    big = pd.DataFrame(np.random.default_rng(0).random((1_000_000, 18)))
    small = pd.DataFrame(np.random.default_rng(0).random((1_000, 18)))
    row(
        "ai_repr of a 1,000,000 x 18 DataFrame (benign: 1,000 rows)",
        ms(lambda: ai_repr(big)),
        ms(lambda: ai_repr(small)),
    )


def main() -> int:
    html_rows()
    print()
    markdown_and_vega_rows()
    print()
    image_rows()
    print()
    ai_repr_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
