"""Inline completion: context assembly cost and memory over many requests.

Builds a real 200-cell jupyter_ydoc ``YNotebook`` (code cells with text outputs, a
matplotlib figure every 10 cells, markdown cells) and measures, in the same run:

- baseline: assembling a prefix/suffix-only prompt (what jupyter-ai does without context);
- live: reading the window around the cursor from the live YNotebook + the shared context
  builder (text, outputs, the most recent figure) + the prompt.

Then runs 1,000 requests (assembly, and with ``--model-server`` the full ``generate`` path
through LiteLLM to the local recording server) and reports tracemalloc and RSS growth.

    python benchmarks/bench_completion.py [--cells 200] [--runs 300] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def figure_png(i: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(range(20), [((x * (i + 1)) % 7) for x in range(20)])
    ax.set_title(f"Figure {i}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def make_notebook(n_cells: int) -> dict[str, Any]:
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook()
    png: dict[int, str] = {}
    for i in range(n_cells):
        if i % 7 == 0:
            nb.cells.append(new_markdown_cell(f"## Step {i}\nWe look at series {i}.", id=f"c{i}"))
            continue
        cell = new_code_cell(
            f"series_{i} = load('s{i}.csv')\nsummary_{i} = series_{i}.describe()\nsummary_{i}",
            id=f"c{i}",
            execution_count=i,
        )
        cell.outputs.append(
            new_output(
                "execute_result",
                data={"text/plain": "\n".join(f"row {r}  {r * i}" for r in range(15))},
                execution_count=i,
            )
        )
        if i % 10 == 3:
            key = i % 4  # a few distinct figures, as a real notebook re-plots
            png.setdefault(key, figure_png(key))
            cell.outputs.append(
                new_output("display_data", data={"image/png": png[key], "text/plain": "<Figure>"})
            )
        nb.cells.append(cell)
    return nb


class BenchProvider:
    """The attributes the completer reads from a provider (model id, image support)."""

    model_id = "openai/gpt-4o"

    def supports_images(self) -> bool:
        return True


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def assemble(provider: Any, ynb: Any, cell_id: str, live: bool, number: int) -> Any:
    from jupyter_ai_magics.models.completion import InlineCompletionRequest

    from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

    request = InlineCompletionRequest(
        number=number,
        prefix=f"series_{number % 90}.",
        suffix="\nprint('done')",
        mime="text/x-ipython",
        stream=False,
        language="python",
        path="bench.ipynb" if live else None,
        cell_id=cell_id if live else None,
    )
    settings = completion.settings_for(provider)
    window = completion.window_from_ynotebook(ynb, cell_id, settings) if live else None
    return await completion.build_prompt(
        provider, request, server_settings={}, settings=settings, window=window
    )


async def timings(
    ynb: Any, ids: list[str], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    provider = BenchProvider()
    out: dict[str, list[float]] = {"prefix/suffix only": [], "live window + builder": []}
    cpu: dict[str, list[float]] = {name: [] for name in out}
    for warm in range(20):  # warm caches (image cache, imports)
        await assemble(provider, ynb, ids[warm % len(ids)], True, warm)
    for i in range(runs):
        cell_id = ids[i % len(ids)]
        for name, live in (("prefix/suffix only", False), ("live window + builder", True)):
            t, c = time.perf_counter(), time.process_time()
            prompt = await assemble(provider, ynb, cell_id, live, i)
            out[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append((time.process_time() - c) * 1000)
            if live:
                assert prompt.origin == "live", prompt.origin
    return out, cpu


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def memory(
    ynb: Any, ids: list[str], requests: int, model_url: str | None, root: str | None = None
) -> None:
    """Heap and RSS growth over ``requests`` requests after 100 warm-up ones."""
    from jupyter_ai_magics.models.completion import InlineCompletionRequest

    from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

    provider: Any = BenchProvider()
    if model_url:
        from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider

        provider = VisionProvider(model_id="openai/gpt-4o", api_base=model_url, api_key="sk-x")

    async def one(i: int) -> None:
        cell_id = ids[i % len(ids)]
        if not model_url:
            await assemble(provider, ynb, cell_id, True, i)
            return
        request = InlineCompletionRequest(
            number=i,
            prefix=f"series_{i % 90}.",
            suffix="",
            mime="text/x-ipython",
            stream=i % 2 == 1,
            language="python",
            path="bench.ipynb",
            cell_id=cell_id,
        )
        settings = {"server_root_dir": root}
        if request.stream:
            async for _ in completion.stream(provider, request, server_settings=settings):
                pass
        else:
            reply = await completion.generate(provider, request, server_settings=settings)
            assert reply.error is None and reply.list.items[0].insertText == "mean()", reply

    for i in range(100):
        await one(i)
    gc.collect()
    tracemalloc.start()
    base_traced, base_rss = tracemalloc.get_traced_memory()[0], rss_mb()
    marks = []
    for i in range(100, 100 + requests):
        await one(i)
        if (i - 99) % (requests // 4) == 0:
            gc.collect()
            marks.append((i - 99, tracemalloc.get_traced_memory()[0] - base_traced, rss_mb()))
    tracemalloc.stop()
    label = (
        "generate/stream through LiteLLM, saved-file context, half streaming"
        if model_url
        else "live window + builder"
    )
    print(f"\nmemory over {requests} requests ({label}); after 100 warm-up requests:")
    for n, traced, rss in marks:
        print(
            f"  after {n:5d}: python heap {traced / 1e6:+6.2f} MB   RSS {rss:7.1f} MB "
            f"({rss - base_rss:+5.1f})"
        )
    print(
        f"  supersession table: {len(completion.SUPERSESSION)} entries "
        f"(max {completion.SUPERSESSION.max_tracked}); saved-notebook cache: "
        f"{completion.SAVED_NOTEBOOKS.loads} parse(s)"
    )


def model_server_process() -> tuple[subprocess.Popen[str], str]:
    """The recording model server in its own process (its recordings are not measured)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_ai_vision.testing.model_server",
            "--port",
            str(port),
            "--reply",
            "mean()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "recording model server on ..."
    return proc, f"http://127.0.0.1:{port}/v1"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--model-server",
        action="store_true",
        help="also run the 1,000 requests through LiteLLM to a local server",
    )
    args = parser.parse_args()

    from jupyter_ydoc import YNotebook

    nb = make_notebook(args.cells)
    ynb = YNotebook()
    ynb.set(nb)
    ids = [c["id"] for c in nb["cells"]][20::7] or [nb["cells"][-1]["id"]]
    print(f"{args.cells}-cell live YNotebook, {len(ids)} cursor positions, {args.runs} runs each")
    results, cpu = await timings(ynb, ids, args.runs)
    base = statistics.median(results["prefix/suffix only"])
    for name, values in results.items():
        p50 = statistics.median(values)
        print(
            f"  {name:24s} p50 {p50:7.2f} ms   p90 {percentile(values, 0.9):7.2f} ms   "
            f"max {max(values):7.2f} ms   ({p50 / base:5.1f}x baseline)   "
            f"CPU p50 {statistics.median(cpu[name]):6.2f} ms"
        )
    await memory(ynb, ids, args.requests, None)
    if args.model_server:
        with tempfile.TemporaryDirectory() as root:
            await asyncio.to_thread(Path(root, "bench.ipynb").write_text, json.dumps(nb))
            proc, url = model_server_process()
            try:
                await memory(ynb, ids, args.requests, url, root)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
