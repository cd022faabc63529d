"""Vega-Lite: detection, spec extraction from Altair's real HTML, safe rendering, summaries."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
from fixtures.scaling import assert_linear
from PIL import Image

from jupyter_ai_vision.media import vega

# A request-recording HTTP server in its own process: vl-convert holds the GIL while it
# loads data, so an in-process server could never answer (the test would hang, not fail).
_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(self.path, flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"a,b\\n1,2\\n")
    def log_message(self, *args): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", _SERVER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}", proc
    proc.kill()
    proc.wait()


def requests_seen(proc: subprocess.Popen[str]) -> list[str]:
    """Paths the server received so far (after a short grace period)."""
    import os
    import select

    time.sleep(0.2)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = []
    while select.select([proc.stdout], [], [], 0)[0]:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
    return seen


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return pd.DataFrame(
        {"fruit": ["apple", "pear", "fig", "kiwi"], "count": [3, 5, 2, 7], "kg": [1.0, 2.5, 0.4, 3]}
    )


@pytest.fixture(scope="module")
def charts(df: pd.DataFrame) -> dict[str, alt.TopLevelMixin]:
    base = alt.Chart(df, title="Fruit")
    bar = base.mark_bar().encode(x="fruit:N", y="count:Q", color="fruit:N")
    return {
        "inline": bar,
        "transform": base.mark_point()
        .encode(x="kg:Q", y="ratio:Q", tooltip=["fruit", "kg"])
        .transform_filter(alt.datum.count > 2)
        .transform_calculate(ratio="datum.count / datum.kg"),
        "layer": alt.layer(bar, base.mark_rule(color="red").encode(y="mean(count):Q")),
        "concat": alt.hconcat(bar, base.mark_line().encode(x="kg:Q", y="count:Q")),
    }


def html_renderer_output(chart: alt.TopLevelMixin) -> str:
    """The text/html Altair's default (html) renderer really emits."""
    with alt.renderers.enable("html"):
        bundle = chart._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    return str(data["text/html"])


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        return im.size


def test_mime_detection() -> None:
    for v in (3, 4, 5, 6):
        assert vega.is_vegalite_mime(f"application/vnd.vegalite.v{v}+json")
    assert vega.is_vegalite_mime("application/vnd.vegalite.v6.json")  # Altair 6
    for mime in (
        "application/vnd.vegalite.v2+json",
        "application/vnd.vega.v5+json",
        "application/json",
        "application/vnd.vegalite.v6+json; charset=utf-8",
    ):
        assert not vega.is_vegalite_mime(mime)


def test_altair_mimetype_renderer_mime_is_detected(charts: dict[str, alt.TopLevelMixin]) -> None:
    with alt.renderers.enable("mimetype"):
        bundle = charts["inline"]._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    mimes = [m for m in data if vega.is_vegalite_mime(m)]
    assert mimes and data[mimes[0]] == charts["inline"].to_dict()


@pytest.mark.parametrize("name", ["inline", "transform", "layer", "concat"])
def test_spec_from_altair_html_renderer(charts: dict[str, alt.TopLevelMixin], name: str) -> None:
    chart = charts[name]
    assert vega.spec_from_html(html_renderer_output(chart)) == chart.to_dict()


@pytest.mark.parametrize("name", ["inline", "layer"])
def test_spec_from_chart_to_html(charts: dict[str, alt.TopLevelMixin], name: str) -> None:
    chart = charts[name]
    assert vega.spec_from_html(chart.to_html()) == chart.to_dict()


def test_spec_from_html_ignores_other_html(df: pd.DataFrame) -> None:
    assert vega.spec_from_html(df.to_html()) is None
    assert vega.spec_from_html("<script>var vega = {'not': 'json'}; f({});</script>") is None
    assert vega.spec_from_html("<div>vega-lite is mentioned but there is no script</div>") is None


@pytest.mark.parametrize("name", ["inline", "transform", "layer", "concat"])
def test_render_real_charts(charts: dict[str, alt.TopLevelMixin], name: str) -> None:
    png = vega.render_vegalite(charts[name].to_dict())
    width, height = png_size(png)
    assert 100 < width < 2000 and 100 < height < 1000
    with Image.open(io.BytesIO(png)) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 10  # something was drawn


def test_render_scale_doubles_size(charts: dict[str, alt.TopLevelMixin]) -> None:
    spec = charts["inline"].to_dict()
    w1, h1 = png_size(vega.render_vegalite(spec))
    w2, h2 = png_size(vega.render_vegalite(spec, scale=2.0))
    assert abs(w2 - 2 * w1) <= 2 and abs(h2 - 2 * h1) <= 2


