"""HTML outputs to readable text: real pandas / IPython / Bokeh / ipywidgets HTML."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fixtures.scaling import assert_linear
from IPython.display import HTML, IFrame
from PIL import Image

from jupyter_ai_vision.media.html import html_to_text
from jupyter_ai_vision.mimes import parse_data_uri


@pytest.fixture(scope="module")
def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 32), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_pandas_table_is_pipe_separated_with_header() -> None:
    df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]})
    reduced = html_to_text(df._repr_html_())
    assert reduced.kind == "table"
    assert reduced.text.splitlines() == [
        "|  | city | temp |",
        "| --- | --- | --- |",
        "| 0 | Oslo | 3.5 |",
        "| 1 | Lima | 19.0 |",
    ]
    assert reduced.images == [] and reduced.notes == []


def test_pandas_repr_of_a_big_frame_keeps_its_ellipsis_and_shape() -> None:
    df = pd.DataFrame(np.arange(5000).reshape(500, 10), columns=[f"c{i}" for i in range(10)])
    reduced = html_to_text(df._repr_html_())
    lines = reduced.text.splitlines()
    assert lines[0] == "|  | " + " | ".join(f"c{i}" for i in range(10)) + " |"
    assert lines[2] == "| 0 | " + " | ".join(str(i) for i in range(10)) + " |"
    assert "| ... |" in reduced.text  # pandas' own truncation row
    assert "500 rows × 10 columns" in reduced.text


def _table_html(rows: int) -> str:
    return pd.DataFrame(np.random.default_rng(0).random((rows, 21))).to_html()


def test_huge_table_is_bounded_in_rows_columns_chars_and_time() -> None:
    html = _table_html(5_000)
    assert len(html) > 2_000_000
    reduced = html_to_text(html, max_chars=3000)
    assert len(reduced.text) <= 3000
    assert reduced.text.splitlines()[0].endswith("| 10 | … |")  # index + 11 of 21 columns shown
    assert_linear(_table_html, lambda h: html_to_text(h, max_chars=3000), 500)
    assert "[table truncated: showing" in reduced.text
    assert "of 5000 rows, 12 of 22 columns]" in reduced.text


def test_scripts_styles_removed_and_noted(png: bytes) -> None:
    html = HTML(
        "<style>p {color: red}</style><p>An <b>inline</b> image:</p>"
        f'<img alt="dot" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        "<script>alert('pwned'); document.cookie</script><p>after</p>"
    )._repr_html_()
    reduced = html_to_text(html)
    assert reduced.text.splitlines()[:3] == ["An inline image:", "[image 1: dot]", "after"]
    assert "alert" not in reduced.text and "color" not in reduced.text
    assert "[1 script removed (never executed)]" in reduced.text
    assert reduced.notes == ["1 script removed (never executed)"]
    assert reduced.images == [("image/png", png)]


def test_data_images_kept_as_raw_bytes_and_invalid_ones_noted(png: bytes) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "blue").save(buf, format="JPEG")
    jpeg = buf.getvalue()
    html = (
        f'<div><img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<img src='data:image/jpg;base64,{base64.b64encode(jpeg).decode()}'>"
        '<img alt="broken" src="data:image/png;base64,@@not base64@@">'
        '<img src="data:text/html;base64,PHNjcmlwdD4=">'
        '<img src="data:image/svg+xml,%3Csvg%20xmlns%3D%22http%3A//www.w3.org/2000/svg%22/%3E"></div>'
    )
    reduced = html_to_text(html)
    assert reduced.images == [
        ("image/png", png),
        ("image/jpeg", jpeg),
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
    ]
    assert "[image: broken: unsupported or invalid data: URI, not kept]" in reduced.text
    assert reduced.text.count("not kept") == 2


def test_parse_data_uri_limits(png: bytes) -> None:
    uri = f"data:image/png;base64,{base64.b64encode(png).decode()}"
    assert parse_data_uri(uri, 10_000_000) == ("image/png", png)
    assert parse_data_uri(uri, 20) is None
    assert parse_data_uri("https://example.invalid/x.png", 10_000_000) is None


RECORDER = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(self.path, flush=True); self.send_response(404); self.end_headers()
    def log_message(self, *args): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


@pytest.fixture
def recorder() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", RECORDER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    yield f"http://127.0.0.1:{int(proc.stdout.readline())}", proc
    proc.kill()


def test_remote_images_and_iframes_are_noted_never_fetched(
    recorder: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = recorder
    html = (
        f'<p>Logo</p><img alt="logo" src="{base}/logo.png">'
        + IFrame(f"{base}/page.html", width=400, height=300)._repr_html_()
        + f'<object data="{base}/x.swf"></object>'
    )
    reduced = html_to_text(html)
    assert reduced.remote_images == [f"{base}/logo.png"]
    assert f"[image: logo: remote '{base}/logo.png', not fetched]" in reduced.text
    assert "2 iframe(s)/embedded object(s) removed (never loaded)" in reduced.notes
    time.sleep(0.3)
    proc.kill()
    out, _ = proc.communicate()
    assert out.strip() == ""  # the server received no request


def test_bokeh_html_is_recognised() -> None:
    from bokeh.embed import components, file_html
    from bokeh.plotting import figure
    from bokeh.resources import CDN

    plot = figure(title="Bokeh lines")
    plot.line([1, 2, 3], [3, 1, 2])
    from bokeh.embed.notebook import notebook_content

    script, div = components(plot)
    _, notebook_div, _ = notebook_content(plot)  # a notebook's text/html output: a bare div
    assert "<script" not in notebook_div
    for html in (notebook_div, div + script, file_html(plot, CDN, "page")):
        reduced = html_to_text(html)
        assert reduced.kind == "bokeh"
        assert reduced.text == "[Bokeh plot (interactive HTML, not rendered)]"
        assert reduced.images == []


def test_widget_html_is_recognised() -> None:
    import ipywidgets
    from ipywidgets.embed import embed_snippet

    reduced = html_to_text(embed_snippet([ipywidgets.IntSlider(3, description="n")]))
    assert reduced.kind == "widget"
    assert reduced.text == "[Jupyter widget (interactive HTML, not rendered)]"


def test_structure_is_kept_readable() -> None:
    html = (
        "<h2>Report</h2><ul><li>first &amp; best</li><li>second</li></ul>"
        "<pre>  x = 1\n  y = 2</pre>"
        "<table><caption>Inner</caption><tr><th>k</th><th>v</th></tr>"
        "<tr><td>a|b</td><td><table><tr><td>n1</td></tr></table></td></tr></table>"
        "<p>unclosed <i>tags"
    )
    text = html_to_text(html).text
    assert text.splitlines()[:5] == ["Report", "first & best", "second", "  x = 1", "  y = 2"]
    assert "| k | v |" in text and "| a\\|b | n1 |" in text and "Inner" in text
    assert text.endswith("unclosed tags")


def test_big_non_table_html_is_truncated_quickly() -> None:
    def paragraphs(n: int) -> str:
        return ("<p>" + "word " * 200 + "</p>") * n

    reduced = html_to_text(paragraphs(5000), max_chars=4000)  # ~5 MB
    assert len(reduced.text) <= 4000 and reduced.text.endswith("[… truncated]")
    assert reduced.notes[0].startswith("HTML truncated: only part of the")
    assert_linear(paragraphs, lambda h: html_to_text(h, max_chars=4000), 500)


def test_list_of_lines_is_accepted() -> None:
    assert html_to_text(["<p>a", "b</p>"]).text == "ab"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unit", "count"),
    [("<!--", 10_000), ("<", 100_000), ("</table></tr></td>", 1000), ("&#99999999;", 1000)],
)
def test_hostile_html_is_handled_quickly(unit: str, count: int) -> None:
    reduced = html_to_text(unit * count)
    assert len(reduced.text) <= 4000 and reduced.images == []
    assert_linear(lambda n: unit * n, html_to_text, count // 8)


def test_outputs_of_a_real_kernel(executed_notebook: dict) -> None:
    cells = {c.get("id"): c for c in executed_notebook["cells"]}
    [table] = cells["pandas"]["outputs"]
    reduced = html_to_text("".join(table["data"]["text/html"]))
    assert reduced.kind == "table"
    assert reduced.text.splitlines()[-2:] == ["| 0 | Oslo | 3.5 |", "| 1 | Lima | 19.0 |"]
    [html_img] = cells["html-img"]["outputs"]
    reduced = html_to_text("".join(html_img["data"]["text/html"]))
    assert reduced.text.splitlines() == [
        "An inline image:",
        "[image 1]",
        "[1 script removed (never executed)]",
    ]
    [(mime, data)] = reduced.images
    with Image.open(io.BytesIO(data)) as im:
        assert (mime, im.size) == ("image/png", (320, 200))


@pytest.mark.slow
def test_many_unclosed_tables_stay_linear() -> None:
    def unclosed(n: int) -> str:
        return "<table>" * (4 * n) + "</table>" + "<table>" + "<tr><td>1</td></tr>" * (5 * n)

    reduced = html_to_text(unclosed(10_000))
    assert reduced.text.endswith("[table truncated: showing 30 of 50000 rows]")
    assert_linear(unclosed, html_to_text, 1_250)
