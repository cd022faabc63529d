"""Plotly figures: a readable text summary of the figure JSON.

Rendering Plotly to PNG needs kaleido and a Chrome, so the builder sends an ``image/png``
from the output bundle when there is one, and this summary otherwise (and as a caption).
"""

from __future__ import annotations

import json
import re
from typing import Any

from jupyter_ai_vision.limits import json_depth_exceeds

#: Mime of Plotly's figure JSON in notebook outputs.
PLOTLY_MIME = "application/vnd.plotly.v1+json"

_MAX_TRACES = 20
# Keys that hold a trace's data points, in preference order.
_POINT_KEYS = ("x", "y", "z", "values", "labels", "r", "theta", "lat", "lon", "a", "b", "ids")


def summarize_figure(fig: dict[str, Any], *, max_chars: int = 1500) -> str:
    """Trace types, names, point counts, title, axis titles and layout size, in a few lines."""
    if not isinstance(fig, dict):
        return "Plotly figure (unreadable JSON)"
    data = fig.get("data")
    layout = fig.get("layout") if isinstance(fig.get("layout"), dict) else {}
    traces = data if isinstance(data, list) else []
    assert isinstance(layout, dict)

    head = "Plotly figure"
    title = _text(layout.get("title"))
    if title:
        head += f" {title!r}"
    head += f": {len(traces)} trace" + ("" if len(traces) == 1 else "s")
    size = [
        f"{k} {layout[k]}" for k in ("width", "height") if isinstance(layout.get(k), int | float)
    ]
    if size:
        head += f" ({', '.join(size)})"
    lines = [head]
    axes = _axes(layout)
    if axes:
        lines.append("axes: " + "; ".join(axes))
    for index, trace in enumerate(traces[:_MAX_TRACES]):
        if isinstance(trace, dict):
            lines.append(f"- {_trace(index, trace)}")
    if len(traces) > _MAX_TRACES:
        lines.append(f"- … {len(traces) - _MAX_TRACES} more traces")
    text = "\n".join(lines)
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def figure_from_html(html: str) -> dict[str, Any] | None:
    """The figure JSON (``{"data", "layout"}``) that Plotly's HTML output passes to
    ``Plotly.newPlot(id, data, layout, config)``, or None."""
    match = _NEW_PLOT.search(html)
    if not match:
        return None
    decoder = json.JSONDecoder()
    pos = match.end()
    try:
        _, pos = decoder.raw_decode(html, pos)  # the div id
        values = []
        for _ in range(2):
            pos = _skip_comma(html, pos)
            value, pos = decoder.raw_decode(html, pos)
            values.append(value)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
        return None
    data, layout = values
    if not isinstance(data, list) or not isinstance(layout, dict):
        return None
    if json_depth_exceeds(values):  # the snapshot's bound, for JSON found inside HTML
        return None
    return {"data": data, "layout": layout}


_NEW_PLOT = re.compile(r"Plotly\.newPlot\(\s*")


def _skip_comma(text: str, pos: int) -> int:
    match = re.compile(r"\s*,\s*").match(text, pos)
    if not match:
        raise ValueError("expected a comma")
    return match.end()


def _trace(index: int, trace: dict[str, Any]) -> str:
    kind = str(trace.get("type") or "scatter")
    mode = trace.get("mode")
    desc = f"trace {index}: {kind}"
    if isinstance(mode, str) and kind.startswith("scatter"):
        desc += f" ({mode})"
    name = trace.get("name")
    if isinstance(name, str) and name:
        desc += f" {name[:60]!r}"
    points = _points(trace)
    if points is not None:
        desc += f", {points} points"
    if trace.get("visible") in (False, "legendonly"):
        desc += ", hidden"
    return desc


def _points(trace: dict[str, Any]) -> int | None:
    counts = [n for key in _POINT_KEYS if (n := _length(trace.get(key))) is not None]
    if not counts:
        return None
    if trace.get("type") in ("heatmap", "surface", "contour") and _length(trace.get("z")):
        z = trace["z"]
        if isinstance(z, list) and z and isinstance(z[0], list):
            return sum(len(row) for row in z if isinstance(row, list))
    return max(counts)


def _length(value: Any) -> int | None:
    """Length of a data array; plotly >= 6 may store numpy arrays as typed ``{dtype, bdata}``."""
    if isinstance(value, list | tuple):
        return len(value)
    if isinstance(value, dict) and "bdata" in value:
        shape = value.get("shape")
        if isinstance(shape, str | list):
            return _shape_size(shape.split(",") if isinstance(shape, str) else shape)
        return _typed_length(value)
    return None


_DIM = re.compile(r"\s*[0-9]{1,9}\s*")  # ASCII digits only: int() refuses "²" and 5,000 digits
_MAX_POINTS = 10**12  # a larger product is not a real array: shown as unknown


def _shape_size(parts: list[Any]) -> int | None:
    """Elements of a typed array from its ``shape`` ("3, 4" or [3, 4]); None when unusable."""
    total = 1
    for part in parts[:32]:
        if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < 10**9:
            total *= part
        elif isinstance(part, str) and _DIM.fullmatch(part):
            total *= int(part)
        else:
            return None
        if total > _MAX_POINTS:
            return None
    return total if len(parts) <= 32 else None


_DTYPE_SIZE = {"i1": 1, "u1": 1, "i2": 2, "u2": 2, "i4": 4, "u4": 4, "f4": 4, "f8": 8}


def _typed_length(value: dict[str, Any]) -> int | None:
    size = _DTYPE_SIZE.get(str(value.get("dtype")))
    bdata = value.get("bdata")
    if not size or not isinstance(bdata, str):
        return None
    padding = bdata[-2:].count("=")
    return (len(bdata) * 3 // 4 - padding) // size


def _axes(layout: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(layout):
        if not key.startswith(("xaxis", "yaxis", "zaxis")) or not isinstance(layout[key], dict):
            continue
        axis = layout[key]
        desc = _text(axis.get("title"))
        if axis.get("type") in ("log", "date", "category"):
            desc += f" [{axis['type']}]"
        if desc:
            out.append(f"{key} {desc!r}" if not desc.endswith("]") else f"{key} {desc}")
    scene = layout.get("scene")
    if isinstance(scene, dict):
        for key in ("xaxis", "yaxis", "zaxis"):
            axis = scene.get(key)
            if isinstance(axis, dict) and _text(axis.get("title")):
                out.append(f"scene.{key} {_text(axis.get('title'))!r}")
    return out[:8]


def _text(title: Any) -> str:
    if isinstance(title, dict):
        title = title.get("text")
    return str(title)[:120] if title else ""
