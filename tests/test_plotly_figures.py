"""Plotly: readable summaries of real figures' JSON (as notebooks store it) and Plotly HTML."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from jupyter_ai_vision.media.html import html_to_text
from jupyter_ai_vision.media.plotly import PLOTLY_MIME, figure_from_html, summarize_figure


def notebook_json(fig: go.Figure) -> dict:
    """What a notebook output holds: the plotly_mimetype renderer's bundle entry."""
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    return bundle[PLOTLY_MIME]


@pytest.fixture(scope="module")
def line_fig() -> go.Figure:
    fig = go.Figure(
        [
            go.Scatter(x=[1, 2, 3], y=[4, 1, 9], name="temps", mode="lines"),
            go.Bar(x=["a", "b"], y=[3, 1], name="rain"),
        ]
    )
    fig.update_layout(
        title="Temperatures", xaxis_title="day", yaxis_title="deg C", width=700, height=400
    )
    return fig


def test_summary_of_notebook_bundle(line_fig: go.Figure) -> None:
    text = summarize_figure(notebook_json(line_fig))
    lines = text.splitlines()
    assert lines[0] == "Plotly figure 'Temperatures': 2 traces (width 700, height 400)"
    assert lines[1] == "axes: xaxis 'day'; yaxis 'deg C'"
    assert lines[2] == "- trace 0: scatter (lines) 'temps', 3 points"
    assert lines[3] == "- trace 1: bar 'rain', 2 points"


def test_to_plotly_json_gives_the_same_summary(line_fig: go.Figure) -> None:
    assert summarize_figure(line_fig.to_plotly_json()) == summarize_figure(notebook_json(line_fig))


def test_numpy_arrays_stored_as_typed_arrays_are_counted() -> None:
    rng = np.random.default_rng(0)
    fig = go.Figure(
        [
            go.Scatter(x=np.arange(1000), y=rng.random(1000), name="noise"),
            go.Heatmap(z=rng.random((30, 40))),
            go.Histogram(x=rng.normal(size=5000).astype(np.float32)),
        ]
    )
    data = notebook_json(fig)
    assert isinstance(data["data"][0]["x"], dict) and "bdata" in data["data"][0]["x"]
    text = summarize_figure(data)
    assert "- trace 0: scatter 'noise', 1000 points" in text
    assert "- trace 1: heatmap, 1200 points" in text
    assert "- trace 2: histogram, 5000 points" in text


def test_pie_3d_and_log_axes() -> None:
    fig = go.Figure(go.Scatter3d(x=[1, 2], y=[3, 4], z=[5, 6], mode="markers"))
    fig.update_layout(scene={"xaxis": {"title": {"text": "east"}}})
    assert "scene.xaxis 'east'" in summarize_figure(notebook_json(fig))
    assert "scatter3d (markers), 2 points" in summarize_figure(notebook_json(fig))
    pie = go.Figure(go.Pie(labels=["a", "b", "c"], values=[1, 2, 3], name="share"))
    assert "- trace 0: pie 'share', 3 points" in summarize_figure(notebook_json(pie))
    log = go.Figure(go.Scatter(x=[1, 10], y=[1, 100], visible="legendonly"))
    log.update_yaxes(type="log", title="size")
    text = summarize_figure(notebook_json(log))
    assert "yaxis size [log]" in text and "2 points, hidden" in text


def test_summary_is_bounded() -> None:
    fig = go.Figure([go.Scatter(x=[1], y=[i], name=f"series {i}" * 5) for i in range(60)])
    text = summarize_figure(notebook_json(fig), max_chars=800)
    assert len(text) <= 800
    assert text.startswith("Plotly figure: 60 traces")
    full = summarize_figure(notebook_json(fig), max_chars=100_000)
    assert "… 40 more traces" in full


@pytest.mark.parametrize("bad", [None, [], "x", {"data": "nope", "layout": 3}, {}])
def test_unreadable_json_does_not_raise(bad: object) -> None:
    text = summarize_figure(bad)  # type: ignore[arg-type]
    assert text.startswith("Plotly figure") and "\n" not in text


def test_figure_from_plotly_html(line_fig: go.Figure) -> None:
    html = pio.to_html(line_fig, include_plotlyjs=False, full_html=False)
    fig = figure_from_html(html)
    assert fig is not None
    assert summarize_figure(fig) == summarize_figure(line_fig.to_plotly_json())
    assert figure_from_html("<div>no plot</div>") is None
    assert figure_from_html("<script>Plotly.newPlot('x', broken</script>") is None


def test_plotly_html_output_is_described_not_executed(line_fig: go.Figure) -> None:
    html = pio.to_html(line_fig, include_plotlyjs="cdn", full_html=True)
    reduced = html_to_text(html)
    assert reduced.kind == "plotly"
    assert reduced.text.startswith("[Plotly figure 'Temperatures': 2 traces")
    assert "interactive Plotly HTML, not rendered" in reduced.text
    assert "newPlot" not in reduced.text and "PLOTLYENV" not in reduced.text


def test_outputs_of_a_real_kernel(executed_notebook: dict) -> None:
    cells = {c.get("id"): c for c in executed_notebook["cells"]}
    [out] = cells["plotly"]["outputs"]
    assert summarize_figure(out["data"][PLOTLY_MIME]).splitlines() == [
        "Plotly figure 'Temperatures': 1 trace",
        "axes: xaxis 'day'; yaxis 'deg C'",
        "- trace 0: scatter (lines) 'temps', 3 points",
    ]
    [bar] = cells["plotly-png"]["outputs"]
    assert "- trace 0: bar 'bars', 3 points" in summarize_figure(bar["data"][PLOTLY_MIME])
