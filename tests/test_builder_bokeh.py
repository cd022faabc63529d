"""Bokeh in a notebook: a real kernel runs output_notebook() + show(); the plot is described,
and BokehJS's loader/exec bundles (JavaScript only) are not reported as lost content."""

from __future__ import annotations

import pytest
from fixtures.notebooks import execute
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ai_vision import build_context

pytestmark = pytest.mark.kernel

BOKEH_CELL = (
    "from bokeh.plotting import figure, show\n"
    "from bokeh.io import output_notebook\n"
    "output_notebook(hide_banner=True)\n"
    "p = figure(title='Bokeh line', width=300, height=200)\n"
    "p.line([1, 2, 3], [1, 4, 9])\n"
    "show(p)"
)


def test_bokeh_plot_is_described_and_its_loaders_are_not_noise(tmp_path):
    nb = new_notebook(cells=[new_code_cell(BOKEH_CELL, id="bokeh")])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    execute(nb, tmp_path)
    mimes = {m for out in nb.cells[0].outputs for m in out.get("data", {})}
    assert "application/vnd.bokehjs_exec.v0+json" in mimes  # the real shape Bokeh emits

    ctx = build_context(nb, model="gpt-4o")

    assert "Bokeh plot (interactive HTML, not rendered)" in ctx.text
    assert ctx.skipped == [], [s.reason for s in ctx.skipped]
