"""Issue 11, classes 1 and 8: foreign chart specs are drawn only in the sandbox.

A Vega-Lite spec is a program for V8: ``sequence`` + ``flatten`` exhausts its heap and aborts
the process, ``tickCount: 1e6`` loops for minutes, a 400-digit ``stop`` overflowed Python.
Each such chart must cost its own text summary plus one skip note, inside a worker process
with a wall-clock timeout and a memory cap, while the notebook's good charts (Vega-Lite,
Vega, matplotlib, SVG; made by a real kernel) are still sent with their colours.
"""

from __future__ import annotations

import copy
import io
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from fixtures.isolated import build_isolated, decoded
from fixtures.notebooks import cell_index, execute, write_notebook
from nbformat.v4 import new_code_cell, new_notebook, new_output
from PIL import Image

from jupyter_ai_vision.errors import RenderError
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media import vega

RED = (228, 87, 86)  # "#e45756": the Vega-Lite chart's bars
GREEN = (84, 162, 75)  # "#54a24b": the Vega chart's bars
#: The server-side process: Python, Pillow and the builder (~100-200 MB); V8 never runs in it.
MAX_SERVER_RSS_MB = 400
#: Every render worker runs under this RLIMIT_DATA; its peak RSS stays below it.
CHART_MEMORY = 1_000_000_000
FAST = {
    "chart_timeout": 4.0,
    "svg_timeout": 4.0,
    "chart_memory_bytes": CHART_MEMORY,
    "max_images": 50,
    "max_image_tokens": 500_000,
    "window_fraction": 1.0,
}

_KERNEL_CELLS = [
    (
        "setup",
        "import altair as alt, pandas as pd\n"
        "import matplotlib\n"
        "matplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display, SVG\n"
        "df = pd.DataFrame({'fruit': ['apple', 'pear', 'fig'], 'count': [3, 5, 2]})",
    ),
    (
        "vegalite",
        "alt.renderers.enable('mimetype')\n"
        "alt.Chart(df, title='Fruit').mark_bar(color='#e45756').encode(x='fruit', y='count')",
    ),
    (
        "vega",
        "spec = alt.Chart(df).mark_bar(color='#54a24b').encode(x='fruit', y='count')"
        ".to_dict(format='vega')\n"
        "display({'application/vnd.vega.v5+json': spec, 'text/plain': 'Vega chart'}, raw=True)",
    ),
    (
        "mpl",
        "plt.figure(figsize=(4, 3)); plt.plot([0, 1], [0, 1], color='#1f77b4', lw=8); plt.show()",
    ),
    (
        "svg",
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
        '<rect width="200" height="100" fill="#9467bd"/></svg>\'))',
    ),
]

ENC = {"x": {"field": "s", "type": "quantitative"}}
FLATTEN_BOMB = {  # ~300 bytes: one row becomes a million, V8's heap is exhausted
    "data": {"values": [{"a": 1}]},
    "transform": [{"calculate": "sequence(0, 1000000)", "as": "s"}, {"flatten": ["s"]}],
    "mark": "point",
    "encoding": ENC,
}
TICKS_HANG = {
    "data": {"values": [{"a": 1}, {"a": 2}]},
    "mark": "point",
    "encoding": {"x": {"field": "a", "type": "quantitative", "axis": {"tickCount": 1000000}}},
}
HUGE_STOP = {
    "data": {"sequence": {"start": 0, "stop": int("9" * 400)}},
    "mark": "point",
    "encoding": {"x": {"field": "data", "type": "quantitative"}},
}
VEGA_FLATTEN_BOMB = {
    "$schema": "https://vega.github.io/schema/vega/v5.json",
    "data": [
        {
            "name": "t",
            "values": [{"a": 1}],
            "transform": [
                {"type": "formula", "expr": "sequence(0, 100000000)", "as": "s"},
                {"type": "flatten", "fields": ["s"]},
            ],
        }
    ],
    "marks": [{"type": "symbol", "from": {"data": "t"}, "encode": {"enter": {"x": {"value": 1}}}}],
}
SVG_PATTERN_BOMB = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><defs>'
    '<pattern id="p" width="100000" height="100000" patternUnits="userSpaceOnUse" '
    'patternTransform="scale(100)"><rect width="100000" height="100000" fill="red"/>'
    '</pattern></defs><rect width="100" height="100" fill="url(#p)"/></svg>'
)
VEGALITE_MIME = "application/vnd.vegalite.v5+json"
VEGA_MIME = "application/vnd.vega.v5+json"


