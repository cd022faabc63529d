"""Vega-Lite / Altair charts: detect, extract from HTML, render to PNG, summarise.

Rendering uses vl-convert (no browser). Remote and local data are never loaded: specs
that name a data URL are refused up front, and vl-convert is called with
``allowed_base_urls=[]`` as a second guard. vl-convert aborts the whole process on a huge
canvas, so the chart's size is measured from its SVG first and the scale is lowered to keep
the PNG within a pixel cap.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

from jupyter_ai_vision.errors import RenderError

#: Vega-Lite output mimes: ``application/vnd.vegalite.v3..v6+json`` and Altair 6's
#: ``application/vnd.vegalite.v6.json``.
VEGALITE_MIME = re.compile(r"^application/vnd\.vegalite\.v([3-6])(?:\+json|\.json)$")

#: Default pixel cap for a rendered chart (the image budget downscales afterwards).
MAX_RENDER_PIXELS = 16_000_000
#: Longest edge allowed for a rendered chart.
MAX_RENDER_EDGE = 8192
#: Largest ``sequence`` data generator rendered (a huge one would hang the renderer).
MAX_SEQUENCE_ROWS = 1_000_000
#: HTML larger than this is not searched for a spec (a spec with huge inline data).
MAX_HTML_CHARS = 20_000_000

_COMPOSITE_KEYS = ("layer", "hconcat", "vconcat", "concat", "facet", "repeat")
_SPEC_KEYS = ("mark", *_COMPOSITE_KEYS)
_SCHEMA_VERSION = re.compile(r"vega-lite/v(\d+)(?:\.(\d+))?")
# vl-convert is a single embedded JS runtime: serialise calls from executor threads.
_LOCK = threading.Lock()


def is_vegalite_mime(mime: str) -> bool:
    """True for any Vega-Lite output mime (v3..v6, ``+json`` or Altair 6's ``.json``)."""
    return VEGALITE_MIME.match(mime) is not None


def spec_from_html(html: str) -> dict[str, Any] | None:
    """The Vega-Lite spec embedded in Altair's HTML output (for vega-embed), or None.

    Handles the notebook ``html`` renderer (``})({spec}, {embedOpt})``), ``chart.to_html()``
    (``var spec = {...}``) and other pages that pass a JSON spec literal to vega-embed.
    """
    if len(html) > MAX_HTML_CHARS or "vega" not in html.lower():
        return None
    for script in _script_bodies(html):
        if "vega" not in script.lower():
            continue
        for obj in _json_objects(script):
            if _looks_like_vegalite(obj):
                return obj
    return None


def render_vegalite(
    spec: dict[str, Any],
    *,
    scale: float = 1.0,
    vl_version: str | None = None,
    max_pixels: int = MAX_RENDER_PIXELS,
) -> bytes:
    """Render a Vega-Lite spec to PNG bytes, never loading remote or local data.

    Raises :class:`RenderError` (one line) for data URLs, invalid specs or renderer errors.
    """
    if not isinstance(spec, dict):
        raise RenderError("Vega-Lite spec is not a JSON object; expected a chart spec dict")
    reason = unsafe_reason(spec)
    if reason is not None:
        raise RenderError(f"chart not rendered: {reason}")
    import vl_convert as vlc

    version = vl_version or _vl_version(spec, vlc)
    try:
        with _LOCK:
            # Same result as vegalite_to_png (which renders this SVG too), but the size is
            # known before rasterising: a huge canvas aborts the process inside vl-convert.
            svg = vlc.vegalite_to_svg(_clamped(spec), vl_version=version, allowed_base_urls=[])
            if _EXTERNAL.search(svg):
                raise RenderError("chart not rendered: it references external images or files")
            scale = _safe_scale(svg, scale, max_pixels)
            return bytes(vlc.svg_to_png(svg, scale=scale))
    except RenderError:
        raise
    except Exception as exc:  # vl-convert raises ValueError / plain Exception
        raise RenderError(f"chart not rendered: Vega-Lite error: {_first_line(exc)}") from None


def find_data_url(spec: Any) -> str | None:
    """The first ``url`` of a data source anywhere in the spec (layers, lookups...), or None."""
    for node in _walk(spec):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            return str(data["url"])
    return None


def unsafe_reason(spec: Any) -> str | None:
    """Why rendering ``spec`` could load something from outside the spec, or None if it cannot.

    Data URLs are refused (``allowed_base_urls=[]`` blocks remote ones but not every local
    path). Image marks are refused too: vl-convert loads their pictures from any URL or local
    file even with ``allowed_base_urls=[]`` (measured with vl-convert 1.9).
    """
    url = find_data_url(spec)
    if url is not None:
        return (
            f"its data is loaded from {_short(url)}, which is never fetched; embed the data "
            "in the chart (e.g. alt.Chart(dataframe)) to let the AI see it"
        )
    for node in _walk(spec):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("sequence"), dict):
            rows = _sequence_rows(data["sequence"])
            if rows is None or rows > MAX_SEQUENCE_ROWS:
                return (
                    f"its data sequence generator makes too many rows (limit {MAX_SEQUENCE_ROWS:,}); "
                    "use a shorter sequence"
                )
        if _mark(node.get("mark")) == "image" or (
            isinstance(node.get("encoding"), dict) and "url" in node["encoding"]
        ):
            return (
                "it uses image marks, whose pictures would be loaded from URLs or files "
                "(never done); charts with other marks are rendered"
            )
    return None


