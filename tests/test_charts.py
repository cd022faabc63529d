"""Interactive charts as pixels (media/charts): real kernels run real Plotly and Bokeh code, the
server's locked-down Chromium draws them, and the recording model server decodes the colours
the model received. Hostile specs name a 127.0.0.1 trap server and a canary PNG outside the
notebook's root in every field that can hold a URL or path: the trap must get no request and
no canary pixel may appear, through the shipped path and with the sanitiser bypassed (the
page's CSP and the browser's disabled network hold on their own).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixtures.notebooks import execute
from nbformat.v4 import new_code_cell, new_notebook, new_output
from PIL import Image

from jupyter_ai_vision import ImagePolicy, build_context
from jupyter_ai_vision.context.builder import clear_caches
from jupyter_ai_vision.errors import ChartRefused, ChartsStarting, RenderError
from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel
from jupyter_ai_vision.media import charts
from jupyter_ai_vision.media.charts import INSTALL_HINT, ChartRenderer, bokeh
from jupyter_ai_vision.testing import images_in

pytestmark = pytest.mark.browser

RED, BLUE, GREEN, ORANGE, TEAL = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 140, 0), (0, 160, 160)
MAGENTA = (255, 0, 255)  # the canary's colour: never used by a chart here
PLOTLY_MIME = "application/vnd.plotly.v1+json"
ALL_CHARTS = ImagePolicy(max_chart_renders=8)  # the notebook below has 5 (the default is 4)

KERNEL_CELLS = {
    "bar": (
        "import plotly.graph_objects as go, plotly.io as pio\n"
        "from plotly.subplots import make_subplots\n"
        "pio.renderers.default = 'plotly_mimetype'\n"
        "go.Figure(go.Bar(x=['a', 'b', 'c'], y=[3, 1, 2], marker_color='#ff0000'))"
        ".update_layout(width=400, height=300, title='Red bars').show()"
    ),
    "subplots": (
        "fig = make_subplots(rows=1, cols=2, specs=[[{'type': 'xy'}, {'type': 'domain'}]])\n"
        "fig.add_trace(go.Scatter(x=[1, 2, 3], y=[1, 3, 2], line=dict(color='#0000ff', width=10)), 1, 1)\n"
        "fig.add_trace(go.Pie(values=[1, 1], marker=dict(colors=['#00a000', '#00a000'])), 1, 2)\n"
        "fig.update_layout(width=600, height=300, showlegend=False).show()"
    ),
    "heatmap": (
        "go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], colorscale=[[0, '#ff8c00'], [1, '#ff8c00']],"
        " showscale=False)).update_layout(width=300, height=300).show()"
    ),
    "html": (
        "pio.renderers.default = 'notebook_connected'  # HTML + Plotly.newPlot, plotly.js from a CDN\n"
        "go.Figure(go.Bar(x=['x', 'y'], y=[2, 3], marker_color='#00a0a0'))"
        ".update_layout(width=400, height=300).show()"
    ),
    "bokeh": (
        "from bokeh.plotting import figure, show\n"
        "from bokeh.io import output_notebook\n"
        "output_notebook(hide_banner=True)\n"
        "p = figure(title='Bokeh', width=300, height=250, toolbar_location=None)\n"
        "p.line([1, 2, 3], [1, 4, 9], line_color='#00a000', line_width=12)\n"
        "show(p)"
    ),
}


@pytest.fixture(scope="module")
def chart_notebook(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(src, id=cid) for cid, src in KERNEL_CELLS.items()])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return execute(nb, tmp_path_factory.mktemp("charts"))


@pytest.fixture(scope="module", autouse=True)
def _browser_ready() -> None:
    """Start the process-wide chart browser once and wait for it (a loaded machine can take
    >10 s), so that the tests below see a ready renderer; start-up itself is tested apart."""
    renderer = charts.default_renderer()
    renderer.start()
    renderer.wait_ready(120)


@pytest.fixture
def trap() -> Any:
    """A 127.0.0.1 HTTP server that records every request and answers with a magenta PNG."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = _png(MAGENTA)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def layout_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(the notebook's root, a magenta canary PNG outside it)."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary.png"
    canary.write_bytes(_png(MAGENTA, (80, 80)))
    return root, canary


