"""Bokeh plots as pixels: the document JSON of a notebook's Bokeh output, drawn by BokehJS from
the server's own ``bokeh`` package (never a CDN) in the chart browser, then screenshotted
(as Bokeh's own ``export_png`` does, there through Selenium).

``show(p)`` in a notebook emits an HTML ``<div data-root-id>`` and an
``application/vnd.bokehjs_exec.v0+json`` bundle whose ``application/javascript`` holds
``const docs_json = {...}; const render_items = [...]``; a standalone page (``file_html``)
holds the same two literals in its script. Only those two JSON literals are read: the
notebook's JavaScript itself is never run.

Refused before rendering (the text summary stays): models that run code or load things
(``CustomJS*``, ``ImageURL``, tile sources, web data sources, imported style sheets,
``OpenURL``); ``url(`` / ``@import`` in any string is defused. The page's CSP (no
``unsafe-eval``: BokehJS compiles CustomJS with ``new Function``) and the browser's disabled
network are the next layers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ai_vision.errors import ChartRefused

#: BokehJS bundles loaded into the page, in order (from ``bokeh/server/static/js``).
BUNDLES = ("bokeh.min.js", "bokeh-gl.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js")
#: Largest Bokeh document accepted (characters of its JSON).
MAX_DOC_CHARS = 20_000_000
MAX_DEPTH = 200
_DOCS = re.compile(r"(?:const|var|let)\s+docs_json\s*=\s*")
_ITEMS = re.compile(r"(?:const|var|let)\s+render_items\s*=\s*")
_BY_ID = re.compile(r"docs_json\s*=\s*document\.getElementById\(['\"]([\w-]{1,100})['\"]\)")
# The opening tag only: the body ends at the next "</script>" (str.find). A lazy
# ``(.*?)</script>`` rescans to the end from every unclosed tag (quadratic).
_JSON_SCRIPT = re.compile(r'<script type="application/json" id="([\w-]{1,100})">')
_CSS_LOAD = re.compile(r"url\s*\(|image-set\s*\(|@import", re.IGNORECASE)
#: Model names that run code or load a resource when drawn.
_REFUSED = re.compile(
    r"^(?:CustomJS\w*|ImageURL\w*|\w*TileSource|TileRenderer|AjaxDataSource|"
    r"ServerSentDataSource|WebDataSource|\w*ImportedStyleSheet|OpenURL|\w*MathText|TeX|MathML|"
    r"ImageURLTexture)$"
)


@dataclass
class BokehDoc:
    """The two literals BokehJS's ``embed_items`` takes, sanitised."""

    docs_json: dict[str, Any]
    render_items: list[Any]
    notes: list[str] = field(default_factory=list)

    def docs_json_and_items(self) -> list[Any]:
        """What identifies the drawing (ids included: they are part of the document)."""
        return [self.docs_json, self.render_items]


def find_document(text: str) -> BokehDoc | None:
    """The Bokeh document in a notebook output's JavaScript or HTML, or None."""
    if not isinstance(text, str) or len(text) > MAX_DOC_CHARS or "docs_json" not in text:
        return None
    docs = _literal(text, _DOCS)
    if docs is None:  # a standalone page: docs_json = document.getElementById(ID).textContent
        docs = _json_script(text)
    items = _literal(text, _ITEMS)
    if isinstance(docs, str):  # some Bokeh versions embed the JSON as a string literal
        try:
            docs = json.loads(docs)
        except (ValueError, RecursionError):
            return None
    if not isinstance(docs, dict) or not isinstance(items, list) or not docs or not items:
        return None
    return BokehDoc(docs, items)


def sanitize(doc: BokehDoc) -> BokehDoc:
    """A copy with nothing in it that could run code or load a resource.

    Raises :class:`ChartRefused` (one line) when the plot uses a refused model.
    """
    refused: set[str] = set()
    notes: list[str] = []
    docs = _clean(doc.docs_json, refused, notes, 0)
    if refused:
        names = ", ".join(sorted(refused)[:4])
        raise ChartRefused(
            f"Bokeh plot not rendered: it uses {names}, which would run code or load files or "
            "URLs (never done; described as text)"
        )
    items = _clean(doc.render_items, refused, notes, 0)
    return BokehDoc(docs, items, list(dict.fromkeys(notes)))


def _clean(value: Any, refused: set[str], notes: list[str], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ChartRefused(f"Bokeh document nested deeper than {MAX_DEPTH} levels: not rendered")
    if isinstance(value, dict):
        name = value.get("name")
        if value.get("type") == "object" and isinstance(name, str) and _REFUSED.match(name):
            refused.add(name)
        return {str(k): _clean(v, refused, notes, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, refused, notes, depth + 1) for v in value]
    if isinstance(value, str) and _CSS_LOAD.search(value):
        notes.append("CSS url()/@import in the plot's text was defused (never loaded)")
        return _CSS_LOAD.sub("[removed]", value)
    return value


def _literal(text: str, prefix: re.Pattern[str]) -> Any:
    match = prefix.search(text)
    if match is None:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text, match.end())
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
        return None
    return value