@pytest.fixture(scope="module")
def charts_notebook(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for cell_id, code in _KERNEL_CELLS:
        nb.cells.append(new_code_cell(code, id=cell_id))
    nb = execute(nb, tmp_path_factory.mktemp("charts"))
    for cell in nb.cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    return nb


@pytest.fixture(scope="module")
def good_vegalite(charts_notebook: Any) -> dict[str, Any]:
    [out] = charts_notebook.cells[cell_index(charts_notebook, "vegalite")].outputs
    [mime] = [m for m in out["data"] if vega.is_vegalite_mime(m)]
    return dict(out["data"][mime])


@pytest.fixture(scope="module")
def good_vega(charts_notebook: Any) -> dict[str, Any]:
    [out] = charts_notebook.cells[cell_index(charts_notebook, "vega")].outputs
    return dict(out["data"][VEGA_MIME])


def _count(image: Image.Image, colour: tuple[int, int, int], tol: int = 12) -> int:
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int((np.abs(rgb - np.array(colour)) <= tol).all(axis=-1).sum())


def _hostile_cell(mime: str, payload: Any) -> nbformat.NotebookNode:
    cell = new_code_cell("hostile", execution_count=7)
    cell.outputs = [new_output("display_data", data={mime: payload, "text/plain": "chart"})]
    return cell


@pytest.mark.kernel
def test_hostile_charts_cost_a_summary_and_one_note_each_and_the_server_survives(
    charts_notebook: Any, tmp_path: Path
) -> None:
    nb = copy.deepcopy(charts_notebook)
    hostile = [
        (VEGALITE_MIME, FLATTEN_BOMB),
        (VEGALITE_MIME, TICKS_HANG),
        (VEGALITE_MIME, HUGE_STOP),
        (VEGA_MIME, VEGA_FLATTEN_BOMB),
        ("image/svg+xml", SVG_PATTERN_BOMB),
    ]
    first = len(nb.cells)
    nb.cells.extend(_hostile_cell(m, p) for m, p in hostile)
    built = build_isolated(write_notebook(nb, tmp_path / "hostile.ipynb"), policy=FAST)

    assert built.returncode == 0, built.stderr  # the server-side process survived
    assert built.self_maxrss_mb < MAX_SERVER_RSS_MB, built.self_maxrss_mb
    assert 0 < built.children_maxrss_mb < CHART_MEMORY / 2**20, built.children_maxrss_mb
    for k in range(len(hostile)):
        notes = built.skipped_of(first + k)
        assert len(notes) == 1 and "\n" not in notes[0], (k, notes)
        assert not built.images_of(first + k)
    flatten, ticks, stop, vega_bomb, svg_bomb = (built.skipped_of(first + k)[0] for k in range(5))
    for note in (flatten, ticks, vega_bomb):
        assert note in (
            "chart not rendered: rendering took longer than 4 s",
            "chart not rendered: it made the renderer run out of memory or crash",
        ), note
    assert stop.startswith("chart not rendered: its data sequence generator makes too many rows")
    assert svg_bomb == "SVG rejected: it made the renderer run out of memory or crash"
    # Each failed chart is still described as text.
    assert built.text.count("[output 0: Vega-Lite chart] Vega-Lite chart: point") == 3
    assert "[output 0: Vega chart] Vega chart; marks symbol; data t (1 rows)" in built.text

    # The kernel's good figures are all sent, with their colours.
    figure = {
        cid: built.images_of(cell_index(nb, cid)) for cid in ("vegalite", "vega", "mpl", "svg")
    }
    assert all(len(images) == 1 for images in figure.values()), figure.keys()
    assert _count(decoded(figure["vegalite"][0]), RED) > 2000
    assert _count(decoded(figure["vega"][0]), GREEN) > 2000
    assert _count(decoded(figure["mpl"][0]), (31, 119, 180)) > 500
    assert _count(decoded(figure["svg"][0]), (148, 103, 189)) > 15000


def test_a_hung_chart_does_not_stall_the_next_one(good_vegalite: dict[str, Any]) -> None:
    policy = ImagePolicy(chart_timeout=120)
    outcome: dict[str, str] = {}
    hung_done = threading.Event()

    def hang() -> None:
        try:
            vega.render_vegalite(TICKS_HANG, policy=policy)
            outcome["hang"] = "rendered"
        except RenderError as exc:
            outcome["hang"] = str(exc)
        hung_done.set()

    before = set(vega.SANDBOX.busy_pids())
    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    hung_pid = _wait_for_new_busy_worker(before)
    png = vega.render_vegalite(good_vegalite, policy=policy)  # while the hang holds a worker
    assert not hung_done.is_set(), outcome  # the good chart came back first
    assert _count(Image.open(io.BytesIO(png)), RED) > 2000
    os.kill(hung_pid, signal.SIGKILL)  # our own worker: end the hang now
    assert hung_done.wait(60)
    assert outcome["hang"] == "chart not rendered: it made the renderer run out of memory or crash"
    # The pool replaced the dead worker: the next chart renders as usual.
    assert _count(Image.open(io.BytesIO(vega.render_vegalite(good_vegalite))), RED) > 2000


def _wait_for_new_busy_worker(before: set[int]) -> int:
    for _ in range(6000):  # the worker's start (V8 warm-up) may take a few seconds
        new = set(vega.SANDBOX.busy_pids()) - before
        if new:
            return new.pop()
        time.sleep(0.01)
    raise AssertionError("the hanging render never reached a worker")


@pytest.mark.slow
def test_many_hanging_charts_share_one_render_deadline(tmp_path: Path) -> None:
    nb = new_notebook()
    for k in range(6):
        spec = copy.deepcopy(TICKS_HANG)
        spec["title"] = f"hang {k}"  # distinct charts (no dedupe)
        nb.cells.append(_hostile_cell(VEGALITE_MIME, spec))
    policy = {**FAST, "chart_timeout": 60.0, "max_render_seconds": 5.0}
    built = build_isolated(write_notebook(nb, tmp_path / "hangs.ipynb"), policy=policy)
    assert built.returncode == 0, built.stderr
    assert built.images == []
    notes = [reason for _, reason in built.skipped]
    assert len(notes) == 6 and all(
        n
        in (
            "chart not rendered: the time for this request's renders ran out",
            "chart not rendered: every chart renderer was busy until the time for this "
            "request's renders ran out",
            # tickCount: 1e6 also grows V8's heap: on a slow machine the memory cap may end
            # a render before the shared deadline does (the worker is replaced either way)
            "chart not rendered: it made the renderer run out of memory or crash",
        )
        for n in notes
    ), notes
    assert sum("time for this request" in n for n in notes) >= 2  # the shared deadline ended them


def test_huge_sequence_stop_is_a_one_line_refusal_not_an_overflow() -> None:
    with pytest.raises(RenderError) as err:
        vega.render_vegalite(HUGE_STOP)
    assert "too many rows" in str(err.value) and "\n" not in str(err.value)
    assert vega.unsafe_reason({"data": {"sequence": {"start": 0, "stop": 10**400, "step": 1e-300}}})


def test_the_server_process_never_loads_the_renderer(good_vegalite: dict[str, Any]) -> None:
    code = (
        "import sys, json; from jupyter_ai_vision.media import vega\n"
        "png = vega.render_vegalite(json.loads(sys.argv[1]))\n"
        "print(len(png) > 1000, 'vl_convert' in sys.modules)"
    )
    import json

    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(good_vegalite)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]