def _png(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "PNG")
    return buf.getvalue()


def share(png_or_image: Any, rgb: tuple[int, int, int], tol: int = 40) -> float:
    """Fraction of pixels within ``tol`` of ``rgb``."""
    img = png_or_image
    if isinstance(img, bytes):
        img = Image.open(io.BytesIO(img))
    pixels = list(img.convert("RGB").get_flattened_data())
    near = sum(1 for p in pixels if all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True)))
    return near / len(pixels)


def plotly_nb(figures: list[Any], mime: str = PLOTLY_MIME) -> nbformat.NotebookNode:
    cells = []
    for k, fig in enumerate(figures):
        data = {mime: fig, "text/plain": "Figure"}
        if mime == "text/html":
            data = {mime: _plotly_html(fig)}
        out = new_output("display_data", data=data)
        cells.append(
            new_code_cell(f"fig{k}.show()", id=f"c{k}", outputs=[out], execution_count=k + 1)
        )
    return new_notebook(cells=cells)


def _plotly_html(fig: dict[str, Any]) -> str:
    data, layout = json.dumps(fig["data"]), json.dumps(fig.get("layout", {}))
    return (
        '<div id="d" class="plotly-graph-div"></div><script type="text/javascript">'
        f'window.PLOTLYENV={{}};Plotly.newPlot("d", {data}, {layout}, {{"responsive": true}})'
        "</script>"
    )


def blue_bar(**layout: Any) -> dict[str, Any]:
    return {
        "data": [{"type": "bar", "x": [1, 2], "y": [2, 3], "marker": {"color": "#0000ff"}}],
        "layout": {"width": 360, "height": 280, **layout},
    }


def hostile_sources(trap_url: str, canary: Path) -> list[str]:
    """Every way a figure may name the canary or the trap."""
    return [
        f"{trap_url}/img.png",
        f"//127.0.0.1:{trap_url.rsplit(':', 1)[1]}/protocol-relative.png",
        f"http://localhost:{trap_url.rsplit(':', 1)[1]}/localhost.png",
        canary.as_uri(),
        str(canary),
        "../outside/canary.png",
        f"file://{canary}?x=1",
    ]


def _full_image(source: str) -> dict[str, Any]:
    return {
        "source": source,
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": 1,
        "sizex": 1,
        "sizey": 1,
        "sizing": "stretch",
        "layer": "above",
    }


def hostile_figures(trap_url: str, canary: Path) -> dict[str, dict[str, Any]]:
    """Name -> a blue-bar figure with URLs / paths in one field plotly.js loads from."""
    sources = hostile_sources(trap_url, canary)
    css = f"{trap_url}/css.png"
    figs = {
        "layout.images": blue_bar(images=[_full_image(s) for s in sources]),
        "template.layout.images": blue_bar(
            template={"layout": {"images": [_full_image(s) for s in sources]}}
        ),
        "title pseudo-HTML style url()": blue_bar(
            title={
                "text": f"<span style=\"background-image:url('{css}');fill:url({canary.as_uri()})\">t</span>"
            }
        ),
        "font family url()": blue_bar(font={"family": f"x; src: url({trap_url}/font.woff)"}),
        "mapbox layout without a map trace": blue_bar(
            mapbox={
                "style": f"{trap_url}/style.json",
                "layers": [{"source": f"{trap_url}/l.json"}],
            },
            map={"style": f"{trap_url}/map-style.json"},
            geo={"showland": True},
        ),
    }
    image_trace = blue_bar()
    image_trace["data"].append(
        {"type": "image", "source": f"{trap_url}/trace.png", "xaxis": "x", "yaxis": "y"}
    )
    figs["image trace source (URL)"] = image_trace
    file_trace = blue_bar()
    file_trace["data"].append({"type": "image", "source": canary.as_uri()})
    figs["image trace source (file)"] = file_trace
    with_config = blue_bar()
    with_config["config"] = {"topojsonURL": f"{trap_url}/topo/", "plotlyServerURL": trap_url}
    with_config["frames"] = [{"layout": {"images": [_full_image(sources[0])]}}]
    figs["config and frames"] = with_config
    return figs


