"""Benchmark the context builder on a generated 200-cell notebook.

The notebook holds 50 real matplotlib PNGs of mixed sizes (up to 2000×1200), 5 Vega-Lite
charts, 5 matplotlib SVGs, and text cells/outputs. Prints:

- cold build (fresh image cache; the renderers already started once in this process, the
  very first call in a process is reported separately), warm build (cached);
- payload bytes vs the naive approach (every image sent as-is), measured in the same run;
- image tokens vs the budget; import time of ``jupyter_ai_vision`` (subprocess, must not
  import litellm); peak memory.

Usage: python benchmarks/bench_context.py [--model gpt-4o] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SIZES = [(640, 480), (1000, 600), (1200, 800), (1600, 1000), (2000, 1200)]
TARGET_COLD_S = 0.6
TARGET_WARM_S = 0.05
TARGET_PAYLOAD = 0.25


def _figure(kind: str, k: int, size: tuple[int, int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(k)
    dpi = 100
    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    if k % 3 == 0:
        ax.plot(rng.normal(size=200).cumsum(), label="walk")
        ax.legend()
    elif k % 3 == 1:
        ax.scatter(rng.random(300), rng.random(300), c=rng.random(300), s=12)
    else:
        ax.hist(rng.normal(size=1000), bins=30)
    ax.set_title(f"figure {k}")
    buf = io.BytesIO()
    fig.savefig(buf, format=kind, dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _vegalite(k: int) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"chart {k}",
        "data": {"values": [{"x": i, "y": (i * (k + 3)) % 17} for i in range(40)]},
        "mark": ["line", "bar", "point"][k % 3],
        "encoding": {
            "x": {"field": "x", "type": "quantitative"},
            "y": {"field": "y", "type": "quantitative"},
        },
    }


def generate_notebook() -> dict[str, Any]:
    """200 cells: a figure every 4th cell, charts and SVGs spread in between, text elsewhere."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook()
    png_k = svg_k = vl_k = 0
    for i in range(200):
        if i % 10 == 9:
            nb.cells.append(new_markdown_cell(f"## Section {i // 10}\nSome prose about step {i}."))
            continue
        cell = new_code_cell(f"result_{i} = compute({i})\nresult_{i}", execution_count=i)
        if i % 4 == 0 and png_k < 50:
            png = _figure("png", png_k, SIZES[png_k % len(SIZES)])
            cell.outputs = [
                new_output(
                    "display_data",
                    data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"},
                )
            ]
            png_k += 1
        elif i % 40 == 3 and vl_k < 5:
            cell.outputs = [
                new_output(
                    "execute_result",
                    data={
                        "application/vnd.vegalite.v5+json": _vegalite(vl_k),
                        "text/plain": "alt.Chart(...)",
                    },
                    execution_count=i,
                )
            ]
            vl_k += 1
        elif i % 40 == 23 and svg_k < 5:
            svg = _figure("svg", 100 + svg_k, (640, 480)).decode()
            cell.outputs = [
                new_output("display_data", data={"image/svg+xml": svg, "text/plain": "<Figure>"})
            ]
            svg_k += 1
        else:
            cell.outputs = [new_output("stream", name="stdout", text=f"step {i}: ok\n" * 3)]
        nb.cells.append(cell)
    assert (png_k, vl_k, svg_k) == (50, 5, 5), (png_k, vl_k, svg_k)
    return json.loads(json.dumps(nb))


def naive_payload(nb: dict[str, Any]) -> tuple[int, int]:
    """(image count, base64 bytes) if every image were sent as-is: PNGs and SVGs as stored,
    charts as vl-convert renders them at scale 1."""
    import vl_convert as vlc

    count = total = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                total += len(data["image/png"])
            elif "image/svg+xml" in data:
                total += len(base64.b64encode(data["image/svg+xml"].encode()))
            elif "application/vnd.vegalite.v5+json" in data:
                png = vlc.vegalite_to_png(
                    data["application/vnd.vegalite.v5+json"], allowed_base_urls=[]
                )
                total += len(base64.b64encode(png))
            else:
                continue
            count += 1
    return count, total


