"""Visual extraction: walk a notebook snapshot's cells and outputs, in order.

Produces a flat list of slots: :class:`~jupyter_ai_vision.context.parts.TextPart` (cell headers,
sources, text outputs, errors, chart summaries) and :class:`ImageCandidate` (an image still
to be decoded / rendered / normalised by the builder), plus one-line :class:`SkippedItem`
notes for whatever cannot be used. Cheap and single-threaded: nothing here decodes pixels or
renders charts (the builder does that, only for the images it will send).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from jupyter_ai_vision._text import clean_text, fence, one_line, short, strip_ansi
from jupyter_ai_vision.context.parts import Kind, Provenance, SkippedItem, TextPart
from jupyter_ai_vision.context.snapshot import NOTES_KEY
from jupyter_ai_vision.errors import MarkdownImageError
from jupyter_ai_vision.limits import loads_json
from jupyter_ai_vision.mimes import (
    BOKEH_EXEC_MIME,
    PLOTLY_MIME,
    RASTER_MIMES,
    SCRIPT_ONLY_MIMES,
    SVG_MIME,
)

# Text limits (characters): enough to understand a cell, bounded so that one noisy output
# cannot crowd out the rest of the notebook.
MAX_SOURCE_CHARS = 4000
MAX_TEXT_CHARS = 2000
MAX_STREAM_CHARS = 2000
MAX_ERROR_CHARS = 3000
MAX_HTML_CHARS = 3000


SourceKind = Literal["base64", "bytes", "svg", "vega", "plotly", "bokeh"]


@dataclass
class ImageCandidate:
    """An image the notebook shows, not yet decoded: the builder materialises it.

    ``source`` says how: ``base64`` (payload: str or list of lines, ``mime`` raster),
    ``bytes`` (payload: raw bytes of ``mime``, which may be SVG), ``svg`` (payload: SVG text),
    ``vega`` (payload: a Vega-Lite spec dict), ``plotly`` (payload: Plotly figure JSON),
    ``bokeh`` (payload: a :class:`~jupyter_ai_vision.media.charts.bokeh.BokehDoc`); the last
    two are drawn by the chart browser (``media/charts``) when there is one.
    """

    provenance: Provenance
    source: SourceKind
    payload: Any
    mime: str
    caption: str | None = None

    @property
    def cell_index(self) -> int | None:
        return self.provenance.cell_index


Slot = TextPart | ImageCandidate


@dataclass
class Extraction:
    slots: list[Slot] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


def extract(
    cells: list[dict[str, Any]],
    *,
    notebook_dir: Path | None = None,
    root_dir: Path | None = None,
    include_sources: bool = True,
    focus_cell_index: int | None = None,
    numbers: Sequence[int] | None = None,
) -> Extraction:
    """Walk ``cells`` (snapshot cell dicts) into text slots and image candidates.

    ``focus_cell_index`` is a position in ``cells``; ``numbers`` (a window of a bigger
    notebook) are the cells' indexes in the whole notebook, used for every label."""
    result = Extraction()
    for position, cell in enumerate(cells):
        index = numbers[position] if numbers is not None else position
        walker = _CellWalker(
            result, index, cell, notebook_dir=notebook_dir, root_dir=root_dir or notebook_dir
        )
        walker.walk(include_sources=include_sources, focused=position == focus_cell_index)
    return result