def remote_map_figures(trap_url: str) -> dict[str, dict[str, Any]]:
    """Charts that need remote data: never drawn (their text summary stays)."""
    return {
        "scattergeo": {
            "data": [{"type": "scattergeo", "lon": [0], "lat": [0]}],
            "layout": {"geo": {"scope": "europe"}},
            "config": {"topojsonURL": f"{trap_url}/topo/"},
        },
        "choropleth": {"data": [{"type": "choropleth", "locations": ["FRA"], "z": [1]}]},
        "scattermapbox": {
            "data": [{"type": "scattermapbox", "lon": [0], "lat": [0]}],
            "layout": {"mapbox": {"style": f"{trap_url}/style.json"}},
        },
        "scattermap": {
            "data": [{"type": "scattermap", "lon": [0], "lat": [0]}],
            "layout": {
                "map": {"style": f"{trap_url}/style.json", "layers": [{"source": trap_url}]}
            },
        },
        "densitymap": {"data": [{"type": "densitymap", "lon": [0], "lat": [0], "z": [1]}]},
    }


# --- real kernels, real charts, the model's view --------------------------------------------


def test_kernel_charts_reach_the_model_as_pixels(chart_notebook: Any, model_server: Any) -> None:
    clear_caches()
    ctx = build_context(chart_notebook, model="gpt-4o", policy=ALL_CHARTS)
    by_cell = {p.provenance.cell_id: p for p in ctx.images}
    assert set(by_cell) == set(KERNEL_CELLS), ctx.text
    assert {r.provenance.cell_id: r.outcome for r in ctx.renders} == dict.fromkeys(
        KERNEL_CELLS, "rendered"
    )
    assert "[output 0: Plotly figure] Plotly figure 'Red bars': 1 trace" in ctx.text  # summary kept
    assert "drawn by the server from the chart's data" in ctx.text

    model = LiteLLMChatModel(model="openai/gpt-4o", api_base=model_server.url, api_key="sk-test")
    model.invoke(ctx.to_langchain_messages("What colours are the charts?"))
    request = model_server.chat_requests()[-1]
    received = dict(
        zip([p.provenance.cell_id for p in ctx.images], images_in(request), strict=True)
    )
    assert share(received["bar"], RED) > 0.05
    assert share(received["subplots"], BLUE) > 0.01 and share(received["subplots"], GREEN) > 0.05
    assert share(received["heatmap"], ORANGE) > 0.1
    assert share(received["html"], TEAL) > 0.05
    assert share(received["bokeh"], GREEN) > 0.02
    assert received["subplots"].size == (600, 300) and received["bokeh"].size == (300, 250)


def test_warm_builds_come_from_the_cache(chart_notebook: Any) -> None:
    renderer = charts.default_renderer()
    build_context(chart_notebook, model="gpt-4o", policy=ALL_CHARTS)
    starts = renderer.starts
    again = build_context(chart_notebook, model="gpt-4o", policy=ALL_CHARTS)
    assert {r.outcome for r in again.renders} == {"cached"}
    assert renderer.starts == starts and len(again.images) == len(KERNEL_CELLS)


def test_at_most_max_chart_renders_per_request(chart_notebook: Any) -> None:
    clear_caches()
    ctx = build_context(chart_notebook, model="gpt-4o", policy=ImagePolicy(max_chart_renders=2))
    drawn = [r for r in ctx.renders if r.outcome == "rendered"]
    over = [r for r in ctx.renders if "over the limit of 2 interactive charts" in r.outcome]
    assert len(drawn) == 2 and len(over) == 3
    assert len(ctx.images) == 2
    assert sum("over the limit of 2" in s.reason for s in ctx.skipped) == 3
    for cell_id in ("bar", "subplots", "heatmap"):  # every chart keeps its text summary
        assert any(
            p.provenance.cell_id == cell_id and "Plotly figure" in getattr(p, "text", "")
            for p in ctx.parts
        )
    # The next request draws the rest (a cap is not a refusal: nothing bad was cached).
    again = build_context(chart_notebook, model="gpt-4o", policy=ALL_CHARTS)
    assert len(again.images) == len(KERNEL_CELLS)


