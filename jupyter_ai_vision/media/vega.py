"""Vega-Lite / Altair and Vega charts: detect, extract from HTML, render to PNG, summarise.

Rendering uses vl-convert (no browser) and only ever runs in the chart sandbox
(:mod:`.sandbox`): a spec is a program for V8, and a 300-byte one (``sequence`` + ``flatten``)
exhausts V8's heap and aborts its process, another (``tickCount: 1e6``) loops for minutes.
So every render gets a wall-clock timeout and a memory cap in a worker process that is
killed and replaced on failure; cheap checks on the spec (data sizes) are only a shortcut.

Remote and local data are never loaded: specs that name a data URL or use image marks are
refused up front (vl-convert loads image-mark URLs even with ``allowed_base_urls=[]``), and
``allowed_base_urls=[]`` is passed as a second guard. A huge canvas would make the
rasteriser allocate without bound, so the chart's size is measured from its SVG first and
the scale is lowered to keep the PNG within a pixel cap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from jupyter_ai_vision import mimes
from jupyter_ai_vision._text import quoted
from jupyter_ai_vision.errors import RenderError
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media.sandbox import Sandbox, SandboxFailure

#: Vega-Lite output mimes: ``application/vnd.vegalite.v3..v6+json`` and Altair 6's
#: ``application/vnd.vegalite.v6.json``.
VEGALITE_MIME = re.compile(r"^application/vnd\.vegalite\.v([3-6])(?:\+json|\.json)$")

#: Vega (not Vega-Lite) output mimes (the one table: :mod:`jupyter_ai_vision.mimes`).
VEGA_MIME = mimes.VEGA_MIME

#: Default pixel cap for a rendered chart (the image budget downscales afterwards).
MAX_RENDER_PIXELS = 16_000_000
#: Longest edge allowed for a rendered chart.
MAX_RENDER_EDGE = 8192
#: Largest ``sequence`` data generator rendered (a huge one would hang the renderer).
MAX_SEQUENCE_ROWS = 1_000_000
#: HTML larger than this is not searched for a spec (a spec with huge inline data).
MAX_HTML_CHARS = 20_000_000

# What a chart worker runs (see media/sandbox.py). vl-convert is imported only there.
_PROGRAM = r"""
import json, vl_convert
def warm():
    vl_convert.vegalite_to_svg(
        {"data": {"values": [{"a": 1}]}, "mark": "point", "encoding": {"x": {"field": "a"}}},
        allowed_base_urls=[],
    )
def vegalite_to_svg(data, options):
    svg = vl_convert.vegalite_to_svg(
        data.decode("utf-8"), vl_version=options.get("vl_version"), allowed_base_urls=[]
    )
    return svg.encode("utf-8")
def vega_to_svg(data, options):
    return vl_convert.vega_to_svg(data.decode("utf-8"), allowed_base_urls=[]).encode("utf-8")
def svg_to_png(data, options):
    return vl_convert.svg_to_png(data.decode("utf-8"), scale=options.get("scale", 1.0))
def versions(data, options):
    return json.dumps(vl_convert.get_vegalite_versions()).encode()
OPS = {"vegalite_to_svg": vegalite_to_svg, "vega_to_svg": vega_to_svg,
       "svg_to_png": svg_to_png, "versions": versions}
"""

#: The chart render workers (V8 + resvg): two, each under ``ImagePolicy.chart_memory_bytes``
#: of RLIMIT_DATA. V8 reserves ~35 GB of address space at start, so RLIMIT_AS cannot be used;
#: RLIMIT_DATA counts the pages it really commits (~580 MB just to start).
SANDBOX = Sandbox("chart", _PROGRAM, size=2, cap_address_space=False)

_COMPOSITE_KEYS = ("layer", "hconcat", "vconcat", "concat", "facet", "repeat")
_SPEC_KEYS = ("mark", *_COMPOSITE_KEYS)
_SCHEMA_VERSION = re.compile(r"vega-lite/v(\d+)(?:\.(\d+))?")


def is_vegalite_mime(mime: str) -> bool:
    """True for any Vega-Lite output mime (v3..v6, ``+json`` or Altair 6's ``.json``)."""
    return VEGALITE_MIME.match(mime) is not None


def is_vega_mime(mime: str) -> bool:
    """True for a Vega (not Vega-Lite) output mime, e.g. ``application/vnd.vega.v5+json``."""
    return VEGA_MIME.match(mime) is not None


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
    policy: ImagePolicy | None = None,
    deadline: float | None = None,
) -> bytes:
    """Render a Vega-Lite spec to PNG bytes in the chart sandbox, never loading remote or
    local data. ``policy`` gives the sandbox's time and memory limits; ``deadline``
    (``time.monotonic()``) bounds the whole render, waiting for a worker included.

    Raises :class:`RenderError` (one line) for data URLs, image marks, invalid specs,
    renderer errors, timeouts and crashes of the renderer.
    """
    if not isinstance(spec, dict):
        raise RenderError("Vega-Lite spec is not a JSON object; expected a chart spec dict")
    reason = unsafe_reason(spec)
    if reason is not None:
        raise RenderError(f"chart not rendered: {reason}")
    policy = policy or ImagePolicy()
    version = vl_version or _vl_version(spec, policy)
    options = {"vl_version": version} if version else {}
    svg = _call(
        "vegalite_to_svg", _spec_json(_clamped(spec)), options, policy, deadline, "Vega-Lite"
    )
    return _rasterise(svg, scale, max_pixels, policy, deadline)