def _sequence_rows(seq: dict[str, Any]) -> float | None:
    """Rows a ``{"sequence": {start, stop, step}}`` generator makes (None: not numbers)."""
    start, stop, step = seq.get("start", 0), seq.get("stop"), seq.get("step", 1)
    if not all(isinstance(v, int | float) for v in (start, stop, step)) or step == 0:
        return None
    return max(0.0, (stop - start) / step)


def summarize_spec(spec: dict[str, Any], *, max_chars: int = 1200) -> str:
    """One short paragraph: title, mark, encodings (channel -> field:type), rows, transforms."""
    if not isinstance(spec, dict):
        return "Vega-Lite chart (unreadable spec)"
    lines = [_summarize_view(spec, spec, depth=0)]
    text = "\n".join(line for line in lines if line)
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


# --- summary helpers -------------------------------------------------------------------

_TYPE_ABBR = {"quantitative": "Q", "nominal": "N", "ordinal": "O", "temporal": "T"}


def _summarize_view(view: dict[str, Any], root: dict[str, Any], depth: int) -> str:
    parts: list[str] = []
    title = _title(view.get("title"))
    head = "Vega-Lite chart" if depth == 0 else "view"
    if title:
        head += f" {title!r}"
    mark = _mark(view.get("mark"))
    if mark:
        head += f": {mark}"
    parts.append(head)
    enc = _encodings(view.get("encoding"))
    if enc:
        parts.append("encodings " + ", ".join(enc))
    rows = _row_count(view.get("data"), root)
    if rows is not None:
        parts.append(f"{rows} inline data rows")
    transforms = view.get("transform")
    if isinstance(transforms, list) and transforms:
        names = [next(iter(t), "?") for t in transforms if isinstance(t, dict)]
        parts.append("transforms " + ", ".join(names))
    if depth == 0:
        size = [f"{k} {view[k]}" for k in ("width", "height") if isinstance(view.get(k), int)]
        if size:
            parts.append(", ".join(size))
    text = "; ".join(parts)
    for key in _COMPOSITE_KEYS:
        if key not in view:
            continue
        sub = view[key]
        if key in ("facet", "repeat"):
            text += (
                f"; faceted by {_facet(sub)}"
                if key == "facet"
                else f"; repeated over {_repeat(sub)}"
            )
            children = [view["spec"]] if isinstance(view.get("spec"), dict) else []
        else:
            children = sub if isinstance(sub, list) else []
            text += f"; {len(children)} {key} views"
        if depth < 2:
            indent = "\n" + "  " * (depth + 1) + "- "
            for child in children[:8]:
                if isinstance(child, dict):
                    text += indent + _summarize_view(child, root, depth + 1)
            if len(children) > 8:
                text += indent + f"… {len(children) - 8} more"
    return text


def _facet(facet: Any) -> str:
    if isinstance(facet, dict) and "field" in facet:
        return _field(facet)
    return ", ".join(_encodings(facet)) or "a field"


def _repeat(repeat: Any) -> str:
    if isinstance(repeat, list):
        return ", ".join(str(r) for r in repeat[:10])
    if isinstance(repeat, dict):
        return "; ".join(
            f"{k} [{', '.join(str(r) for r in v[:10])}]"
            for k, v in repeat.items()
            if isinstance(v, list)
        )
    return "fields"


def _title(title: Any) -> str:
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    return str(title)[:120] if title else ""


def _mark(mark: Any) -> str:
    if isinstance(mark, dict):
        mark = mark.get("type")
    return str(mark) if mark else ""


def _encodings(encoding: Any) -> list[str]:
    if not isinstance(encoding, dict):
        return []
    out = []
    for channel, defn in list(encoding.items())[:16]:
        if isinstance(defn, list):  # e.g. tooltip lists
            fields = [_field(d) for d in defn if isinstance(d, dict)]
            out.append(f"{channel} -> [{', '.join(f for f in fields if f)}]")
        elif isinstance(defn, dict):
            desc = _field(defn)
            if desc:
                out.append(f"{channel} -> {desc}")
    return out


def _field(defn: dict[str, Any]) -> str:
    name = defn.get("field") or defn.get("aggregate") and f"{defn['aggregate']}()"
    if isinstance(name, dict):  # repeat reference
        name = "repeat:" + str(next(iter(name.values()), ""))
    if not name:
        if "value" in defn:
            return f"value {str(defn['value'])[:30]}"
        return ""
    text = str(name)[:60]
    if defn.get("aggregate") and defn.get("field"):
        text = f"{defn['aggregate']}({text})"
    if defn.get("timeUnit"):
        text = f"{defn['timeUnit']}({text})"
    typ = defn.get("type")
    if isinstance(typ, str):
        text += f":{_TYPE_ABBR.get(typ, typ)}"
    return text