def test_text_only_models_get_no_renders(chart_notebook: Any) -> None:
    clear_caches()
    renderer = charts.default_renderer()
    starts = renderer.starts
    ctx = build_context(chart_notebook, model="gpt-4o", supports_images=False)
    assert ctx.images == [] and ctx.renders == [] and renderer.starts == starts


# --- safety: nothing fetched, nothing read ---------------------------------------------------


@pytest.mark.parametrize("mime", [PLOTLY_MIME, "text/html"])
def test_hostile_plotly_fields_fetch_and_read_nothing(
    trap: Any, layout_dirs: tuple[Path, Path], mime: str
) -> None:
    root, canary = layout_dirs
    figures = hostile_figures(trap.url, canary)
    nb = plotly_nb(list(figures.values()), mime)
    path = root / "hostile.ipynb"
    nbformat.write(nb, path)
    clear_caches()
    ctx = build_context(
        path, root_dir=root, model="gpt-4o", policy=ImagePolicy(max_chart_renders=20)
    )
    time.sleep(0.5)  # anything the page would still load has had time to arrive
    assert trap.hits == []
    urllib.request.urlopen(f"{trap.url}/control", timeout=5).read()  # the trap does record
    assert trap.hits == ["/control"]
    assert len(ctx.images) == len(figures), [r.outcome for r in ctx.renders]
    for name, img in zip(figures, ctx.images, strict=True):
        assert share(img.data, MAGENTA) == 0, name  # neither the canary nor the trap's PNG
        assert share(img.data, BLUE, tol=10) > 0.02, name  # the chart itself is drawn
    assert "left out (never loaded)" in ctx.text  # the marker says what was removed


def test_geo_and_map_charts_keep_their_summary(trap: Any) -> None:
    figures = remote_map_figures(trap.url)
    clear_caches()
    ctx = build_context(plotly_nb(list(figures.values())), model="gpt-4o")
    assert trap.hits == [] and ctx.images == []
    reasons = [s.reason for s in ctx.skipped]
    assert len(reasons) == len(figures)
    assert all("never fetched (described as text)" in r for r in reasons), reasons
    assert ctx.text.count("Plotly figure: 1 trace") == len(figures)


def test_the_page_and_the_browser_hold_without_the_sanitiser(
    trap: Any, layout_dirs: tuple[Path, Path]
) -> None:
    """Layers 2 and 3 alone: the raw hostile specs go straight to kaleido."""
    _, canary = layout_dirs
    raw = {**hostile_figures(trap.url, canary), **remote_map_figures(trap.url)}
    for name, fig in raw.items():
        opts = {"format": "png", "width": 360, "height": 280}
        message = {"op": "plotly", "figure": copy.deepcopy(fig), "opts": opts}
        try:
            png = charts.default_renderer().request(message, timeout=30, what=name)
        except RenderError:
            continue  # plotly.js may fail on a map without its data: nothing drawn either way
        assert share(png, MAGENTA) == 0, name
    time.sleep(0.5)
    assert trap.hits == []


def test_the_browser_has_no_network_even_for_a_navigation(trap: Any) -> None:
    """Layer 3 alone: a top-level navigation is not subject to the page's CSP."""
    port = trap.url.rsplit(":", 1)[1]

    urls = [f"{trap.url}/nav", f"http://localhost:{port}/nav", "http://example.com/"]
    charts.default_renderer().request({"op": "navigate", "urls": urls}, timeout=30)
    assert trap.hits == []


def _bokeh_doc(model: Any) -> bokeh.BokehDoc:
    from bokeh.embed import file_html
    from bokeh.resources import CDN

    doc = bokeh.find_document(file_html(model, CDN, "t"))
    assert doc is not None
    return doc


