"""What of a Plotly figure may reach the browser: a copy with every resource reference removed.

A figure spec comes from an untrusted notebook. plotly.js loads resources from a few places
(found in plotly.js's own schema, ``Plotly.PlotSchema.get()``, plotly.js 3):

- ``layout.images[].source`` (also inside ``layout.template.layout``) and the ``image`` trace's
  ``source``: plotly.js loads any URL or path there into the chart (measured: kaleido as shipped
  drew a local PNG named by ``file://`` and by a plain path, and fetched a 127.0.0.1 URL);
- geo subplots (``scattergeo``, ``choropleth``) fetch topojson from ``config.topojsonURL``
  (a CDN by default); map/mapbox subplots fetch styles, tiles and ``layers[].source``;
- ``config`` (``topojsonURL``, ``mapboxAccessToken``, ``plotlyServerURL``) and ``frames``;
- CSS ``url(...)`` inside pseudo-HTML ``style`` attributes of text labels.

So only ``data`` and ``layout`` are kept; images keep only inline raster ``data:`` sources;
geo and map figures are not rendered at all (they would be blank without their remote data:
the text summary describes them); ``url(`` / ``@import`` in any string is defused. This is the
first of three layers: the page's Content-Security-Policy and the browser's disabled network
(``_browser.py``) would stop a reference missed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jupyter_ai_vision.errors import ChartRefused

#: Trace types drawn on a geo or map subplot: they need topojson, styles or tiles from the
#: internet (never fetched), so they keep their text summary.
REMOTE_TRACE_TYPES = frozenset(
    {
        "scattergeo",
        "choropleth",
        "scattermapbox",
        "choroplethmapbox",
        "densitymapbox",
        "scattermap",
        "choroplethmap",
        "densitymap",
    }
)
#: Layout keys of geo / map subplots (``geo``, ``geo2``, ``mapbox``, ``map3``...).
_REMOTE_SUBPLOT = re.compile(r"^(?:geo|mapbox|map)\d*$")
#: The only image sources kept: inline rasters (plotly.js decodes them itself, no request).
_INLINE_RASTER = re.compile(r"^\s*data:image/(?:png|jpeg|jpg|gif|webp)[;,]", re.IGNORECASE)
#: CSS that loads something: ``url(...)``, ``image-set(...)``, ``@import``.
_CSS_LOAD = re.compile(r"url\s*\(|image-set\s*\(|@import", re.IGNORECASE)
#: Deepest nesting walked (plotly specs are shallow; a deeper one is refused, not recursed).
MAX_DEPTH = 64


@dataclass
class SafeFigure:
    """The figure the browser may see, and one line per thing that was left out."""

    figure: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def sanitize_figure(fig: Any) -> SafeFigure:
    """A copy of ``fig`` (Plotly figure JSON) with nothing in it that could load a resource.

    Raises :class:`ChartRefused` (one line) for what is not rendered at all: not a figure, geo
    and map charts, absurd nesting.
    """
    if not isinstance(fig, dict) or not isinstance(fig.get("data", []), list):
        raise ChartRefused("Plotly output is not a figure (expected data and layout)")
    layout = fig.get("layout", {})
    if not isinstance(layout, dict):
        layout = {}
    traces = [t for t in fig.get("data") or [] if isinstance(t, dict)]
    remote = sorted({str(t.get("type")) for t in traces} & REMOTE_TRACE_TYPES)
    if remote:
        raise ChartRefused(
            f"{', '.join(remote)} chart not drawn: it needs map data or tiles from the "
            "internet, which is never fetched (described as text)"
        )
    notes: list[str] = []
    clean_traces = [_clean_trace(t, notes) for t in traces]
    clean_layout = _clean_layout(layout, notes)
    return SafeFigure({"data": clean_traces, "layout": clean_layout}, _dedupe(notes))


def _clean_trace(trace: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    out = _defused(trace, notes)
    if "source" in out and not _is_inline_raster(out["source"]):
        del out["source"]  # an image trace loads this URL / path itself
        notes.append("an image trace's picture from a URL or file was left out (never loaded)")
    return out


def _clean_layout(layout: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    out = _defused(layout, notes)
    for key in [k for k in out if _REMOTE_SUBPLOT.match(k)]:
        del out[key]  # no trace draws on it (those are refused): nothing to fetch for
    _keep_inline_images(out, notes)
    template = out.get("template")
    if isinstance(template, dict):
        inner = template.get("layout")
        if isinstance(inner, dict):
            for key in [k for k in inner if _REMOTE_SUBPLOT.match(k)]:
                del inner[key]
            _keep_inline_images(inner, notes)
        data = template.get("data")
        if isinstance(data, dict):  # {"bar": [trace defaults, ...], ...}
            for kind, defaults in list(data.items()):
                if kind in REMOTE_TRACE_TYPES or not isinstance(defaults, list):
                    del data[kind]
                    continue
                data[kind] = [_clean_trace(d, notes) for d in defaults if isinstance(d, dict)]
    return out


def _keep_inline_images(layout: dict[str, Any], notes: list[str]) -> None:
    images = layout.get("images")
    if images is None:
        return
    items = images if isinstance(images, list) else []
    kept = [i for i in items if isinstance(i, dict) and _is_inline_raster(i.get("source"))]
    dropped = len(items) - len(kept) if isinstance(images, list) else 1
    layout["images"] = kept
    if dropped:
        noun = "image" if dropped == 1 else "images"
        notes.append(f"{dropped} layout {noun} from URLs or files left out (never loaded)")


def _is_inline_raster(source: Any) -> bool:
    return isinstance(source, str) and bool(_INLINE_RASTER.match(source))


def _defused(value: Any, notes: list[str], depth: int = 0) -> Any:
    """A deep copy in which no string can make CSS load something."""
    if depth > MAX_DEPTH:
        raise ChartRefused(f"Plotly figure nested deeper than {MAX_DEPTH} levels: not rendered")
    if isinstance(value, dict):
        return {str(k): _defused(v, notes, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_defused(v, notes, depth + 1) for v in value]
    if isinstance(value, str) and _CSS_LOAD.search(value):
        notes.append("CSS url()/@import in the figure's text was defused (never loaded)")
        return _CSS_LOAD.sub("[removed]", value)
    return value


def _dedupe(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))