def test_remote_data_url_is_never_fetched(http_server: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = http_server
    spec = {
        "data": {"url": f"{base}/data.csv"},
        "mark": "point",
        "encoding": {"x": {"field": "a", "type": "quantitative"}},
    }
    with pytest.raises(vega.RenderError) as err:
        vega.render_vegalite(spec)
    message = str(err.value)
    assert "\n" not in message and "data.csv" in message and "never fetched" in message
    assert requests_seen(proc) == []


def test_remote_data_in_layer_lookup_is_never_fetched(
    http_server: tuple[str, subprocess.Popen[str]], df: pd.DataFrame
) -> None:
    base, proc = http_server
    lookup = alt.LookupData(alt.UrlData(f"{base}/lookup.csv"), key="fruit", fields=["b"])
    chart = alt.layer(
        alt.Chart(df).mark_bar().encode(x="fruit:N", y="count:Q"),
        alt.Chart(df)
        .mark_point()
        .encode(x="fruit:N", y="b:Q")
        .transform_lookup(lookup="fruit", from_=lookup),
    )
    with pytest.raises(vega.RenderError, match="lookup.csv"):
        vega.render_vegalite(chart.to_dict())
    assert requests_seen(proc) == []


def test_image_marks_never_load_urls_or_files(
    http_server: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    # vl-convert 1.9 loads image-mark URLs even with allowed_base_urls=[]: refused up front.
    base, proc = http_server
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 40), "red").save(red)
    for url in (f"{base}/pic.png", red.as_uri(), str(red)):
        spec = {
            "data": {"values": [{"u": url, "a": 1}]},
            "mark": {"type": "image", "width": 40, "height": 40},
            "encoding": {
                "url": {"field": "u", "type": "nominal"},
                "x": {"field": "a", "type": "quantitative"},
            },
        }
        with pytest.raises(vega.RenderError, match="image marks"):
            vega.render_vegalite(spec)
    assert requests_seen(proc) == []


