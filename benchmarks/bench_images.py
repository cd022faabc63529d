"""Image pipeline costs, each against a naive baseline measured in the same run.

    python benchmarks/bench_images.py

Prints median wall times (ms) over several runs of real matplotlib figures; set BENCH_CPU=1
to time CPU instead (steadier when other jobs share the machine; not for the threads row).
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from jupyter_ai_vision.context.budget import ImagePolicy
from jupyter_ai_vision.media.headers import image_size
from jupyter_ai_vision.media.load import prepare_image
from jupyter_ai_vision.media.raster import ImageCache
from jupyter_ai_vision.media.svg import rasterize_svg


def figure(w: float, h: float, fmt: str = "png", dpi: int = 100) -> bytes:
    fig, ax = plt.subplots(figsize=(w, h), dpi=dpi)
    for k in range(5):
        ax.plot([i * (k + 1) % 7 for i in range(50)], label=f"series {k}")
    ax.legend()
    ax.set_title("benchmark")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def ms(fn: Callable[[], object], runs: int = 9, wall: bool = False) -> float:
    """Median wall time in ms (CPU time when BENCH_CPU=1 and not ``wall``: steadier on a
    busy machine; work in other processes or threads needs wall time)."""
    cpu = os.environ.get("BENCH_CPU") == "1" and not wall
    clock = time.process_time if cpu else time.perf_counter
    fn()  # warm
    times = []
    for _ in range(runs):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times) * 1000


def naive(data: bytes) -> bytes:
    """Baseline: decode, thumbnail to 1024 (Pillow default filter), re-encode PNG."""
    im = Image.open(io.BytesIO(data))
    im.load()
    im.thumbnail((1024, 1024))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def row(label: str, ours: float, base: float, unit: str = "ms") -> None:
    print(
        f"{label:<52} {ours:9.3f} {unit}   baseline {base:9.3f} {unit}   ratio {ours / base:6.2f}"
    )


def main() -> int:
    policy = ImagePolicy()
    big = figure(20, 12)  # 2000×1200
    small = figure(6.4, 4.8)  # 640×480
    big_jpeg = figure(20, 12, "jpeg")
    svg = figure(6.4, 4.8, "svg")
    print(f"inputs: 2000x1200 PNG {len(big)} B, 640x480 PNG {len(small)} B, SVG {len(svg)} B\n")

    def pil_header() -> object:
        return Image.open(io.BytesIO(big)).size

    row(
        "header size read (image_size vs PIL.Image.open)",
        ms(lambda: image_size(big), 2001),
        ms(pil_header, 2001),
    )
    row(
        "2000x1200 PNG -> 1024 (prepare_image vs naive)",
        ms(lambda: prepare_image(big, "image/png", policy)),
        ms(lambda: naive(big)),
    )
    row(
        "2000x1200 JPEG -> 1024 (prepare_image vs naive)",
        ms(lambda: prepare_image(big_jpeg, "image/jpeg", policy)),
        ms(lambda: naive(big_jpeg)),
    )
    row(
        "640x480 PNG pass-through (vs naive re-encode)",
        ms(lambda: prepare_image(small, "image/png", policy)),
        ms(lambda: naive(small)),
    )
    cache = ImageCache()
    prepare_image(big, "image/png", policy, cache)
    row(
        "2000x1200 PNG, cache hit (vs cold prepare)",
        ms(lambda: prepare_image(big, "image/png", policy, cache), 201),
        ms(lambda: prepare_image(big, "image/png", policy)),
    )

    # Stages of the downscale itself.
    im = Image.open(io.BytesIO(big))
    im.load()
    rgb = im.convert("RGB")
    print()
    print(
        f"{'  decode 2000x1200 PNG':<52} {ms(lambda: Image.open(io.BytesIO(big)).load()):9.3f} ms"
    )
    print(
        f"{'  bicubic resize 2000x1200 -> 1024x614 (RGB)':<52} {ms(lambda: rgb.resize((1024, 614), Image.Resampling.BICUBIC, reducing_gap=3.0)):9.3f} ms"
    )
    print(
        f"{'  bicubic resize 2000x1200 -> 1024x614 (RGBA)':<52} {ms(lambda: im.resize((1024, 614), Image.Resampling.BICUBIC, reducing_gap=3.0)):9.3f} ms"
    )
    small_rgb = rgb.resize((1024, 614), Image.Resampling.BICUBIC)
    for level in (1, 3, 6):
        out = io.BytesIO()
        small_rgb.save(out, "PNG", compress_level=level)
        t = ms(lambda lv=level: small_rgb.save(io.BytesIO(), "PNG", compress_level=lv))
        print(
            f"{f'  PNG encode 1024x614, compress_level={level}':<52} {t:9.3f} ms   {len(out.getvalue())} B"
        )

    big_out = prepare_image(big, "image/png", policy)
    print(
        f"\nbytes sent for the 2000x1200 PNG: {big_out.nbytes} vs {len(big)} as-is "
        f"(ratio {big_out.nbytes / len(big):.2f})"
    )

    print()
    import vl_convert

    text = svg.decode()
    row(
        "SVG -> PNG, wall (sanitise + worker vs raw vl_convert)",
        ms(lambda: rasterize_svg(svg, policy), wall=True),
        ms(lambda: vl_convert.svg_to_png(text), wall=True),
    )

    images = [figure(10 + i, 6 + i % 3) for i in range(8)]
    serial = ms(lambda: [prepare_image(d, "image/png", policy) for d in images], 3, wall=True)
    with ThreadPoolExecutor(2) as pool:
        parallel = ms(
            lambda: list(pool.map(lambda d: prepare_image(d, "image/png", policy), images)),
            3,
            wall=True,
        )
    row("8 large PNGs, 2 threads, wall (vs serial)", parallel, serial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