def import_time() -> tuple[float, bool]:
    code = (
        "import time, sys; t = time.perf_counter(); import jupyter_ai_vision; "
        "from jupyter_ai_vision.context import builder; from jupyter_ai_vision import cli; "
        "print(time.perf_counter() - t, 'litellm' in sys.modules)"
    )
    times = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        times.append(float(out[0]))
        litellm = out[1] == "True"
    return min(times), litellm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--save", metavar="PATH", help="also write the generated notebook")
    args = parser.parse_args()

    from jupyter_ai_vision import build_context
    from jupyter_ai_vision.context.budget import ImagePolicy, model_profile
    from jupyter_ai_vision.context.builder import clear_caches
    from jupyter_ai_vision.media.raster import ImageCache

    t = time.perf_counter()
    nb = generate_notebook()
    if args.save:
        with open(args.save, "w") as f:
            json.dump(nb, f)
    print(
        f"generated 200-cell notebook in {time.perf_counter() - t:.1f} s "
        f"({len(json.dumps(nb)) / 1e6:.1f} MB JSON; {os.cpu_count()} CPUs)"
    )

    t = time.perf_counter()
    first = build_context(nb, model=args.model, cache=ImageCache())
    first_s = time.perf_counter() - t

    colds, cpus = [], []
    for _ in range(args.runs):
        clear_caches()  # nothing remembered from earlier runs
        cache = ImageCache()
        t, c = time.perf_counter(), time.process_time()
        ctx = build_context(nb, model=args.model, cache=cache)
        colds.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    warms = []
    for _ in range(args.runs):
        t = time.perf_counter()
        warm = build_context(nb, model=args.model, cache=cache)
        warms.append(time.perf_counter() - t)
    assert (
        [p.sha256 for p in warm.images]
        == [p.sha256 for p in ctx.images]
        == [p.sha256 for p in first.images]
    )

    clear_caches()
    tracemalloc.start()
    build_context(nb, model=args.model, cache=ImageCache())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    naive_n, naive_bytes = naive_payload(nb)
    sent_bytes = sum(len(base64.b64encode(p.data)) for p in ctx.images)
    profile = model_profile(args.model)
    limit = profile.token_limit(ImagePolicy())
    imp_s, imp_litellm = import_time()
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    cold, warmm = statistics.median(colds), statistics.median(warms)
    ratio = sent_bytes / naive_bytes

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"model {args.model}: {len(ctx.images)} images sent, {len(ctx.skipped)} left out (stubs)")
    print(f"first build in a fresh process: {first_s * 1000:.0f} ms (renderer start-up included)")
    print(
        f"cold build (fresh cache), median of {args.runs}: {cold * 1000:.0f} ms "
        f"(target <= {TARGET_COLD_S * 1000:.0f} ms: {mark(cold <= TARGET_COLD_S)})"
    )
    print(
        f"  cold CPU time, all threads of this process: {statistics.median(cpus) * 1000:.0f} ms; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while measuring"
    )
    print(
        f"warm build (cached), median of {args.runs}: {warmm * 1000:.1f} ms "
        f"(target <= {TARGET_WARM_S * 1000:.0f} ms: {mark(warmm <= TARGET_WARM_S)})"
    )
    print(
        f"payload: {sent_bytes / 1e6:.2f} MB base64 vs naive {naive_bytes / 1e6:.2f} MB "
        f"({naive_n} images as-is) = {ratio:.1%} (target <= {TARGET_PAYLOAD:.0%}: {mark(ratio <= TARGET_PAYLOAD)})"
    )
    per_image = [p.nbytes / p.original_bytes for p in ctx.images if p.original_bytes]
    print(f"  per sent image, sent/original bytes: median {statistics.median(per_image):.0%}")
    print(
        f"image tokens: {ctx.image_tokens} of a {limit} budget ({mark(ctx.image_tokens <= limit)}); "
        f"text tokens ~{ctx.text_tokens}"
    )
    print(
        f"import jupyter_ai_vision (+builder, cli): {imp_s * 1000:.0f} ms; litellm imported: {imp_litellm} "
        f"({mark(not imp_litellm)})"
    )
    print(
        f"peak traced memory during a cold build: {peak / 1e6:.0f} MB; process max RSS {rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