def _json_script(text: str) -> Any:
    """The JSON in ``<script type="application/json" id=ID>`` named by ``getElementById(ID)``."""
    ref = _BY_ID.search(text)
    if ref is None:
        return None
    pos = 0
    while match := _JSON_SCRIPT.search(text, pos):
        end = text.find("</script>", match.end())
        if end == -1:
            return None  # unclosed: no later script can close either
        if match.group(1) == ref.group(1):
            try:
                return json.loads(text[match.end() : end])
            except (ValueError, RecursionError):
                return None
        pos = end + len("</script>")
    return None


def bokehjs_dir() -> Path | None:
    """BokehJS inside the server's ``bokeh`` package, or None when bokeh is not installed."""
    spec = importlib.util.find_spec("bokeh")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        js = Path(base) / "server" / "static" / "js"
        if (js / BUNDLES[0]).is_file():
            return js
    return None


def page_html(js_dir: Path, csp_meta: str) -> str:
    """The page BokehJS draws in: our CSP, BokehJS from the package, one root element."""
    scripts = "\n".join(
        f'    <script src="{(js_dir / name).as_uri()}"></script>'
        for name in BUNDLES
        if (js_dir / name).is_file()
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n    "
        + csp_meta
        + '\n    <meta charset="utf-8">\n'
        + scripts
        + '\n  </head>\n  <body style="margin:0;padding:0;background:white">'
        '<div id="root" style="display:inline-block"></div></body>\n</html>\n'
    )


#: Runs in the page with the document as *arguments* (never as code): draws it, waits for
#: two frames, returns the drawn box.
EMBED_JS = """
async function(docs, items) {
  const root = document.getElementById("root");
  for (const item of items) {
    for (const id of Object.keys(item.roots || {})) {
      const el = document.createElement("div");
      el.id = item.roots[id];
      root.appendChild(el);
    }
  }
  await Bokeh.embed.embed_items(docs, items);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const box = root.getBoundingClientRect();
  return JSON.stringify({x: box.x, y: box.y, width: box.width, height: box.height});
}
"""


def summarize(doc: BokehDoc, *, max_chars: int = 1200) -> str:
    """Plots, titles, sizes, glyphs (with point counts) and axis labels, in a few lines."""
    objects = list(_objects(doc.docs_json))
    roots = [
        o
        for d in doc.docs_json.values()
        if isinstance(d, dict)
        for o in d.get("roots") or []
        if isinstance(o, dict)
    ]
    head = "Bokeh " + (", ".join(_plot_desc(r) for r in roots[:4]) or "document")
    glyphs: dict[str, int] = {}
    for o in objects:
        if o.get("name") == "GlyphRenderer":
            glyph = _attr(o, "glyph")
            name = glyph.get("name") if isinstance(glyph, dict) else None
            if isinstance(name, str):
                glyphs[name] = glyphs.get(name, 0) + 1
    lines = [head]
    if glyphs:
        lines.append("glyphs: " + ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in glyphs.items()))
    labels = [
        str(_attr(o, "axis_label"))
        for o in objects
        if str(o.get("name", "")).endswith("Axis") and isinstance(_attr(o, "axis_label"), str)
    ]
    if labels:
        lines.append("axes: " + ", ".join(repr(label[:60]) for label in labels[:6]))
    points = [_rows(_attr(o, "data")) for o in objects if o.get("name") == "ColumnDataSource"]
    if any(points):
        lines.append("data: " + ", ".join(f"{n} rows" for n in points if n)[:200])
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _objects(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        if value.get("type") == "object":
            yield value
        for v in value.values():
            yield from _objects(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _objects(v, depth + 1)


def _attr(obj: dict[str, Any], key: str) -> Any:
    attrs = obj.get("attributes")
    return attrs.get(key) if isinstance(attrs, dict) else None


def _plot_desc(root: dict[str, Any]) -> str:
    desc = str(root.get("name") or "plot")
    title = _attr(root, "title")
    text = _attr(title, "text") if isinstance(title, dict) else title
    if isinstance(text, str) and text:
        desc += f" {text[:80]!r}"
    width, height = _attr(root, "width"), _attr(root, "height")
    if isinstance(width, int) and isinstance(height, int):
        desc += f" ({width}×{height})"
    return desc


def _rows(data: Any) -> int:
    """Rows of a ColumnDataSource's ``data`` (``{"type": "map", "entries": [[k, v], ...]}``)."""
    entries = data.get("entries") if isinstance(data, dict) else None
    for entry in entries or []:
        if isinstance(entry, list) and len(entry) == 2:
            column = entry[1]
            if isinstance(column, list):
                return len(column)
            if isinstance(column, dict) and isinstance(column.get("shape"), list):
                shape = column["shape"]
                return int(shape[0]) if shape and isinstance(shape[0], int) else 0
    return 0
