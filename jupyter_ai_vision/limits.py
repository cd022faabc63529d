"""Every limit in one place: the image policy (what is sent, what is looked at, what the
renderers may use) and the limits on notebooks themselves.

A leaf module: stdlib only, importable from anywhere.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any


def _env_megabytes(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, "").strip()[:9] or default)) * 1024 * 1024
    except ValueError:
        return default * 1024 * 1024


#: largest notebook file read from disk (bytes); bigger files, and anything that is not a
#: regular file, are refused before reading. Set with JUPYTER_AI_VISION_MAX_NOTEBOOK_MB
#: (or ``inspect --max-notebook-mb``).
MAX_NOTEBOOK_BYTES = _env_megabytes("JUPYTER_AI_VISION_MAX_NOTEBOOK_MB", 512)
#: deepest nesting of a notebook's JSON values (metadata, chart specs, JSON outputs) that is
#: used; real ones are < 20 deep. Deeper values are left out with a note, so that no copy or
#: walk can hit Python's recursion limit.
MAX_JSON_DEPTH = 100
#: longest integer literal parsed from notebook JSON; longer ones become floats (Python
#: refuses int() on more than 4300 digits, which would make the whole notebook unreadable).
MAX_INT_DIGITS = 1000


def json_depth_exceeds(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (JSON-like: dicts, lists, tuples) nests deeper than ``max_depth``.

    Iterative, so it is safe on values a million levels deep; linear in their size."""
    stack = [(value, 1)] if isinstance(value, dict | list | tuple) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))
    return False


def bounded_int(digits: str) -> int | float:
    """``parse_int`` for :func:`json.loads` on notebook JSON (see :data:`MAX_INT_DIGITS`)."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)


def loads_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for notebook-derived text: nesting at most ``max_depth`` (else
    ``ValueError``), huge integers as floats, never ``RecursionError``."""
    try:
        value = json.loads(text, parse_int=bounded_int)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if json_depth_exceeds(value, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value


@dataclass(frozen=True)
class ImagePolicy:
    """Every limit applied to images. Frozen and hashable: it is part of the cache key."""

    max_edge: int = 1024  # longest side of a sent image, px
    max_pixels: int = 1_150_000  # pixels of a sent image
    max_images: int = 10  # images per request
    max_image_tokens: int = 10_000  # estimated image tokens per request
    window_fraction: float = 0.15  # ... and at most this share of the model's input window
    max_image_bytes: int = 3_750_000  # encoded bytes per sent image (Anthropic: 5 MB base64)
    max_input_bytes: int = 20_000_000  # raw bytes of an image we look at (OpenAI: 20 MB)
    max_decode_pixels: int = 64_000_000  # decompression-bomb cap, checked from the header
    max_base64_chars: int = 27_000_000  # base64 text accepted (~20 MB), checked before decoding
    max_svg_chars: int = 10_000_000  # SVG source accepted
    max_svg_pixels: int = 4_000_000  # hard cap on an SVG's rendered canvas
    svg_timeout: float = 10.0  # seconds one SVG may take to render (the worker is killed)
    svg_memory_bytes: int = 1_000_000_000  # address-space limit of the SVG render worker
    jpeg_quality: int = 85  # JPEG fallback quality (used only to meet max_image_bytes)
    png_compress_level: int = 3  # zlib level of our PNGs: ~2x faster than 6, ~8% larger
    max_chart_renders: int = 4  # interactive charts (Plotly, Bokeh) drawn per request; 0: none
    chart_timeout: float = 10.0  # seconds one chart may take, the browser's start included
    # RLIMIT_DATA of a Vega / Vega-Lite render worker (V8 commits ~580 MB just to start)
    chart_memory_bytes: int = 1_500_000_000
    max_render_seconds: float = 30.0  # wall clock for all sandboxed renders of one context

    def fit(self, width: int, height: int) -> tuple[int, int]:
        """The size an image of ``width``×``height`` is sent at: never upscaled."""
        return fit_within(width, height, self.max_edge, self.max_pixels)


def fit_within(width: int, height: int, max_edge: int, max_pixels: int) -> tuple[int, int]:
    """Largest size with the same aspect ratio within ``max_edge`` and ``max_pixels``,
    never larger than the input."""
    if width <= 0 or height <= 0:
        return width, height
    scale = min(1.0, max_edge / max(width, height), math.sqrt(max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    w = max(1, int(width * scale))
    h = max(1, int(height * scale))
    # Rounding can overshoot the pixel cap by a row: shave it off.
    while w * h > max_pixels and (w > 1 or h > 1):
        if w >= h:
            w -= 1
        else:
            h -= 1
    return w, h