def _row_count(data: Any, root: dict[str, Any]) -> int | None:
    if not isinstance(data, dict):
        return None
    values = data.get("values")
    if isinstance(values, list):
        return len(values)
    name = data.get("name")
    datasets = root.get("datasets")
    if (
        isinstance(name, str)
        and isinstance(datasets, dict)
        and isinstance(datasets.get(name), list)
    ):
        return len(datasets[name])
    return None


# --- rendering helpers -----------------------------------------------------------------


def _vl_version(spec: dict[str, Any], vlc: Any) -> str | None:
    """The vl-convert library version closest to the spec's ``$schema`` (None = latest)."""
    match = _SCHEMA_VERSION.search(str(spec.get("$schema", "")))
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    try:
        available = [tuple(int(p) for p in v.split(".")) for v in vlc.get_vegalite_versions()]
    except Exception:
        return None
    same_major = sorted(v for v in available if v[0] == major)
    if not same_major:
        # v3/v4 specs render with the oldest v5 library; newer majors with the latest.
        older = sorted(v for v in available if v[0] > major)
        return ".".join(map(str, older[0])) if older else None
    best = [v for v in same_major if v[1] <= minor] or same_major
    return ".".join(map(str, best[-1]))


_SVG_SIZE = re.compile(r'<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"')
# Vega's SVG holds <image> only for image marks (refused earlier); never let resvg load one.
_EXTERNAL = re.compile(
    r"<image\b|<use\b[^>]*href=\"(?!#)|<style\b"
    r"|\s(?:fill|stroke|clip-path|mask|filter|marker-\w+|style|cursor)=\"[^\"]*url\(\s*['\"]?(?!#)",
    re.IGNORECASE,
)
#: Largest width/height/step a chart may ask for (larger values are clamped before rendering;
#: Vega's own layout of a 40000-px axis takes seconds).
MAX_VIEW_EDGE = 2000
MAX_STEP = 50


def _clamped(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with every explicit width/height/step clamped (data rows shared)."""

    def clamp(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("values", "datasets"):
                    out[k] = v  # inline data: not copied
                elif k in (
                    "width",
                    "height",
                    "continuousWidth",
                    "continuousHeight",
                    "discreteWidth",
                    "discreteHeight",
                ) and isinstance(v, int | float):
                    out[k] = min(v, MAX_VIEW_EDGE)
                elif k == "step" and isinstance(v, int | float):
                    out[k] = min(v, MAX_STEP)
                else:
                    out[k] = clamp(v, k)
            return out
        if isinstance(node, list):
            return [clamp(v, key) for v in node]
        return node

    return clamp(spec, None)  # type: ignore[no-any-return]


def _safe_scale(svg: str, scale: float, cap: int) -> float:
    """Lower ``scale`` so the PNG stays within ``cap`` pixels and MAX_RENDER_EDGE."""
    match = _SVG_SIZE.search(svg[:4000])
    if not match:
        raise RenderError("chart not rendered: the renderer produced no sized image")
    width, height = float(match.group(1)), float(match.group(2))
    if width <= 0 or height <= 0:
        raise RenderError("chart not rendered: it has an empty canvas (width or height 0)")
    fit = min((cap / (width * height)) ** 0.5, MAX_RENDER_EDGE / max(width, height))
    return min(scale, fit)


# --- HTML extraction helpers -----------------------------------------------------------

_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def _script_bodies(html: str) -> Iterator[str]:
    for match in _SCRIPT.finditer(html):
        yield match.group(1)


_OBJECT_START = re.compile(r'\{\s*["}]')
#: Failed parse attempts per script before giving up (each failure costs O(position) in
#: the json module, so unbounded attempts would be quadratic on hostile input).
_MAX_ATTEMPTS = 50


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """JSON object literals in ``text`` (JS source), outermost first, skipping nested ones.

    Only ``{"`` / ``{}`` starts are tried: JS blocks (``{ var x ...``) are skipped unparsed.
    """
    decoder = json.JSONDecoder()
    failures = 0
    match = _OBJECT_START.search(text)
    while match is not None and failures < _MAX_ATTEMPTS:
        try:
            obj, end = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):  # JS code, or absurdly deep nesting
            failures += 1
            match = _OBJECT_START.search(text, match.start() + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        match = _OBJECT_START.search(text, end)


def _looks_like_vegalite(obj: dict[str, Any]) -> bool:
    schema = obj.get("$schema")
    if isinstance(schema, str):
        return "vega-lite" in schema
    return any(key in obj for key in _SPEC_KEYS)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in a spec, skipping inline data rows (``values``, ``datasets``)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(
                v
                for k, v in item.items()
                if isinstance(v, (dict, list)) and k not in ("values", "datasets")
            )
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _short(url: str) -> str:
    return repr(url if len(url) <= 80 else url[:77] + "...")