@pytest.mark.parametrize("kind", ["absolute", "file-uri", "relative"])
def test_local_file_data_url_is_not_read(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "secret.csv"
    data.write_text("a,b\n1,2\n")
    url = {"absolute": str(data), "file-uri": data.as_uri(), "relative": "secret.csv"}[kind]
    spec = {
        "data": {"url": url},
        "mark": "point",
        "encoding": {"x": {"field": "a", "type": "quantitative"}},
    }
    with pytest.raises(vega.RenderError) as err:
        vega.render_vegalite(spec)
    assert "never fetched" in str(err.value) and "\n" not in str(err.value)


def test_huge_canvas_is_clamped_and_process_survives() -> None:
    spec = {
        "width": 40000,
        "height": 40000,
        "data": {"values": [{"a": 1, "b": 2}, {"a": 3, "b": 1}]},
        "mark": "point",
        "encoding": {
            "x": {"field": "a", "type": "quantitative"},
            "y": {"field": "b", "type": "quantitative"},
        },
    }
    width, height = png_size(vega.render_vegalite(spec, scale=4.0))
    assert width * height <= vega.MAX_RENDER_PIXELS
    assert max(width, height) <= vega.MAX_RENDER_EDGE


def test_invalid_spec_is_a_one_line_error() -> None:
    with pytest.raises(vega.RenderError) as err:
        vega.render_vegalite({"mark": {"type": 42}, "data": {"values": []}})
    assert "\n" not in str(err.value) and str(err.value).startswith("chart not rendered")
    with pytest.raises(vega.RenderError, match="not a JSON object"):
        vega.render_vegalite(["not", "a", "spec"])  # type: ignore[arg-type]


def test_older_schema_renders_with_matching_library(charts: dict[str, alt.TopLevelMixin]) -> None:
    spec = charts["inline"].to_dict()
    spec["$schema"] = "https://vega.github.io/schema/vega-lite/v5.17.0.json"
    assert png_size(vega.render_vegalite(spec))[0] > 100


def test_summary_inline(charts: dict[str, alt.TopLevelMixin]) -> None:
    text = vega.summarize_spec(charts["inline"].to_dict())
    assert text.startswith("Vega-Lite chart 'Fruit': bar")
    assert "x -> fruit:N" in text and "y -> count:Q" in text and "color -> fruit:N" in text
    assert "4 inline data rows" in text


def test_summary_transforms_and_tooltips(charts: dict[str, alt.TopLevelMixin]) -> None:
    text = vega.summarize_spec(charts["transform"].to_dict())
    assert "transforms filter, calculate" in text
    assert "tooltip -> [fruit:N, kg:Q]" in text and "y -> ratio:Q" in text


def test_summary_layers_and_concat(charts: dict[str, alt.TopLevelMixin]) -> None:
    layered = vega.summarize_spec(charts["layer"].to_dict())
    assert "2 layer views" in layered and "rule" in layered and "mean(count):Q" in layered
    concat = vega.summarize_spec(charts["concat"].to_dict())
    assert "2 hconcat views" in concat and "- view 'Fruit': line" in concat
    assert "4 inline data rows" in concat


def test_summary_is_bounded(df: pd.DataFrame) -> None:
    charts = [alt.Chart(df).mark_point().encode(x="kg:Q", y="count:Q") for _ in range(40)]
    text = vega.summarize_spec(alt.vconcat(*charts).to_dict(), max_chars=500)
    assert len(text) <= 500 and "40 vconcat views" in text


def test_huge_sequence_generator_is_refused() -> None:
    encoding = {"x": {"field": "data", "type": "quantitative"}}
    spec = {"data": {"sequence": {"start": 0, "stop": 1e12}}, "mark": "tick", "encoding": encoding}
    with pytest.raises(vega.RenderError, match="too many rows"):
        vega.render_vegalite(spec)
    spec["data"] = {"sequence": {"start": 0, "stop": 50, "step": 0.5}}
    assert png_size(vega.render_vegalite(spec))[0] > 100


@pytest.mark.parametrize(
    "script", ['{"a":1,' * 50_000, '{"a":' * 5_000, "{" * 20_000, "vega " + "[" * 10_000]
)
def test_hostile_html_does_not_hang_spec_search(script: str) -> None:
    assert vega.spec_from_html(f"<script>vegaEmbed({script})</script>") is None
    assert_linear(
        lambda n: f"<script>vegaEmbed({script[: len(script) * n // 8]})</script>",
        vega.spec_from_html,
        1,
    )


def _outputs(nb: dict, cell_id: str) -> list[dict]:
    return next(c for c in nb["cells"] if c.get("id") == cell_id)["outputs"]


def test_outputs_of_a_real_kernel(executed_notebook: dict) -> None:
    """Altair's html and mimetype renderers, as a real kernel stored them in the notebook."""
    [html_out] = _outputs(executed_notebook, "altair-html")
    spec = vega.spec_from_html("".join(html_out["data"]["text/html"]))
    assert spec is not None and spec["mark"] == {"type": "line"}
    assert vega.summarize_spec(spec) == (
        "Vega-Lite chart 'Fruit line': line; encodings x -> fruit:N, y -> count:Q; "
        "3 inline data rows"
    )
    [mime_out] = _outputs(executed_notebook, "altair-mime")
    [mime] = [m for m in mime_out["data"] if vega.is_vegalite_mime(m)]
    assert mime == "application/vnd.vegalite.v6.json"
    assert png_size(vega.render_vegalite(mime_out["data"][mime]))[1] > 100


def test_summary_facet_and_repeat(df: pd.DataFrame) -> None:
    point = alt.Chart(df).mark_point().encode(x="kg:Q", y="count:Q")
    assert vega.summarize_spec(point.facet(column="fruit:N").to_dict()) == (
        "Vega-Lite chart; 4 inline data rows; faceted by column -> fruit:N\n"
        "  - view: point; encodings x -> kg:Q, y -> count:Q"
    )
    repeated = (
        alt.Chart(df)
        .mark_point()
        .encode(x=alt.X(alt.repeat("column"), type="quantitative"), y="count:Q")
        .repeat(column=["kg", "count"])
    )
    text = vega.summarize_spec(repeated.to_dict())
    assert text.startswith("Vega-Lite chart; repeated over column [kg, count]\n  - view: point")
    assert png_size(vega.render_vegalite(repeated.to_dict()))[0] > 200


def test_svg_guard_refuses_url_paints_but_not_text(tmp_path: Path) -> None:
    text_spec = {
        "title": "see url(http://x) <image href=a>",
        "data": {"values": [{"a": 1, "b": "url(file:///etc/passwd)"}]},
        "mark": "text",
        "encoding": {"text": {"field": "b"}, "x": {"field": "a", "type": "quantitative"}},
    }
    assert png_size(vega.render_vegalite(text_spec))[0] > 50  # text is only text
    paint_spec = {
        "data": {"values": [{"a": 1, "c": f"url({(tmp_path / 'p.svg').as_uri()})"}]},
        "mark": "point",
        "encoding": {
            "x": {"field": "a", "type": "quantitative"},
            "fill": {"field": "c", "type": "nominal", "scale": None},
        },
    }
    with pytest.raises(vega.RenderError, match="external images or files"):
        vega.render_vegalite(paint_spec)


def test_nan_and_infinite_values_render_as_missing() -> None:
    # The spec travels to the sandboxed renderer as JSON, which has no NaN: they become null.
    spec = {
        "data": {
            "values": [{"a": 1, "b": 2}, {"a": float("nan"), "b": float("inf")}, {"a": 3, "b": 1}]
        },
        "mark": "point",
        "encoding": {
            "x": {"field": "a", "type": "quantitative"},
            "y": {"field": "b", "type": "quantitative"},
        },
    }
    assert png_size(vega.render_vegalite(spec))[0] > 100


def test_renders_run_in_the_sandbox_and_a_crash_costs_one_chart(
    charts: dict[str, alt.TopLevelMixin],
) -> None:
    import os
    import signal

    png = vega.render_vegalite(charts["inline"].to_dict())
    pids = vega.SANDBOX.pids()
    assert pids and os.getpid() not in pids  # drawn by a worker process, not this one
    for pid in pids:  # our own idle workers: as if the OOM killer had ended them
        os.kill(pid, signal.SIGKILL)
    while vega.SANDBOX.idle_count():  # until the pool sees them gone (every thread exited)
        time.sleep(0.01)
    assert vega.render_vegalite(charts["inline"].to_dict()) == png  # replaced, same picture