class _CellWalker:
    def __init__(
        self,
        result: Extraction,
        index: int,
        cell: dict[str, Any],
        *,
        notebook_dir: Path | None,
        root_dir: Path | None,
    ) -> None:
        self.result = result
        self.index = index
        self.cell = cell
        self.notebook_dir = notebook_dir
        self.root_dir = root_dir
        self.cell_id = cell.get("id")
        self.execution_count = cell.get("execution_count")

    # --- helpers --------------------------------------------------------------------------

    def prov(
        self, kind: Kind, output_index: int | None = None, mime: str | None = None
    ) -> Provenance:
        return Provenance(
            cell_index=self.index,
            cell_id=self.cell_id,
            execution_count=self.execution_count,
            output_index=output_index,
            kind=kind,
            mime=mime,
        )

    def text(self, text: str, prov: Provenance) -> None:
        self.result.slots.append(TextPart(text=text, provenance=prov))

    def image(
        self,
        prov: Provenance,
        source: SourceKind,
        payload: Any,
        mime: str,
        caption: str | None = None,
    ) -> None:
        self.result.slots.append(ImageCandidate(prov, source, payload, mime, caption))

    def skip(self, prov: Provenance, reason: str) -> None:
        self.result.skipped.append(SkippedItem(provenance=prov, reason=one_line(reason)))

    # --- cells ----------------------------------------------------------------------------

    def walk(self, *, include_sources: bool, focused: bool) -> None:
        kind = self.cell.get("cell_type") or "raw"
        header = f"## Cell {self.index} ({kind}"
        if self.cell_id:
            header += f", id {self.cell_id}"
        if self.execution_count is not None:
            header += f", execution count {self.execution_count}"
        header += ")" + (" <- the cell the user is focused on" if focused else "")
        source = self.cell.get("source") or ""
        body = ""
        if include_sources or focused:
            body = fence(clean_text(source, MAX_SOURCE_CHARS), "python" if kind == "code" else "")
        elif source.strip():
            body = "[source omitted]"
        self.text(header + ("\n" + body if body else ""), self.prov("source"))
        for note in self.cell.get(NOTES_KEY) or ():  # fields the snapshot could not use
            self.skip(self.prov("note"), note)
        if kind == "markdown":
            self.markdown_images(source)
        for j, output in enumerate(self.cell.get("outputs") or []):
            self.output(j, output)

    def markdown_images(self, source: str) -> None:
        from jupyter_ai_vision.media import markdown as mdi

        for ref in mdi.find_image_refs(source):
            if ref.kind == "attachment":
                prov = self.prov("attachment", mime=None)
                try:
                    mime, data = mdi.load_attachment(self.cell, ref.target)
                except MarkdownImageError as exc:
                    self.skip(prov, str(exc))
                    continue
                self.image(
                    replace(prov, mime=mime),
                    "bytes",
                    data,
                    mime,
                    ref.alt or None,
                )
            elif ref.kind == "remote":
                self.skip(
                    self.prov("remote-link"),
                    f"remote image {short(ref.target)} not fetched (remote links are never loaded)",
                )
            elif ref.kind == "data":
                self.data_uri_image(ref.target, self.prov("markdown-link"), ref.alt)
            else:
                self.local_image(ref.target, ref.alt)

    def data_uri_image(self, uri: str, prov: Provenance, alt: str) -> None:
        from jupyter_ai_vision.media.html import MAX_DATA_URI_CHARS
        from jupyter_ai_vision.mimes import parse_data_uri

        parsed = parse_data_uri(uri, MAX_DATA_URI_CHARS)
        if parsed is None:
            self.skip(prov, "inline data: image is invalid, too large or not png/jpeg/gif/webp/svg")
            return
        mime, data = parsed
        self.image(replace(prov, mime=mime), "bytes", data, mime, alt or None)

    def local_image(self, target: str, alt: str) -> None:
        from jupyter_ai_vision.media import markdown as mdi

        prov = self.prov("markdown-link")
        if self.notebook_dir is None or self.root_dir is None:
            self.skip(
                prov,
                f"image link {short(target)} not read: the notebook has no path to resolve it against",
            )
            return
        try:
            path = mdi.resolve_local_image(
                target, notebook_dir=self.notebook_dir, root_dir=self.root_dir
            )
            data = path.read_bytes()
        except MarkdownImageError as exc:
            self.skip(prov, str(exc))
            return
        except OSError as exc:
            self.skip(prov, f"image link {short(target)} cannot be read ({exc.strerror})")
            return
        mime = mdi.mime_for_path(path)
        self.image(replace(prov, mime=mime), "bytes", data, mime, alt or None)

    # --- outputs --------------------------------------------------------------------------

    def output(self, j: int, output: dict[str, Any]) -> None:
        kind = output.get("output_type")
        if kind == "stream":
            name = output.get("name", "stdout")
            text = clean_text(output.get("text", ""), MAX_STREAM_CHARS, keep="tail")
            self.text(f"[output {j}: {name}]\n{text}", self.prov("stream", j))
        elif kind == "error":
            self.error(j, output)
        elif kind in ("execute_result", "display_data"):
            self.display(j, output.get("data") or {})

    def error(self, j: int, output: dict[str, Any]) -> None:
        ename = str(output.get("ename", "Error"))
        evalue = str(output.get("evalue", ""))
        tb = "\n".join(str(line) for line in output.get("traceback") or [])
        text = f"[output {j}: error] {strip_ansi(ename)}: {strip_ansi(evalue)}"
        if tb:
            text += "\n" + clean_text(tb, MAX_ERROR_CHARS, keep="tail")
        self.text(text, self.prov("error", j))

    def display(self, j: int, data: dict[str, Any]) -> None:
        """One display_data / execute_result bundle: the richest representation wins."""
        from jupyter_ai_vision.media import vega

        raster = next((m for m in RASTER_MIMES if m in data), None)
        vl_mime = next((m for m in data if vega.is_vegalite_mime(m)), None)
        vg_mime = next((m for m in data if vega.is_vega_mime(m)), None)
        if vl_mime is not None:
            self.vegalite(j, data[vl_mime], vl_mime, raster, data)
        elif vg_mime is not None:
            self.vega(j, data[vg_mime], vg_mime, raster, data)
        elif PLOTLY_MIME in data:
            self.plotly(j, data[PLOTLY_MIME], raster, data)
        elif raster is not None:
            self.image(self.prov(_raster_kind(raster), j, raster), "base64", data[raster], raster)
        elif SVG_MIME in data:
            svg = data[SVG_MIME]
            self.image(
                self.prov("svg", j, SVG_MIME),
                "svg",
                svg if isinstance(svg, str) else str(svg),
                SVG_MIME,
            )
        elif "text/html" in data:
            self.html(j, str(data["text/html"]))
        elif "text/markdown" in data:
            self.text(
                f"[output {j}: markdown]\n"
                + clean_text(str(data["text/markdown"]), MAX_TEXT_CHARS),
                self.prov("text", j, "text/markdown"),
            )
        elif "text/latex" in data:
            self.text(
                f"[output {j}: latex]\n" + clean_text(str(data["text/latex"]), MAX_TEXT_CHARS),
                self.prov("text", j, "text/latex"),
            )
        elif "application/json" in data:
            dumped = json.dumps(data["application/json"], default=str)[: MAX_TEXT_CHARS + 1]
            self.text(
                f"[output {j}: json]\n" + clean_text(dumped, MAX_TEXT_CHARS),
                self.prov("text", j, "application/json"),
            )
        elif "text/plain" in data:
            self.text(
                f"[output {j}]\n" + clean_text(str(data["text/plain"]), MAX_TEXT_CHARS),
                self.prov("text", j, "text/plain"),
            )
        elif BOKEH_EXEC_MIME in data and self.bokeh(j, data.get("application/javascript")):
            pass  # show(p): the document is drawn; its <div> is the output before
        elif data and set(data) <= SCRIPT_ONLY_MIMES:
            pass  # a JavaScript loader (e.g. BokehJS): nothing visual of its own, nothing lost
        else:
            mimes = ", ".join(sorted(data)) or "nothing"
            self.skip(
                self.prov("text", j), f"output {j}: no readable representation ({short(mimes)})"
            )

    def vegalite(
        self, j: int, spec: Any, mime: str, raster: str | None, data: dict[str, Any]
    ) -> None:
        from jupyter_ai_vision.media import vega

        spec = _json_spec(spec)
        prov = self.prov("vega-lite", j, mime)
        if not isinstance(spec, dict):
            self.skip(prov, f"output {j}: Vega-Lite output is not a JSON spec")
            return
        summary = vega.summarize_spec(spec)
        self.text(f"[output {j}: Vega-Lite chart] {summary}", prov)
        if raster is not None:  # e.g. Altair's png renderer: the picture is already there
            self.image(prov, "base64", data[raster], raster, summary)
            return
        unsafe = vega.unsafe_reason(spec)  # data URLs, image marks, huge sequences
        if unsafe is not None:
            self.skip(prov, f"chart not rendered: {unsafe}")
            return
        self.image(prov, "vega", spec, "image/png", summary)

    def vega(self, j: int, spec: Any, mime: str, raster: str | None, data: dict[str, Any]) -> None:
        """A Vega (not Vega-Lite) spec: summary text, and a render in the chart sandbox."""
        from jupyter_ai_vision.media import vega

        spec = _json_spec(spec)
        prov = self.prov("vega", j, mime)
        if not isinstance(spec, dict):
            self.skip(prov, f"output {j}: Vega output is not a JSON spec")
            return
        summary = vega.summarize_vega(spec)
        self.text(f"[output {j}: Vega chart] {summary}", prov)
        if raster is not None:
            self.image(prov, "base64", data[raster], raster, summary)
            return
        unsafe = vega.vega_unsafe_reason(spec)  # URLs (data, images) are never loaded
        if unsafe is not None:
            self.skip(prov, f"chart not rendered: {unsafe}")
            return
        self.image(prov, "vega", spec, "image/png", summary)

    def plotly(
        self, j: int, fig: Any, raster: str | None, data: dict[str, Any], mime: str = PLOTLY_MIME
    ) -> None:
        from jupyter_ai_vision.media.plotly import summarize_figure

        prov = self.prov("plotly", j, mime)
        summary = summarize_figure(fig if isinstance(fig, dict) else {})
        self.text(f"[output {j}: Plotly figure] {summary}", prov)
        if raster is not None:
            self.image(self.prov("plotly", j, raster), "base64", data[raster], raster, summary)
        elif isinstance(fig, dict):  # drawn by the chart browser, or left as this summary
            self.image(prov, "plotly", fig, "image/png", summary)

    def bokeh(self, j: int, script: Any, mime: str = BOKEH_EXEC_MIME) -> bool:
        """A Bokeh document in an output's script: its summary and a chart to draw."""
        from jupyter_ai_vision.media.charts import bokeh

        doc = bokeh.find_document(script) if isinstance(script, str) else None
        if doc is None:
            return False
        summary = bokeh.summarize(doc)
        prov = self.prov("bokeh", j, mime)
        self.text(f"[output {j}: Bokeh plot] {summary}", prov)
        self.image(prov, "bokeh", doc, "image/png", summary)
        return True

    def html(self, j: int, html: str) -> None:
        from jupyter_ai_vision.media import vega
        from jupyter_ai_vision.media.html import html_to_text
        from jupyter_ai_vision.media.plotly import figure_from_html

        spec = vega.spec_from_html(html)
        if spec is not None:  # Altair's default HTML renderer: render the embedded spec
            self.vegalite(j, spec, "text/html", None, {})
            return
        fig = figure_from_html(html) if "Plotly.newPlot" in html else None
        if fig is not None:  # Plotly's HTML output (notebook renderer, to_html)
            self.plotly(j, fig, None, {}, "text/html")
            return
        if "docs_json" in html and self.bokeh(j, html, "text/html"):  # a standalone Bokeh page
            return
        reduced = html_to_text(html, max_chars=MAX_HTML_CHARS)
        kind: Kind = "html"
        prov = self.prov(kind, j, "text/html")
        label = {"table": "table", "widget": "widget", "bokeh": "Bokeh plot"}.get(
            reduced.kind, "HTML"
        )
        self.text(f"[output {j}: {label}]\n" + clean_text(reduced.text, MAX_HTML_CHARS + 200), prov)
        for note in reduced.notes:
            self.skip(prov, f"output {j}: HTML {note}")
        for url in reduced.remote_images:
            self.skip(
                self.prov("remote-link", j), f"output {j}: remote image {short(url)} not fetched"
            )
        for mime, raw in reduced.images:
            self.image(self.prov("html", j, mime), "bytes", raw, mime)


# --- text helpers ---------------------------------------------------------------------


def _raster_kind(mime: str) -> Kind:
    return {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}[
        mime
    ]  # type: ignore[return-value]


def iter_candidates(slots: list[Slot]) -> Iterator[ImageCandidate]:
    return (s for s in slots if isinstance(s, ImageCandidate))


def _json_spec(spec: Any) -> Any:
    """A chart spec some front-ends store as JSON text, parsed with the snapshot's bounded
    depth (None when it is not JSON); anything else as it is."""
    if not isinstance(spec, str):
        return spec
    try:
        return loads_json(spec)
    except ValueError:
        return None
