"""Benchmark the stale-figure check and cached captions (issue 13's targets).

Stale check, against a real ipykernel that has run a 200-cell notebook (50 of its cells draw
a matplotlib figure, 10 of those were edited afterwards):

- ``server.history.executed_sources`` cold (its cache cleared: a fresh shell channel and one
  ``history_request``, as after the user ran another cell) and cached (same kernel and
  counts), against the cheapest kernel request by the same route (a ``kernel_info_request``
  over a fresh shell channel) measured in the same run;
- the builder's stale marking: a warm ``build_context`` with ``executed_sources`` vs the same
  build without, and the marking functions alone;
- per ``/see``: cold history + marking (target <= 20 ms).

Cached captions, for a text-only model with a caption model set: ``llm.captions.
captioned_context`` with a :class:`CaptionStore` already holding every caption (filled by a
first, real pass through LiteLLM to the local recording model server; the model server must
then see no more requests), added to a warm vision build, vs a warm build without captions
(the same notebook for a text-only model: stubs) in the same run (target <= 5 ms added);
also with the store at its bound (5,000 captions).

Run: ``python benchmarks/bench_stale_captions.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_context's notebook

TARGET_STALE_S = 0.020
TARGET_CAPTIONS_S = 0.005
CELLS, FIGURES, EDITED = 200, 50, 10
MODEL = "openai/gpt-4o-mini"

PLOT = """\
fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
ax.plot(range(40), [(x * {k}) % 17 for x in range(40)], color="C{c}")
ax.set_title("figure {k}")
plt.show()"""


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# ----- a real kernel runs the notebook -------------------------------------------------------


async def run_cell(km: Any, code: str) -> tuple[int, list[dict[str, Any]]]:
    """Execute ``code`` as a notebook cell (stored in history): its count and outputs."""
    import nbformat

    kc = km.client()
    kc.start_channels()
    outputs: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("display_data", "execute_result"):
            outputs.append(nbformat.v4.new_output("display_data", data=content["data"]))
        elif kind == "stream":
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=content["text"]))

    try:
        reply = await kc.execute_interactive(
            code, store_history=True, output_hook=hook, timeout=120
        )
    finally:
        kc.stop_channels()
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content']}")
    return reply["content"]["execution_count"], outputs


async def executed_notebook(km: Any) -> tuple[dict[str, Any], int]:
    """A 200-cell notebook the kernel really ran (every 4th cell a figure), then ``EDITED``
    figure cells edited without re-running. Returns (notebook, stale figures expected)."""
    import nbformat

    await run_cell(
        km,
        "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt",
    )
    nb = nbformat.v4.new_notebook()
    figures = 0
    for i in range(CELLS):
        if i % 4 == 0 and figures < FIGURES:
            code = PLOT.format(k=figures + 1, c=figures % 10)
            figures += 1
        else:
            code = f"value_{i} = {i} * 2\nprint(value_{i})"
        count, outputs = await run_cell(km, code)
        cell = nbformat.v4.new_code_cell(code)
        cell.execution_count = count
        cell.outputs = outputs
        nb.cells.append(cell)
    figure_cells = [c for c in nb.cells if "plt.show()" in c.source]
    for cell in figure_cells[:: len(figure_cells) // EDITED][:EDITED]:
        cell.source = cell.source.replace("% 17", "% 13")  # edited, not run again
    return json.loads(json.dumps(nb)), EDITED


async def median_time(
    call: Callable[[], Awaitable[Any]], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """(median, worst) seconds of ``call``; ``before`` runs untimed before each call."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def interleaved(calls: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median seconds of each synchronous call, the calls alternating run by run (so load
    changes hit them alike)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ----- stale check ---------------------------------------------------------------------------


async def bench_stale(runs: int) -> dict[str, Any]:
    from jupyter_client.manager import AsyncKernelManager

    from jupyter_ai_vision import build_context
    from jupyter_ai_vision.context.builder import executed_out_of_order, stale_figure_cells
    from jupyter_ai_vision.context.snapshot import load_notebook
    from jupyter_ai_vision.media.raster import ImageCache
    from jupyter_ai_vision.server import history
    from jupyter_ai_vision.server.kernels import shell_client

    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    try:
        t = time.perf_counter()
        nb, expected_stale = await executed_notebook(km)
        print(
            f"kernel ran the {CELLS}-cell notebook ({FIGURES} figures) in "
            f"{time.perf_counter() - t:.1f} s; {EDITED} figure cells edited since"
        )
        counts = [c["execution_count"] for c in nb["cells"]]

        async def trivial() -> None:
            async with shell_client(km, what="kernel info") as client:
                await client.kernel_info(reply=True, timeout=10)

        async def ask() -> dict[int, str] | None:
            return await history.executed_sources(km, counts)

        await trivial()  # first channel of the process
        executed = await ask()
        assert executed is not None and len(executed) == CELLS, "the kernel's history is incomplete"

        base, base_worst = await median_time(trivial, runs)
        cold, cold_worst = await median_time(ask, runs, before=history.clear_cache)
        await ask()
        cached, _ = await median_time(ask, runs * 10)

        cache = ImageCache()
        build_context(nb, model="gpt-4o", cache=cache)  # images prepared once: warm builds
        marked = build_context(nb, model="gpt-4o", cache=cache, executed_sources=executed)
        plain = build_context(nb, model="gpt-4o", cache=cache)
        assert marked.stale_figures == expected_stale, marked.stale_figures
        assert plain.stale_figures == 0
        builds = interleaved(
            {
                "without": lambda: build_context(nb, model="gpt-4o", cache=cache),
                "with": lambda: build_context(
                    nb, model="gpt-4o", cache=cache, executed_sources=executed
                ),
            },
            runs,
        )
        snapshot = load_notebook(nb)
        marking = interleaved(
            {
                "marking": lambda: (
                    stale_figure_cells(snapshot, executed),
                    executed_out_of_order(snapshot.cells),
                )
            },
            runs * 10,
        )["marking"]
    finally:
        await km.shutdown_kernel(now=True)

    added = builds["with"] - builds["without"]
    per_see_cold = cold + max(added, marking)
    per_see_cached = cached + max(added, marking)
    print(f"\nstale check ({CELLS}-cell notebook, real ipykernel, median of {runs})")
    print(
        f"  baseline: kernel_info over a fresh shell channel   {ms(base):>10}"
        f"  (worst {ms(base_worst)})"
    )
    print(
        f"  executed_sources, cold (1 history_request)         {ms(cold):>10}"
        f"  (worst {ms(cold_worst)}; {cold / base:.2f}x the baseline)"
    )
    print(
        f"  executed_sources, cached (same kernel and counts)  {ms(cached):>10}"
        f"  ({cached / base:.4f}x the baseline)"
    )
    print(
        f"  warm build_context without / with executed_sources {ms(builds['without'])} / "
        f"{ms(builds['with'])}  (added {ms(added)}, {builds['with'] / builds['without']:.3f}x); "
        f"{marked.stale_figures} figures marked stale"
    )
    print(f"  stale marking alone (stale_figure_cells + out-of-order) {ms(marking)}")
    print(
        f"  per /see, cold history + marking  {ms(per_see_cold)}"
        f"  (target <= {TARGET_STALE_S * 1000:.0f} ms: {mark(per_see_cold <= TARGET_STALE_S)})"
    )
    print(f"  per /see, cached history + marking {ms(per_see_cached)}")
    return {"cold": per_see_cold, "cached": per_see_cached}