def test_chart_worker_never_imports_modules_from_the_working_directory(
    good_vegalite: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vega.SANDBOX.shutdown()  # fresh workers start in the new working directory
    for name in ("json", "struct", "resource", "vl_convert"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('shadowed module imported')\n")
    monkeypatch.chdir(tmp_path)
    assert _count(Image.open(io.BytesIO(vega.render_vegalite(good_vegalite))), RED) > 2000


# ---------------------------------------------------------------- class 8: the Vega mimetype


def test_vega_mimetype_is_rendered_with_its_colours(good_vega: dict[str, Any]) -> None:
    png = vega.render_vega(good_vega)
    assert _count(Image.open(io.BytesIO(png)), GREEN) > 2000
    assert vega.is_vega_mime(VEGA_MIME) and not vega.is_vega_mime(VEGALITE_MIME)
    summary = vega.summarize_vega(good_vega)
    assert summary.startswith("Vega chart; marks rect;") and "scales x, y" in summary


_SERVER = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b'[{"a": 1}]')
    def log_message(self, *args): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A request-recording server in its own process (vl-convert holds the GIL meanwhile)."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", _SERVER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}", proc
    proc.kill()
    proc.wait()


def _requests_seen(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = []
    while select.select([proc.stdout], [], [], 0.3)[0]:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
    return seen


def test_vega_urls_are_never_fetched(
    good_vega: dict[str, Any], http_server: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, proc = http_server
    remote = copy.deepcopy(good_vega)
    remote["data"] = [
        {"name": d.get("name", "x"), "url": f"{base}/data.json"} for d in remote["data"]
    ]
    image = copy.deepcopy(good_vega)
    image["marks"] = [{"type": "image", "encode": {"enter": {"url": {"value": f"{base}/pic.png"}}}}]
    signal_url = copy.deepcopy(good_vega)
    signal_url["data"] = [{"name": "t", "url": {"signal": f"'{base}/s.json'"}}]
    nb = new_notebook()
    nb.cells.extend(_hostile_cell(VEGA_MIME, spec) for spec in (remote, image, signal_url))
    built = build_isolated(write_notebook(nb, tmp_path / "urls.ipynb"), policy=FAST)
    assert built.returncode == 0, built.stderr
    assert built.images == []
    notes = [reason for _, reason in built.skipped]
    assert len(notes) == 3 and all(n.startswith("chart not rendered: it ") for n in notes), notes
    assert "data.json" in notes[0] and "image marks" in notes[1] and "computed URL" in notes[2]
    for spec in (remote, image, signal_url):
        with pytest.raises(RenderError, match="never|image marks"):
            vega.render_vega(spec)
    assert _requests_seen(proc) == []
