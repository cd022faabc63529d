"""Stale figures: a figure whose cell was edited after it ran is marked as such, from the
kernel's own input history (a real ipykernel, a real YNotebook edited after the run)."""

from __future__ import annotations

import base64
import io

import nbformat
import pytest
import pytest_asyncio
from jupyter_client.manager import AsyncKernelManager
from jupyter_ydoc import YNotebook
from PIL import Image

from jupyter_ai_vision import build_context, build_context_async
from jupyter_ai_vision.context import messages
from jupyter_ai_vision.context.parts import Marker
from jupyter_ai_vision.server import history

pytestmark = pytest.mark.kernel
in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the module's kernel lives there

PLOT = """
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
ax.plot([0, 1], [0, 1], color="{colour}", linewidth=8)
plt.show()
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kernel():
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    yield km
    await km.shutdown_kernel(now=True)


async def _run(km, code: str) -> tuple[int, list[dict]]:
    """Execute ``code`` as a cell (stored in history); its count and nbformat outputs."""
    kc = km.client()
    kc.start_channels()
    outputs: list[dict] = []

    def hook(msg):
        if msg["msg_type"] in ("display_data", "execute_result"):
            outputs.append(nbformat.v4.new_output("display_data", data=msg["content"]["data"]))

    try:
        reply = await kc.execute_interactive(code, store_history=True, output_hook=hook, timeout=60)
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok"
    return reply["content"]["execution_count"], outputs


async def _notebook(km) -> dict:
    nb = nbformat.v4.new_notebook()
    for colour in ("red", "blue"):
        code = PLOT.format(colour=colour)
        count, outputs = await _run(km, code)
        cell = nbformat.v4.new_code_cell(code)
        cell.execution_count = count
        cell.outputs = outputs
        nb.cells.append(cell)
    return nb


def _markers(ctx) -> list[str]:
    return [p.text for p in ctx.parts if isinstance(p, Marker) and p.text.startswith("[figure")]


@in_module_loop
async def test_a_figure_whose_cell_was_edited_after_it_ran_is_marked_stale(kernel):
    nb = await _notebook(kernel)
    ynb = YNotebook()
    ynb.set(nb)
    # The user edits the second cell in the live document but does not run it again.
    ynb.ycells[1]["source"].clear()
    ynb.ycells[1]["source"] += PLOT.format(colour="green")
    counts = [c["execution_count"] for c in nb.cells]
    executed = await history.executed_sources(kernel, counts)
    assert executed is not None and set(executed) == set(counts)
    ctx = await build_context_async(ynb, executed_sources=executed)
    first, second = _markers(ctx)
    assert messages.STALE not in first
    assert messages.STALE in second
    assert ctx.stale_figures == 1
    assert "1 stale" in ctx.summary()
    assert ctx.to_json()["totals"]["stale_figures"] == 1
    # nothing is said when the kernel's history is not known
    plain = await build_context_async(ynb)
    assert all(messages.STALE not in m for m in _markers(plain)) and plain.stale_figures == 0


@in_module_loop
async def test_the_history_is_asked_once_per_kernel_and_count(kernel):
    history.clear_cache()
    nb = await _notebook(kernel)
    counts = [c["execution_count"] for c in nb.cells]
    hits = history._cache.hits
    first = await history.executed_sources(kernel, counts)
    second = await history.executed_sources(kernel, counts)
    assert first == second and first is not None
    assert history._cache.hits == hits + 1
    assert await history.executed_sources(None, counts) is None  # no kernel, no request
    assert await history.executed_sources(kernel, []) is None


@in_module_loop
async def test_after_a_restart_nothing_is_said_about_staleness():
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    try:
        nb = await _notebook(km)
        counts = [c["execution_count"] for c in nb.cells]
        await km.restart_kernel(now=True)
        # The new kernel process has run nothing: its history cannot vouch for these counts.
        assert await history.executed_sources(km, counts) is None
    finally:
        await km.shutdown_kernel(now=True)


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_cells_run_out_of_order_are_noted_once():
    nb = nbformat.v4.new_notebook()
    for count in (3, 1, 2):
        cell = nbformat.v4.new_code_cell(f"x = {count}")
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png()})]
        nb.cells.append(cell)
    text = build_context(nb).text
    assert text.count(messages.OUT_OF_ORDER) == 1
    in_order = nbformat.v4.new_notebook()
    in_order.cells = [nbformat.v4.new_code_cell("y = 1", execution_count=1)]
    assert messages.OUT_OF_ORDER not in build_context(in_order).text