# ----- cached captions -----------------------------------------------------------------------


async def bench_captions(runs: int) -> dict[str, Any]:
    from bench_context import generate_notebook

    from jupyter_ai_vision import build_context
    from jupyter_ai_vision.llm.captions import CaptionSettings, CaptionStore, captioned_context
    from jupyter_ai_vision.media.raster import ImageCache
    from jupyter_ai_vision.testing import ModelServer

    nb = generate_notebook()
    cache = ImageCache()
    vision = build_context(nb, model=MODEL, supports_images=True, cache=cache)
    build_context(nb, model=MODEL, supports_images=False, cache=cache)
    shas = {img.sha256 for img in vision.images}

    with ModelServer() as model, tempfile.TemporaryDirectory(prefix="bench-captions-") as tmp:
        model.set_reply("A line chart of a random walk; x from 0 to 200, y between -10 and 10.")
        settings = CaptionSettings(model=MODEL, api_base=model.url, api_key="sk-bench")
        store = CaptionStore(Path(tmp) / "captions.sqlite")
        # The first pass may wait for LiteLLM's import on a loaded machine: a long budget.
        t = time.perf_counter()
        first, report = await captioned_context(vision, replace(settings, budget=300), store)
        first_s = time.perf_counter() - t
        assert not report.pending and report.error is None, report
        assert set(first.captions) == shas and len(model.chat_requests()) == len(shas)
        asked = len(model.chat_requests())

        full = CaptionStore(Path(tmp) / "full.sqlite")
        for i in range(full.max_entries - len(shas)):
            full.put(f"{i:064x}", MODEL, f"caption {i}")
        for sha, caption in first.captions.items():
            full.put(sha, MODEL, caption)
        assert len(full) == full.max_entries

        def without() -> Any:
            return build_context(nb, model=MODEL, supports_images=False, cache=cache)

        async def with_captions(on: CaptionStore) -> Any:
            ctx = build_context(nb, model=MODEL, supports_images=True, cache=cache)
            return await captioned_context(ctx, settings, on)

        timings: dict[str, list[float]] = {"without": [], "small": [], "full": [], "step": []}
        for _ in range(runs):
            t = time.perf_counter()
            without()
            timings["without"].append(time.perf_counter() - t)
            for name, on in (("small", store), ("full", full)):
                t = time.perf_counter()
                ctx, report = await with_captions(on)
                timings[name].append(time.perf_counter() - t)
                assert len(ctx.captions) == len(shas) and not report.pending
            t = time.perf_counter()
            await captioned_context(vision, settings, store)
            timings["step"].append(time.perf_counter() - t)
        assert len(model.chat_requests()) == asked, "a cached caption was asked for again"

    med = {name: statistics.median(ts) for name, ts in timings.items()}
    added = med["small"] - med["without"]
    added_full = med["full"] - med["without"]
    print(f"\ncached captions (bench_context's 200-cell notebook, {len(shas)} figures captioned)")
    print(
        f"  first pass, captions from the model server (litellm import included) "
        f"{first_s * 1000:.0f} ms; {asked} caption requests, none after"
    )
    print(f"  baseline: warm build for the text-only model (stubs)  {ms(med['without']):>10}")
    print(
        f"  warm vision build + captioned_context, cached        {ms(med['small']):>10}"
        f"  (added {ms(added)}, {med['small'] / med['without']:.2f}x the baseline;"
        f" target <= {TARGET_CAPTIONS_S * 1000:.0f} ms: {mark(added <= TARGET_CAPTIONS_S)})"
    )
    print(
        f"  same, store at its bound ({full.max_entries} captions)       {ms(med['full']):>10}"
        f"  (added {ms(added_full)}: {mark(added_full <= TARGET_CAPTIONS_S)})"
    )
    print(f"  captioned_context alone (store lookup + wire format) {ms(med['step']):>10}")
    return {"added": added, "added_full": added_full}


async def run(runs: int) -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at start")
    await bench_stale(runs)
    await bench_captions(runs)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    asyncio.run(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
