"""HTML outputs reduced to readable text, never executed.

Uses the standard library's :class:`html.parser.HTMLParser` (tolerant, no dependency, never
runs scripts or loads anything). Tables become pipe-separated rows with their header,
bounded in rows and columns; ``<script>``, ``<style>`` and ``<iframe>`` are dropped (with a
note); ``data:`` images are kept as raw bytes for the image pipeline; remote images are noted
and never fetched. Bokeh and widget HTML are recognised and described, not rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal

from jupyter_ai_vision.mimes import parse_data_uri

HtmlKind = Literal["table", "widget", "bokeh", "plotly", "vega-lite", "html"]

#: HTML beyond this many characters is not parsed (a note says so).
MAX_INPUT_CHARS = 1_000_000
#: Table bounds: rows / columns shown per table.
MAX_TABLE_ROWS = 30
MAX_TABLE_COLS = 12
MAX_CELL_CHARS = 60
#: ``data:`` images kept per HTML output, and the largest one decoded (base64 chars).
MAX_IMAGES = 10
MAX_DATA_URI_CHARS = 15_000_000

_DROP = {"script", "style", "iframe", "object", "embed", "noscript", "template", "head", "svg"}
_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section",
    "article", "header", "footer", "blockquote", "dl", "dt", "dd", "hr", "details", "summary",
    "caption", "figure", "figcaption", "form", "nav", "main", "aside", "table",
}  # fmt: skip
_BOKEH = re.compile(r"bokeh|bk-root|data-root-id|application/vnd\.bokehjs", re.IGNORECASE)
# In a notebook, Bokeh's text/html output is only ``<div id=... data-root-id=...>``: the
# script comes in a separate application/javascript output.
# [^<>] and lazy: each scan stops at the next tag (``[^>]*`` rescanned the rest from every
# unclosed ``<div``: quadratic).
_BOKEH_DIV = re.compile(r"<div\b[^<>]*?\bdata-root-id=", re.IGNORECASE)
_WIDGET = re.compile(r"application/vnd\.jupyter\.widget-(?:view|state)\+json|jupyter-widgets")
_PLOTLY = re.compile(r"Plotly\.newPlot|plotly-graph-div")
_VEGA = re.compile(r"vegaEmbed|vega-embed")


@dataclass
class HtmlText:
    """Readable text of an HTML output, the images inside it, and what kind of HTML it was."""

    text: str
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (mime, raw bytes)
    kind: HtmlKind = "html"
    notes: list[str] = field(default_factory=list)  # one-line notes (removed scripts, ...)
    remote_images: list[str] = field(default_factory=list)  # URLs noted, never fetched


def html_to_text(
    html: str, *, max_chars: int = 4000, max_input_chars: int = MAX_INPUT_CHARS
) -> HtmlText:
    """Reduce an HTML output to readable text (see module docstring); bounded in time and size."""
    if isinstance(html, list):  # nbformat may store text as a list of lines
        html = "".join(html)
    notes: list[str] = []
    original = len(html)
    if original > max_input_chars * 4:  # even the table trimming below must stay quick
        html = html[: max_input_chars * 4]
    html = _trim_tables(html)
    if len(html) > max_input_chars:
        html = html[:max_input_chars]
    if original > max_input_chars * 4 or len(html) == max_input_chars:
        notes.append(f"HTML truncated: only part of the {original // 1000} kB output was read")
    html = _escape_unclosed_tags(_strip_comments(html))
    kind = _kind(html)
    if kind == "bokeh":
        return HtmlText(text="[Bokeh plot (interactive HTML, not rendered)]", kind="bokeh")
    if kind == "widget":
        return HtmlText(text="[Jupyter widget (interactive HTML, not rendered)]", kind="widget")
    parser = _Reducer(max_chars=max_chars)
    parser.feed(html)
    parser.close()
    text = parser.result()
    if parser.scripts:
        noun = "script" if parser.scripts == 1 else "scripts"
        notes.append(f"{parser.scripts} {noun} removed (never executed)")
    if parser.iframes:
        notes.append(f"{parser.iframes} iframe(s)/embedded object(s) removed (never loaded)")
    notes.extend(parser.notes)
    if kind == "html" and parser.table_count and len(text) <= 2 * parser.table_chars + 80:
        kind = "table"  # mostly a table (e.g. a pandas DataFrame)
    if kind == "plotly":
        from jupyter_ai_vision.media.plotly import figure_from_html, summarize_figure

        fig = figure_from_html(html)
        described = summarize_figure(fig) if fig is not None else "Plotly figure"
        text = f"[{described}]\n[interactive Plotly HTML, not rendered]" + (
            "\n" + text if text.strip() else ""
        )
    if kind == "vega-lite" and not text.strip():
        text = "[Vega-Lite chart (interactive HTML)]"
    if notes:
        text = (text + "\n" if text else "") + "\n".join(f"[{n}]" for n in notes)
    if len(text) > max_chars:
        text = text[: max_chars - 14].rstrip() + "\n[… truncated]"
    return HtmlText(
        text=text, images=parser.images, kind=kind, notes=notes, remote_images=parser.remote
    )


_TABLE_TAG = re.compile(r"<(/?)table\b", re.IGNORECASE)
_TR = re.compile(r"<tr\b", re.IGNORECASE)
_SKIPPED_ATTR = "data-ai-vision-skipped-rows"
_ROW_COUNT = re.compile(r"[0-9]{1,9}")  # not str.isdigit: int() refuses "²" and 5,000 digits


def _trim_tables(html: str) -> str:
    """Cut the rows of big tables before parsing (a 30,000-row ``to_html()`` would take
    seconds to parse); a marker row tells the parser how many rows were cut.

    Only innermost tables (an opening tag directly followed by a closing one, or an
    unclosed last one) are trimmed; one pass over the tags keeps this linear.
    """
    if len(html) < 200_000:
        return html
    tags = [(m.start(), m.end(), m.group(1) == "/") for m in _TABLE_TAG.finditer(html)]
    out: list[str] = []
    pos = 0
    for i, (_, open_end, is_close) in enumerate(tags):
        if is_close:
            continue
        if i + 1 < len(tags):
            if not tags[i + 1][2]:
                continue  # a nested table follows: left to the parser
            end = tags[i + 1][0]
        else:
            end = len(html)
        rows = [m.start() for m in _TR.finditer(html, open_end, end)]
        if len(rows) > MAX_TABLE_ROWS + 1:
            out.append(html[pos : rows[MAX_TABLE_ROWS]])
            out.append(f'<tr {_SKIPPED_ATTR}="{len(rows) - MAX_TABLE_ROWS}"></tr>')
            pos = end
    out.append(html[pos:])
    return "".join(out)


def _strip_comments(html: str) -> str:
    """Remove ``<!-- -->`` comments in linear time (HTMLParser is quadratic on unclosed ones);
    an unclosed comment runs to the end, as in browsers."""
    if "<!--" not in html:
        return html
    out = []
    pos = 0
    while (start := html.find("<!--", pos)) != -1:
        out.append(html[pos:start])
        end = html.find("-->", start + 4)
        if end == -1:
            pos = len(html)
            break
        pos = end + 3
    out.append(html[pos:])
    return "".join(out)


def _escape_unclosed_tags(html: str) -> str:
    """Escape each ``<`` that no ``>`` closes before the next ``<``: it can never start a
    tag, and Python's HTMLParser (before 3.12.11 / 3.13.4) rescans the rest of the input
    from every such ``<`` (quadratic: 128 kB of ``<div `` took 90 s). Linear: each ``find``
    scans forward from where the last one stopped."""
    out: list[str] = []
    pos = 0
    close = -1  # the first ">" after the current "<" (len(html): none)
    start = html.find("<")
    while start != -1:
        if close <= start:
            close = html.find(">", start + 1)
            close = len(html) if close == -1 else close
        following = html.find("<", start + 1)
        if (len(html) if following == -1 else following) < close or close == len(html):
            out += [html[pos:start], "&lt;"]
            pos = start + 1
        start = following
    return "".join(out) + html[pos:] if out else html


def _kind(html: str) -> HtmlKind:
    head = html[:200_000]
    if _WIDGET.search(head):
        return "widget"
    if _BOKEH_DIV.search(head) or (_BOKEH.search(head) and "<script" in head.lower()):
        return "bokeh"
    if _PLOTLY.search(head):
        return "plotly"
    if _VEGA.search(head):
        return "vega-lite"
    return "html"


class _Table:
    def __init__(self) -> None:
        self.rows: list[tuple[bool, list[str]]] = []  # (is_header, cells)
        self.total_rows = 0
        self.max_cols = 0
        self.row: list[str] | None = None
        self.row_header = False
        self.cell: list[str] | None = None
        self.caption: list[str] = []

    def render(self, budget: int) -> str:
        """Pipe-separated rows within ``budget`` characters, header first, then a note."""
        shown_cols = min(self.max_cols, MAX_TABLE_COLS)
        lines: list[str] = []
        used = 0
        shown = 0
        if self.caption:
            lines.append(" ".join("".join(self.caption).split()))
        header_done = False
        for is_header, cells in self.rows:
            if not is_header and not header_done:
                header_done = True
                if lines and self.rows[0][0]:  # separate the header rows, as in markdown
                    lines.append("|" + " --- |" * (shown_cols + (self.max_cols > shown_cols)))
            cells = (cells + [""] * shown_cols)[:shown_cols]
            if self.max_cols > shown_cols:
                cells.append("…")
            line = "| " + " | ".join(cells) + " |"
            if shown and used + len(line) > budget:
                break
            lines.append(line)
            used += len(line) + 1
            shown += 1
        bits = []
        headers = sum(1 for is_header, _ in self.rows if is_header)
        if self.total_rows > shown:
            shown_data = max(0, shown - headers)
            bits.append(f"showing {shown_data} of {self.total_rows - headers} rows")
        if self.max_cols > shown_cols:
            bits.append(f"{shown_cols} of {self.max_cols} columns")
        if bits:
            lines.append(f"[table truncated: {', '.join(bits)}]")
        return "\n".join(lines)


class _Reducer(HTMLParser):
    def __init__(self, *, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.max_chars = max_chars
        self.out: list[str] = []
        self.size = 0
        self.drop_depth = 0
        self.drop_tag: str | None = None
        self.tables: list[_Table] = []  # open tables (nested tables are flattened into cells)
        self.table_chars = 0
        self.table_count = 0
        self.images: list[tuple[str, bytes]] = []
        self.remote: list[str] = []
        self.notes: list[str] = []
        self.scripts = 0
        self.iframes = 0
        self.in_pre = 0

    # parser callbacks ----------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag:
                self.drop_depth += 1
            return
        if tag in _DROP:
            self.scripts += tag == "script"
            self.iframes += tag in ("iframe", "object", "embed")
            if tag == "svg":
                self._text("[inline SVG graphic]")
            self.drop_tag, self.drop_depth = tag, 1
            return
        if tag == "img":
            self._img(dict(attrs))
        elif tag == "table":
            self.tables.append(_Table())
        elif self.tables and tag == "tr":
            table = self.tables[-1]
            skipped = dict(attrs).get(_SKIPPED_ATTR)
            if skipped and _ROW_COUNT.fullmatch(skipped):  # rows cut by _trim_tables
                table.total_rows += int(skipped)
                return
            table.row, table.row_header = [], True
        elif self.tables and tag in ("td", "th"):
            table = self.tables[-1]
            if table.row is None:
                table.row, table.row_header = [], True
            table.cell = []
            table.row_header &= tag == "th"
        elif tag == "pre":
            self.in_pre += 1
            self._block()
        elif tag in _BLOCK or tag == "li":
            self._block()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed") and self.drop_tag is None:
            self.scripts += tag == "script"
            self.iframes += tag != "script"
            return
        self.handle_starttag(tag, attrs)
        if tag not in ("img", "br", "hr") and tag in _DROP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag:
                self.drop_depth -= 1
                if self.drop_depth == 0:
                    self.drop_tag = None
            return
        if self.tables and tag in ("td", "th"):
            self._end_cell()
        elif self.tables and tag == "tr":
            self._end_row()
        elif self.tables and tag == "table":
            self._end_table()
        elif tag == "pre":
            self.in_pre = max(0, self.in_pre - 1)
            self._block()
        elif tag in _BLOCK:
            self._block()

    def handle_data(self, data: str) -> None:
        if self.drop_tag is not None:
            return
        if self.tables:
            table = self.tables[-1]
            if table.cell is not None:
                table.cell.append(data)
            elif table.row is None and data.strip():
                table.caption.append(data)
            return
        if self.in_pre:
            self._text(data, raw=True)
        else:
            self._text(re.sub(r"\s+", " ", data))

    # helpers ---------------------------------------------------------------------------
    def _img(self, attrs: dict[str, str | None]) -> None:
        src = (attrs.get("src") or "").strip()
        alt = (attrs.get("alt") or "").strip()
        label = f": {alt[:80]}" if alt else ""
        if src.lower().startswith("data:"):
            if len(self.images) >= MAX_IMAGES:
                self._inline(f"[image{label}: not kept, more than {MAX_IMAGES} images]")
                return
            parsed = parse_data_uri(src, MAX_DATA_URI_CHARS)
            if parsed is None:
                self._inline(f"[image{label}: unsupported or invalid data: URI, not kept]")
                return
            self.images.append(parsed)
            self._inline(f"[image {len(self.images)}{label}]")
        elif src:
            if len(self.remote) < 20:
                self.remote.append(src)
            where = "remote" if re.match(r"^(?:https?:)?//", src, re.IGNORECASE) else "linked"
            self._inline(f"[image{label}: {where} {src[:100]!r}, not fetched]")

    def _inline(self, text: str) -> None:
        if self.tables and self.tables[-1].cell is not None:
            self.tables[-1].cell.append(text)
        else:
            self._text(text)

    def _end_cell(self) -> None:
        table = self.tables[-1]
        if table.cell is None:
            return
        if table.row is None:
            table.row = []
        text = " ".join("".join(table.cell).split())
        if len(text) > MAX_CELL_CHARS:
            text = text[: MAX_CELL_CHARS - 1] + "…"
        table.row.append(text.replace("|", "\\|"))
        table.cell = None

    def _end_row(self) -> None:
        table = self.tables[-1]
        if table.cell is not None:
            self._end_cell()
        if table.row is None:
            return
        table.max_cols = max(table.max_cols, len(table.row))
        table.total_rows += 1
        if len(table.rows) < MAX_TABLE_ROWS:
            table.rows.append((table.row_header, table.row))
        table.row = None

    def _end_table(self) -> None:
        table = self.tables[-1]
        if table.row is not None:
            self._end_row()
        self.tables.pop()
        rendered = table.render(max(200, self.max_chars * 3 // 4 - self.size))
        if self.tables and self.tables[-1].cell is not None:  # nested table: flatten into cell
            flat = "; ".join(", ".join(cells) for _, cells in table.rows)
            self.tables[-1].cell.append(flat.replace("\\|", "|"))
            return
        self.table_chars += len(rendered)
        self.table_count += 1
        self._block()
        self._text(rendered, raw=True)
        self._block()

    def _block(self) -> None:
        if self.out and not self.out[-1].endswith("\n"):
            self.out.append("\n")

    def _text(self, text: str, raw: bool = False) -> None:
        if not text or self.size > self.max_chars * 2:
            return  # enough text collected; keep parsing for images and counts
        if not raw and self.out and self.out[-1].endswith((" ", "\n")) and text.startswith(" "):
            text = text.lstrip(" ")
            if not text:
                return
        self.out.append(text)
        self.size += len(text)

    def result(self) -> str:
        while self.tables:  # unclosed tables
            self._end_table()
        lines = [line.rstrip() for line in "".join(self.out).splitlines()]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()