def render_vega(
    spec: dict[str, Any],
    *,
    scale: float = 1.0,
    max_pixels: int = MAX_RENDER_PIXELS,
    policy: ImagePolicy | None = None,
    deadline: float | None = None,
) -> bytes:
    """Render a Vega (not Vega-Lite) spec to PNG bytes, like :func:`render_vegalite`."""
    if not isinstance(spec, dict):
        raise RenderError("Vega spec is not a JSON object; expected a chart spec dict")
    reason = vega_unsafe_reason(spec)
    if reason is not None:
        raise RenderError(f"chart not rendered: {reason}")
    policy = policy or ImagePolicy()
    svg = _call("vega_to_svg", _spec_json(_clamped(spec)), {}, policy, deadline, "Vega")
    return _rasterise(svg, scale, max_pixels, policy, deadline)


def prewarm(policy: ImagePolicy | None = None) -> None:
    """Start one chart worker (V8 warmed up) in the background."""
    SANDBOX.prewarm((policy or ImagePolicy()).chart_memory_bytes)


def _rasterise(
    svg: str, scale: float, max_pixels: int, policy: ImagePolicy, deadline: float | None
) -> bytes:
    # The size is known from the SVG before rasterising: a huge canvas would make resvg
    # allocate without bound (it aborts), so the scale is lowered to fit the pixel cap.
    if _EXTERNAL.search(svg):
        raise RenderError("chart not rendered: it references external images or files")
    options = {"scale": _safe_scale(svg, scale, max_pixels)}
    return _call("svg_to_png", svg.encode("utf-8"), options, policy, deadline, "chart")


def _call(
    op: str,
    data: str | bytes,
    options: dict[str, Any],
    policy: ImagePolicy,
    deadline: float | None,
    what: str,
) -> Any:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        out = SANDBOX.call(
            op,
            raw,
            options,
            timeout=policy.chart_timeout,
            memory_bytes=policy.chart_memory_bytes,
            deadline=deadline,
        )
    except SandboxFailure as exc:
        if exc.kind == "error":  # vl-convert raised: the spec is invalid
            raise RenderError(f"chart not rendered: {what} error: {exc.detail}") from None
        raise RenderError(f"chart not rendered: {exc.detail}") from None
    return out.decode("utf-8") if op.endswith("_svg") else out


def _spec_json(spec: dict[str, Any]) -> str:
    """The spec as JSON text for the worker. Numbers too large for a float become strings
    of JSON (``1e400`` parses as Infinity in V8): the sandbox, not Python, meets them."""
    try:
        try:
            return json.dumps(spec, default=str, allow_nan=False)
        except ValueError:  # NaN / inf in the data: JSON has no such numbers, Vega reads null
            return json.dumps(_finite(spec), default=str, allow_nan=False)
    except (ValueError, RecursionError):
        raise RenderError("chart not rendered: the spec cannot be serialised (too deep)") from None


def _finite(node: Any) -> Any:
    """``node`` with every NaN / infinite float replaced by None (iteratively: no recursion
    limit on deep specs)."""
    root: list[Any] = [node]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, node)]
    while stack:
        parent, key, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            parent[key] = None
        elif isinstance(value, dict):
            copy = dict(value)
            parent[key] = copy
            stack.extend((copy, k, v) for k, v in copy.items())
        elif isinstance(value, list):
            copy_list = list(value)
            parent[key] = copy_list
            stack.extend((copy_list, i, v) for i, v in enumerate(copy_list))
    return root[0]


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
            f"its data is loaded from {quoted(url)}, which is never fetched; embed the data "
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