def test_hostile_bokeh_fetches_and_reads_nothing(trap: Any, layout_dirs: tuple[Path, Path]) -> None:
    from bokeh.layouts import column
    from bokeh.models import CustomJS, Div
    from bokeh.plotting import figure

    _, canary = layout_dirs

    def plot() -> Any:
        p = figure(width=250, height=200, toolbar_location=None)
        p.line([1, 2], [1, 2], line_color="#0000ff", line_width=20)
        return p

    # A Div's HTML is drawn: the page's CSP keeps its images from loading.
    styled = plot()
    styled.stylesheets = [f":host {{ background: url({trap.url}/sheet.png) }}"]
    div = Div(text=f'<img src="{trap.url}/div.png"><img src="{canary.as_uri()}">', width=240)
    div_doc = _bokeh_doc(column(div, styled))
    drawn = charts.render_bokeh(div_doc)
    assert share(drawn.png, MAGENTA) == 0 and share(drawn.png, BLUE, tol=10) > 0.02
    assert any("defused" in n for n in drawn.notes)

    # Models that load URLs or run code are refused before the browser sees them...
    with_image = plot()
    with_image.image_url(
        url=[f"{trap.url}/glyph.png", canary.as_uri()], x=[1, 1.5], y=[2, 2], w=0.5, h=0.5
    )
    with_js = plot()
    with_js.js_on_event("tap", CustomJS(code=f"fetch('{trap.url}/js')"))
    for model in (with_image, with_js):
        with pytest.raises(ChartRefused, match="would run code or load files"):
            charts.render_bokeh(_bokeh_doc(model))

    # ... and drawn raw (sanitiser bypassed), they still load nothing.
    for model in (with_image, with_js):
        raw = _bokeh_doc(model)
        message = {"op": "bokeh", "docs_json": raw.docs_json, "render_items": raw.render_items}
        png = charts.default_renderer().request(message, timeout=30, what="raw Bokeh")
        assert share(png, MAGENTA) == 0
    time.sleep(0.5)
    assert trap.hits == []


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (Linux /proc)."""
    live = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[-1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != b"Z":
                live.append(int(entry.name))
    return live


# --- the renderer's life ----------------------------------------------------------------------


def test_lazy_start_reuse_and_shutdown() -> None:
    renderer = ChartRenderer()
    assert renderer.state == "off" and renderer.starts == 0  # nothing at construction
    with pytest.raises(ChartsStarting, match="still starting"):
        began = time.monotonic()
        charts.render_plotly(blue_bar(), renderer=renderer, timeout=0.2)
    assert time.monotonic() - began < 1.5  # answered within its timeout, not after the start
    first = charts.render_plotly(blue_bar(), renderer=renderer, timeout=60)
    second = charts.render_plotly(blue_bar(), renderer=renderer, timeout=60)
    assert renderer.starts == 1 and renderer.state == "ready"
    assert first.png == second.png and share(second.png, BLUE, tol=10) > 0.02
    session = renderer._session
    assert session is not None and session.browser_pgid is not None
    groups = [session.proc.pid, session.browser_pgid]
    assert all(live_processes_in_group(g) for g in groups)
    renderer.close()
    assert renderer.state == "off"
    assert [live_processes_in_group(g) for g in groups] == [[], []]  # worker and browser gone


def test_timeout_crash_and_memory_cap_restart_the_browser() -> None:
    renderer = ChartRenderer()
    try:
        charts.render_plotly(blue_bar(), renderer=renderer, timeout=60)

        message = {"op": "plotly", "figure": blue_bar(), "opts": {"format": "png"}}
        with pytest.raises(RenderError, match="took longer than"):
            renderer.request(message, timeout=0.001, what="Plotly chart")
        assert renderer.state in ("off", "failed")
        assert charts.render_plotly(blue_bar(), renderer=renderer, timeout=60).png
        assert renderer.starts == 2

        session = renderer._session
        assert session is not None and session.browser_pgid is not None
        os.killpg(session.browser_pgid, signal.SIGKILL)  # the browser dies under the worker
        with pytest.raises(RenderError, match="not rendered"):
            renderer.request(message, timeout=10, what="Plotly chart")
        assert charts.render_plotly(blue_bar(), renderer=renderer, timeout=60).png
        assert renderer.starts == 3
    finally:
        renderer.close()

    small = ChartRenderer(memory_bytes=30_000_000)  # less than an idle browser uses
    try:
        small.start()
        small.wait_ready(120)
        with pytest.raises(RenderError, match="needed more than 30 MB"):
            charts.render_plotly(blue_bar(), renderer=small, timeout=30)
    finally:
        small.close()


def test_refusals_are_one_line_and_cached(trap: Any) -> None:
    nb = plotly_nb([remote_map_figures(trap.url)["scattergeo"]])
    clear_caches()
    first = build_context(nb, model="gpt-4o")
    again = build_context(nb, model="gpt-4o")
    (reason,) = [s.reason for s in first.skipped]
    assert "\n" not in reason and reason.startswith("scattergeo chart not drawn")
    assert [r.outcome for r in again.renders] == [reason]  # from the cache, same line
    with pytest.raises(ChartRefused):
        charts.render_plotly({"data": "not a list"})


# --- no browser on the machine ------------------------------------------------------------------


def test_without_chromium_charts_stay_text_and_say_how_to_get_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    renderer = ChartRenderer()
    with pytest.raises(RenderError, match=INSTALL_HINT):
        charts.render_plotly(blue_bar(), renderer=renderer)
    assert renderer.starts == 0 and charts.unavailable_reason() == INSTALL_HINT

    # A fresh process (the server's own renderer is per process): inspect works as before.
    path = tmp_path / "nb.ipynb"
    nbformat.write(plotly_nb([blue_bar(title="Blue bars")]), path)
    env = {**os.environ, "BROWSER_PATH": str(tmp_path / "no-such-chromium")}
    script = Path(sys.executable).with_name("jupyter-ai-vision")
    done = subprocess.run(
        [str(script), "inspect", str(path), "--text"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Images sent (0)" in done.stdout
    assert f"described as text: {INSTALL_HINT}" in done.stdout  # inspect's chart section
    assert "Left out (1):" in done.stdout and INSTALL_HINT in done.stdout.split("Left out")[1]
    assert "Plotly figure 'Blue bars': 1 trace" in done.stdout  # the summary, as today


def test_bokeh_document_is_read_as_data_never_run() -> None:
    script = (
        '(function(root){ const docs_json = {"d": {"roots": []}}; '
        'const render_items = [{"docid": "d", "roots": {}}]; alert(1); })(window);'
    )
    doc = bokeh.find_document(script)
    assert doc is not None and doc.docs_json == {"d": {"roots": []}}
    assert bokeh.find_document("const docs_json = {broken") is None
    assert bokeh.find_document(base64.b64encode(b"docs_json").decode()) is None


# --- /see on a real Jupyter server --------------------------------------------------------------


async def test_see_sends_a_live_plotly_chart_as_pixels(
    jupyter_server: Any, model_server: Any
) -> None:
    cell = (
        "import plotly.graph_objects as go, plotly.io as pio\n"
        "pio.renderers.default = 'plotly_mimetype'\n"
        "go.Figure(go.Bar(x=['a', 'b'], y=[2, 3], marker_color='#ff0000'))"
        ".update_layout(width=400, height=300, title='Live bars').show()"
    )
    path = jupyter_server.write_notebook("live_chart.ipynb", [cell])
    model_server.set_reply("Two red bars.")
    async with jupyter_server.open_notebook(path, user="dana") as nb:
        await nb.execute_all()
        async with jupyter_server.chat("dana") as chat:
            reply = await chat.ask("/see what colour are the bars?")
    request = model_server.chat_requests()[-1]
    (image,) = images_in(request)
    assert share(image, RED) > 0.05  # drawn on the server from the live (unsaved) figure
    assert "Plotly figure 'Live bars'" in json.dumps(request)
    assert reply.text.startswith("Two red bars.") and "1 plotly" in reply.text
