"""Hostile notebook *text* (issue 11, classes 2 and 6).

Class 2: every regex that sees notebook content runs in linear time. Each notebook-facing
function is run on adversarial inputs at n and 4n and the time ratio is bounded (linear ~4,
quadratic ~16: the bound is 9), never an absolute time; an audit test makes every module of
the notebook-facing layers that uses ``re`` name its cases here. The reported cases (an SVG
style with 300k ``url(``, a markdown ``<img `` followed by 200k letters, ...) also go
through the whole pipeline next to good figures a real kernel made.

Class 6: malformed fields. Each wrong type is left out with exactly one line and the rest of
the notebook, good figures included (with their colours), is still used; the CLI exits 0,
or 2 with one line for arguments that name no cell.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.hostile import (
    MAX_RSS_MB,
    assert_good_figures_sent,
    assert_one_line_error,
    code_cell,
    display,
    good_cells,
    notebook,
    run_inspect,
    scaling_ratio,
)

from jupyter_ai_vision import _text, build_context, mimes
from jupyter_ai_vision.context import builder, messages, snapshot
from jupyter_ai_vision.context.snapshot import NOTES_KEY, load_notebook
from jupyter_ai_vision.limits import MAX_JSON_DEPTH, ImagePolicy
from jupyter_ai_vision.media import html, markdown, plotly, svg, vega
from jupyter_ai_vision.media.charts import bokeh, plotly_safety

PACKAGE = Path(__file__).resolve().parents[1] / "jupyter_ai_vision"
POLICY = ImagePolicy()
#: time(4n) / time(n) above this is super-linear (linear work measures 4-6 here).
MAX_RATIO = 9.0


def _svg(attrs: str = "", body: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" {attrs}>'
        f'<rect width="40" height="20" fill="teal"/>{body}</svg>'
    )


def _sanitize(text: str) -> Any:
    try:
        return svg.sanitize_svg(text, POLICY)
    except svg.ImageRejected:  # refusing is fine; taking long is not
        return None


# name -> (function under test, adversarial input of size ~n)
CASES: dict[str, tuple[Any, Any]] = {
    # media/markdown.py
    "markdown: <img followed by letters": (
        markdown.find_image_refs,
        lambda n: "<img " + "a" * n + ">",
    ),
    "markdown: unclosed <img": (markdown.find_image_refs, lambda n: "<img " * (n // 5)),
    "markdown: <img with unclosed quotes": (
        markdown.find_image_refs,
        lambda n: "<img " + 'a="b ' * (n // 5) + ">",
    ),
    "markdown: unclosed fences with info": (
        markdown.find_image_refs,
        lambda n: "```x\n" * (n // 5),
    ),
    "markdown: fences of growing length": (
        markdown.find_image_refs,
        lambda n: "".join("`" * (3 + i % 50) + "\n" for i in range(n // 30)),
    ),
    "markdown: unclosed ![a](": (markdown.find_image_refs, lambda n: "![a](" * (n // 5)),
    "markdown: nested parentheses": (markdown.find_image_refs, lambda n: "![a](" + "(a" * (n // 2)),
    "markdown: titles never closed": (markdown.find_image_refs, lambda n: '![a](b "' * (n // 8)),
    "markdown: reference uses": (markdown.find_image_refs, lambda n: "![a]" * (n // 4)),
    "markdown: reference definitions": (
        markdown.find_image_refs,
        lambda n: ("[a]: <" + "b" * 500 + "\n") * (n // 500),
    ),
    # media/svg.py (runs in the server process, before the sandboxed renderer)
    "svg: style with url(": (_sanitize, lambda n: _svg(f'style="fill:{"url(" * (n // 4)}"')),
    "svg: style with url('": (_sanitize, lambda n: _svg(f'''style="fill:{"url('" * (n // 5)}"''')),
    "svg: <style> with url(": (
        _sanitize,
        lambda n: _svg(body=f"<style>a{{b:{'url( ' * (n // 5)}}}</style>"),
    ),
    "svg: @import": (_sanitize, lambda n: _svg(body=f"<style>{'@import ' * (n // 8)}</style>")),
    "svg: width of digits": (
        _sanitize,
        lambda n: _svg().replace('width="40"', f'width="{"1" * n}!"'),
    ),
    "svg: viewBox of separators": (_sanitize, lambda n: _svg(f'viewBox="0{" ," * (n // 2)}x"')),
    # media/vega.py (Altair HTML)
    "vega: unclosed <script>": (vega.spec_from_html, lambda n: "vega" + "<script>" * (n // 8)),
    "vega: <script without >": (vega.spec_from_html, lambda n: "vega" + "<script " * (n // 8)),
    "vega: object starts": (
        vega.spec_from_html,
        lambda n: "<script>vega" + '{"' * (n // 2) + "</script>",
    ),
    # media/html.py
    "html: unclosed tables": (html.html_to_text, lambda n: "<table>" * (n // 7)),
    "html: rows": (html.html_to_text, lambda n: "<tr>" * (n // 4)),
    "html: a tag never closed": (html.html_to_text, lambda n: "<div " + "a" * n),
    "html: images": (html.html_to_text, lambda n: "<img src=x>" * (n // 11)),
    "html: unclosed comments": (html.html_to_text, lambda n: "<!--" * (n // 4)),
    "html: bokeh-looking divs": (html.html_to_text, lambda n: "<div " * (n // 5)),
    "html: unclosed declarations": (html.html_to_text, lambda n: "<! " * (n // 3)),
    "html: unclosed processing instructions": (html.html_to_text, lambda n: "<? " * (n // 3)),
    "html: unclosed end tags": (html.html_to_text, lambda n: "</ " * (n // 3)),
    "html: unclosed attribute values": (html.html_to_text, lambda n: '<a b="' * (n // 6)),
    # media/plotly.py
    "plotly: newPlot then spaces": (plotly.figure_from_html, lambda n: "Plotly.newPlot(" + " " * n),
    "plotly: many newPlot": (plotly.figure_from_html, lambda n: "Plotly.newPlot(" * (n // 15)),
    # media/charts (Plotly / Bokeh sanitisers, Bokeh documents in HTML)
    "bokeh: docs_json declarations": (
        bokeh.find_document,
        lambda n: "var docs_json = " * (n // 16),
    ),
    "bokeh: let + spaces": (bokeh.find_document, lambda n: "docs_json let" + " " * n),
    "bokeh: unclosed JSON scripts": (
        bokeh.find_document,
        lambda n: (
            'docs_json = document.getElementById("a")'
            + '<script type="application/json" id="a">' * (n // 40)
        ),
    ),
    "bokeh: deep docs_json": (bokeh.find_document, lambda n: "var docs_json = " + "[" * n),
    "plotly safety: css url(": (
        plotly_safety.sanitize_figure,
        lambda n: {"data": [], "layout": {"title": {"text": "url" + " " * n + "("}}},
    ),
    # _text.py (every text output)
    "text: base64-like runs": (_text.scrub_base64, lambda n: ("aB3" * 133 + " ") * (n // 400)),
    "text: data: URIs": (_text.scrub_base64, lambda n: "data:a" + ";a" * (n // 2)),
    "text: ANSI OSC never ended": (_text.strip_ansi, lambda n: "\x1b]" * (n // 2)),
    "text: ANSI CSI": (_text.strip_ansi, lambda n: "\x1b[" + "0" * n),
    "text: clean_text": (
        lambda s: _text.clean_text(s, 2000),
        lambda n: ("a" * 399 + " ") * (n // 400),
    ),
    # mimes.py
    "mimes: data URI header": (
        lambda s: mimes.parse_data_uri(s, POLICY),
        lambda n: " data:" + "a" * n,
    ),
    # context/messages.py (the wire format's defusing)
    "messages: <": (messages.defuse, lambda n: "<" * n),
    "messages: < notebook": (messages.defuse, lambda n: "< notebook" * (n // 10)),
    "messages: notebook-": (messages.defuse, lambda n: "notebook-" * (n // 9)),
    "messages: [ figure": (messages.defuse, lambda n: "[ figure" * (n // 8)),
    # context/builder.py (counts the references the SVG sanitiser removed)
    "builder: removed SVG references": (
        lambda s: builder._svg_removed_refs(s, POLICY),
        lambda n: _svg(f'style="{"href  url (  " * (n // 12)}"'),
    ),
    # context/snapshot.py (deep-JSON cut)
    "snapshot: escaped quotes": (snapshot._cut_deep_values, lambda n: '["' + '\\"' * (n // 2)),
    "snapshot: unclosed strings": (snapshot._cut_deep_values, lambda n: '"\\' * (n // 2)),
    "snapshot: deep brackets": (snapshot._cut_deep_values, lambda n: "[" * n + "]" * n),
}

#: Modules of the notebook-facing layers that use ``re``, and why each is covered: a module
#: that starts using ``re`` must be audited and listed here (its regexes get cases above).
AUDITED = {
    "_text": "text: cases",
    "mimes": "mimes: cases; VEGALITE/VEGA_MIME are anchored, on mime names",
    "context/messages": "messages: cases",
    "context/snapshot": "snapshot: cases",
    "context/extract": "text helpers: the same patterns as _text (text: cases)",
    "context/builder": "builder: cases; _SVG_SIZE sees 4,000 characters; focus: 18 digits",
    "context/budget": "model names from settings, not notebook content",
    "context/models": "model names from settings, not notebook content",
    "media/markdown": "markdown: cases",
    "media/svg": "svg: cases",
    "media/vega": "vega: cases; _SVG_SIZE / _EXTERNAL see our renderer's SVG (text escaped)",
    "media/html": "html: cases",
    "media/plotly": "plotly: cases",
    "media/charts/bokeh": "bokeh: cases",
    "media/charts/plotly_safety": "plotly safety: cases; mime/URL checks are anchored",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_facing_text_is_processed_in_linear_time(name):
    fn, make = CASES[name]
    n, ratio = scaling_ratio(fn, make)
    assert ratio < MAX_RATIO, f"{name}: time(4n)/time(n) = {ratio:.1f} at n = {n}"


def _uses_re(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "re"
        for node in ast.walk(tree)
    )


def test_every_notebook_facing_module_with_a_regex_is_audited():
    roots = [PACKAGE / "context", PACKAGE / "media", PACKAGE / "_text.py", PACKAGE / "mimes.py"]
    files = [p for r in roots for p in ([r] if r.is_file() else sorted(r.rglob("*.py")))]
    using = {str(p.relative_to(PACKAGE).with_suffix("")) for p in files if _uses_re(p)}
    assert using - set(AUDITED) == set(), "audit these modules' regexes and add cases"
    covered = {name.split(":")[0] for name in CASES}
    for module, why in AUDITED.items():
        if why.endswith("cases") or "cases;" in why:
            assert why.split(":")[0] in covered, module


# --- the reported cases, through the whole pipeline ---------------------------------------


def _hostile_text_cells() -> list[dict[str, Any]]:
    return [
        code_cell(
            "svg-urls", [display({"image/svg+xml": _svg(f'style="fill:{"url(" * 300_000}"')})]
        ),
        code_cell(
            "svg-digits",
            [display({"image/svg+xml": _svg().replace('width="40"', f'width="{"1" * 30_000}!"')})],
        ),
        {
            "cell_type": "markdown",
            "id": "md-img",
            "metadata": {},
            "source": "<img " + "a" * 200_000,
        },
        {
            "cell_type": "markdown",
            "id": "md-img-closed",
            "metadata": {},
            "source": "<img " + "a" * 200_000 + ">",
        },
        {
            "cell_type": "markdown",
            "id": "md-fences",
            "metadata": {},
            "source": "```x\n" * 40_000 + "![a](b.png)",
        },
        code_cell("html-scripts", [display({"text/html": "vega " + "<script>" * 100_000})]),
        code_cell(
            "stream-b64",
            [{"output_type": "stream", "name": "stdout", "text": ("a" * 399 + " ") * 100_000}],
        ),
    ]


@pytest.fixture(scope="module")
def text_notebook(executed_notebook, tmp_path_factory):
    good = good_cells(executed_notebook)
    nb = notebook([good[0], *_hostile_text_cells(), good[1]])
    path = tmp_path_factory.mktemp("hostile-text") / "hostile_text.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_reported_regex_cases_build_and_still_send_the_good_figures(text_notebook):
    ctx = build_context(text_notebook, model="gpt-4o")
    assert_good_figures_sent(ctx)
    assert "[base64 data omitted]" not in ctx.text or "a" * 399 not in ctx.text


def test_reported_regex_cases_through_the_cli(text_notebook):
    run = run_inspect(text_notebook, "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    sent = {item["cell_id"] for item in run.json()["items"]}
    assert {"mpl", "pil"} <= sent
    assert run.peak_rss_mb < MAX_RSS_MB


# --- class 6: malformed fields --------------------------------------------------------------


def _deep(n: int) -> Any:
    value: Any = []
    for _ in range(n):
        value = [value]
    return value


def _attachment_cell(cell_id: str, bundle: Any) -> dict[str, Any]:
    return {
        "cell_type": "markdown",
        "id": cell_id,
        "metadata": {},
        "source": "![plot](attachment:a.png)",
        "attachments": {"a.png": bundle},
    }


_PLOTLY_BAD_SHAPES = ["9" * 5000, "²", "3,²", "-3", "1," * 200, "", [1, "x"], {"a": 1}, [10**9] * 3]

# cell id -> (hostile cell, words of the one line said about it)
MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "traceback-number": (
        code_cell(
            "traceback-number",
            [{"output_type": "error", "ename": "E", "evalue": "v", "traceback": 5}],
        ),
        "'traceback' is not a list of lines (a number)",
    ),
    "metadata-list": (
        code_cell("metadata-list", [], metadata=[1, 2]),
        "metadata is not an object (a list)",
    ),
    "attachment-string": (
        _attachment_cell("attachment-string", "zzz"),
        "is not a mime bundle (a string)",
    ),
    "attachment-numbers": (
        _attachment_cell("attachment-numbers", {"image/png": ["iVBORw0KGgo", 5, 6.5]}),
        "'image/png' is not text (a list)",
    ),
    "metadata-deep": (
        code_cell("metadata-deep", [], metadata={"a": _deep(300_000)}),
        f"nested deeper than {MAX_JSON_DEPTH} levels",
    ),
    "json-deep": (
        code_cell("json-deep", [display({"application/json": _deep(300_000)})]),
        f"nested deeper than {MAX_JSON_DEPTH} levels",
    ),
    "vega-string-deep": (
        code_cell(
            "vega-string-deep",
            [display({"application/vnd.vegalite.v5+json": "[" * 300_000 + "]" * 300_000})],
        ),
        "Vega-Lite output is not a JSON spec",
    ),
    "plotly-html-deep": (
        code_cell(
            "plotly-html-deep",
            [
                display(
                    {
                        "text/html": '<div></div><script>Plotly.newPlot("p", '
                        + "[" * 300_000
                        + "]" * 300_000
                        + ", {})</script>"
                    }
                )
            ],
        ),
        "script removed",
    ),
    "source-dict": (
        {"cell_type": "markdown", "id": "source-dict", "metadata": {}, "source": {"a": 1}},
        "source is not text (an object)",
    ),
    "outputs-number": (code_cell("outputs-number", 5), "'outputs' is not a list (a number)"),
    "output-null": (code_cell("output-null", [None]), "output 0 has no valid output_type (null)"),
    "data-string": (
        code_cell("data-string", [{"output_type": "display_data", "data": "x"}]),
        "'data' is not a mime bundle (a string)",
    ),
    "html-number": (
        code_cell("html-number", [display({"text/html": 5})]),
        "'text/html' is not text (a number)",
    ),
    "ename-object": (
        code_cell(
            "ename-object",
            [{"output_type": "error", "ename": {"a": [1]}, "evalue": "", "traceback": []}],
        ),
        "ename is not text (an object)",
    ),
    "count-text": (
        code_cell("count-text", [], execution_count="seven"),
        "execution_count is not a whole number",
    ),
}


@pytest.fixture(scope="module")
def malformed_ctx(executed_notebook):
    good = good_cells(executed_notebook)
    plotly_cell = code_cell(
        "plotly-shapes",
        [
            display(
                {
                    plotly.PLOTLY_MIME: {
                        "data": [
                            {
                                "type": "scatter",
                                "x": {"dtype": "f8", "bdata": "AAAAAAAA8D8=", "shape": s},
                            }
                            for s in _PLOTLY_BAD_SHAPES
                        ],
                        "layout": {},
                    }
                }
            )
        ],
    )
    cells = [good[0], *(cell for cell, _ in MALFORMED.values()), plotly_cell, good[1]]
    return build_context(notebook(cells), model="gpt-4o")


@pytest.mark.parametrize("cell_id", sorted(MALFORMED))
def test_a_malformed_field_is_left_out_with_exactly_one_line(malformed_ctx, cell_id):
    lines = [s.reason for s in malformed_ctx.skipped if s.provenance.cell_id == cell_id]
    assert len(lines) == 1, lines
    assert MALFORMED[cell_id][1] in lines[0] and "\n" not in lines[0]


def test_the_rest_of_a_malformed_notebook_is_used(malformed_ctx):
    assert_good_figures_sent(malformed_ctx)
    text = malformed_ctx.text
    assert "[output 0: Plotly figure]" in text and f"{len(_PLOTLY_BAD_SHAPES)} traces" in text


def test_plotly_typed_arrays_with_bad_shapes_are_summarised():
    traces = [
        {"x": {"dtype": "f8", "bdata": "AAAAAAAA8D8=", "shape": s}} for s in _PLOTLY_BAD_SHAPES
    ]
    summary = plotly.summarize_figure({"data": traces, "layout": {}})
    assert f"{len(_PLOTLY_BAD_SHAPES)} traces" in summary
    good = plotly.summarize_figure(
        {"data": [{"x": {"dtype": "f8", "bdata": "A" * 16, "shape": "3, 4"}}]}
    )
    assert "12 points" in good


def test_deep_json_in_a_live_dict_is_cut_by_the_normaliser_not_by_recursion():
    nb = notebook(
        [code_cell("deep", [display({"application/vnd.plotly.v1+json": {"data": _deep(300_000)}})])]
    )
    nb["metadata"] = {"deep": _deep(300_000)}
    snap = load_notebook(nb)
    assert snap.cells[0]["outputs"] == [{"output_type": "invalid"}]
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in snap.cells[0][NOTES_KEY][0]
    assert snap.notes == [
        f"notebook metadata is nested deeper than {MAX_JSON_DEPTH} levels; ignored"
    ]


@pytest.fixture(scope="module")
def malformed_file(executed_notebook, tmp_path_factory):
    """The same malformed cells as a file (deep values as raw JSON past the parser's limit),
    plus a 5,000-digit execution count and a numeric cell id."""
    good = good_cells(executed_notebook)
    shallow = {k: v for k, v in MALFORMED.items() if "deep" not in k}
    cells = [good[0], *(cell for cell, _ in shallow.values()), code_cell(12345, []), good[1]]
    text = json.dumps(notebook(cells))
    deep = "[" * 300_000 + "]" * 300_000
    extra = (
        f'{{"cell_type": "code", "id": "metadata-deep", "metadata": {{"a": {deep}}}, '
        '"execution_count": ' + "9" * 5000 + ', "source": "x", "outputs": '
        f'[{{"output_type": "display_data", "metadata": {{}}, "data": {{"application/json": {deep}}}}}]}}'
    )
    text = text.replace('"cells": [', '"cells": [' + extra + ", ", 1)
    path = tmp_path_factory.mktemp("malformed") / "malformed.ipynb"
    path.write_text(text)
    return path


def test_malformed_file_through_the_cli_exits_0_with_html_and_json(malformed_file, tmp_path):
    report = tmp_path / "report.html"
    run = run_inspect(malformed_file, "--json", "--html", report, "--cell", "12345")
    assert run.returncode == 0, run.stderr[-2000:]
    data = run.json()
    assert {"mpl", "pil"} <= {item["cell_id"] for item in data["items"]}
    reasons = [s["reason"] for s in data["skipped"] if s["cell_index"] == 0]
    assert any("execution_count is not a whole number" in r for r in reasons)
    assert sum(f"nested deeper than {MAX_JSON_DEPTH} levels" in r for r in reasons) == 2
    assert "12345" in report.read_text()
    assert run.peak_rss_mb < MAX_RSS_MB


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("²", "no cell with id '²'"), ("7" * 5000, "no cell with id '777"), ("-99", "out of range")],
)
def test_cell_arguments_that_name_no_cell_exit_2_with_one_line(malformed_file, cell, expected):
    run = run_inspect(malformed_file, "--cell", cell)
    assert_one_line_error(run, expected)
    assert len(run.stderr) < 400


@pytest.mark.parametrize("digits", ["²", "9" * 5000, "١٢"])
def test_digit_strings_int_refuses_are_never_parsed(digits):
    row = f'<tr data-ai-vision-skipped-rows="{digits}"></tr>'
    table = html.html_to_text(f"<table><tr><th>a</th></tr>{row}<tr><td>1</td></tr></table>")
    assert "| 1 |" in table.text
    nb = notebook([code_cell("c", [])])
    with pytest.raises(snapshot.NotebookError, match="no cell with id"):
        build_context(nb, focus=digits)