def vega_unsafe_reason(spec: Any) -> str | None:
    """Why rendering a Vega spec could load something from outside it, or None.

    Any ``url`` (data sources, image marks' ``url`` encodings) or image mark is refused:
    nothing is fetched or read, whatever vl-convert's own guard would do.
    """
    for node in _walk(spec):
        url = node.get("url")
        if url is not None:
            source = quoted(url) if isinstance(url, str) else "a computed URL"
            return (
                f"it loads {source}, which is never fetched; embed the data "
                "in the spec (data values) to let the AI see it"
            )
        if node.get("type") == "image" and ("encode" in node or "from" in node):
            return "it uses image marks, whose pictures would be loaded from URLs or files (never done)"
    return None


def summarize_vega(spec: dict[str, Any], *, max_chars: int = 1200) -> str:
    """One short paragraph for a Vega spec: title, mark types, data sets, scales, axes."""
    if not isinstance(spec, dict):
        return "Vega chart (unreadable spec)"
    parts = ["Vega chart"]
    title = _title(spec.get("title"))
    if title:
        parts[0] += f" {title!r}"
    marks = sorted(
        {str(m.get("type")) for m in _walk(spec.get("marks")) if "type" in m and "encode" in m}
    )
    if marks:
        parts.append("marks " + ", ".join(marks[:10]))
    data = spec.get("data")
    if isinstance(data, list):
        sets = []
        for d in data[:10]:
            if isinstance(d, dict) and isinstance(d.get("name"), str):
                values = d.get("values")
                rows = f" ({len(values)} rows)" if isinstance(values, list) else ""
                sets.append(d["name"][:40] + rows)
        if sets:
            parts.append("data " + ", ".join(sets))
    for key in ("scales", "axes", "legends"):
        items = spec.get(key)
        if isinstance(items, list) and items:
            names = [
                str(i.get("name") or i.get("scale") or i.get("orient") or "?")[:30]
                for i in items[:10]
                if isinstance(i, dict)
            ]
            parts.append(f"{key} " + ", ".join(names))
    size = [f"{k} {spec[k]}" for k in ("width", "height") if isinstance(spec.get(k), int)]
    if size:
        parts.append(", ".join(size))
    text = "; ".join(parts)
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def _sequence_rows(seq: dict[str, Any]) -> float | None:
    """Rows a ``{"sequence": {start, stop, step}}`` generator makes (None: not numbers)."""
    start, stop, step = seq.get("start", 0), seq.get("stop"), seq.get("step", 1)
    if not (
        isinstance(start, int | float)
        and isinstance(stop, int | float)
        and isinstance(step, int | float)
        and step != 0
    ):
        return None
    try:
        rows = (float(stop) - float(start)) / float(step)
    except OverflowError:  # a 400-digit integer: certainly too many
        return None
    return max(0.0, rows) if math.isfinite(rows) else None


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


def _vl_version(spec: dict[str, Any], policy: ImagePolicy) -> str | None:
    """The vl-convert library version closest to the spec's ``$schema`` (None = latest)."""
    match = _SCHEMA_VERSION.search(str(spec.get("$schema", ""))[:500])
    if not match:
        return None
    major, minor = int(match.group(1)[:4]), int((match.group(2) or "0")[:4])
    available = _vegalite_versions(policy)
    same_major = sorted(v for v in available if v[0] == major)
    if not same_major:
        # v3/v4 specs render with the oldest v5 library; newer majors with the latest.
        older = sorted(v for v in available if v[0] > major)
        return ".".join(map(str, older[0])) if older else None
    best = [v for v in same_major if v[1] <= minor] or same_major
    return ".".join(map(str, best[-1]))


_versions: list[tuple[int, ...]] = []


def _vegalite_versions(policy: ImagePolicy) -> list[tuple[int, ...]]:
    """Vega-Lite versions the renderer bundles, asked once (vl-convert is never imported here)."""
    if not _versions:
        try:
            raw = SANDBOX.call(
                "versions",
                b"",
                timeout=policy.chart_timeout,
                memory_bytes=policy.chart_memory_bytes,
            )
            _versions.extend(tuple(int(p) for p in v.split(".")) for v in json.loads(raw))
        except (SandboxFailure, ValueError):
            return []
    return _versions


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

_SCRIPT_START = re.compile(r"<script\b", re.IGNORECASE)
_SCRIPT_END = re.compile(r"</script\s*+>", re.IGNORECASE)


def _script_bodies(html: str) -> Iterator[str]:
    """Bodies of ``<script>`` elements, found in one forward pass (a lazy ``<script>(.*?)
    </script>`` rescans to the end from every unclosed ``<script>``: quadratic)."""
    pos = 0
    while start := _SCRIPT_START.search(html, pos):
        body = html.find(">", start.end()) + 1
        end = _SCRIPT_END.search(html, body) if body else None
        if end is None:
            return  # unclosed: no later script can close either
        yield html[body : end.start()]
        pos = end.end()


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
