"""What the completer puts around prefix and suffix, read from the provider's fields."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jupyter_ai_vision.errors import ModelParameterError
from jupyter_ai_vision.llm.params import coerce_bool, number

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionSettings:
    """What the completer puts around prefix and suffix (read from the provider)."""

    images: bool = True  # send the most recent figure(s) above the cursor (vision models)
    context_cells: int = 5  # cells taken on each side of the cursor's cell
    max_images: int = 1  # image budget: count ...
    image_tokens: int = 1500  # ... and estimated image tokens
    max_edge: int = 768  # long edge of a sent figure, in pixels
    max_cell_chars: int = 4000  # a neighbouring cell's source is cut to this
    max_prefix_chars: int = 8000  # the frontend already caps at 10 000
    max_suffix_chars: int = 2000
    figure_lookback: int = 30  # cells above the window searched for the most recent figure
    caption_model: str | None = None  # describes the figure for a text-only completion model
    caption_api_base: str | None = None
    caption_budget: float = 1.5  # seconds a completion waits for a caption not yet stored


#: Provider attribute (or model parameter) -> CompletionSettings field.
SETTING_NAMES = {
    "completion_images": "images",
    "completion_context_cells": "context_cells",
    "completion_max_images": "max_images",
    "completion_image_tokens": "image_tokens",
}
#: Bounds of the integer settings (a completion is latency-bound: few cells, few figures).
_BOUNDS = {"context_cells": (0, 50), "max_images": (0, 4), "image_tokens": (0, None)}


def settings_for(provider: Any) -> CompletionSettings:
    """Settings from the provider's fields (``completion_*``), defaults otherwise; a value
    that is not understood is logged and ignored (a completion never fails on settings)."""
    values: dict[str, Any] = {}
    for attr, name in SETTING_NAMES.items():
        value = getattr(provider, attr, None)
        try:
            parsed = _parse(attr, name, value)
        except ModelParameterError:
            log.warning("Ignoring invalid %s=%r", attr, value)
            continue
        if parsed is not None:
            values[name] = parsed
    for attr in ("caption_model", "caption_api_base"):
        value = getattr(provider, attr, None)
        if isinstance(value, str) and value.strip():
            values[attr] = value.strip()
    return CompletionSettings(**values)


def _parse(attr: str, name: str, value: Any) -> Any:
    """The setting's value through the provider's own coercion (llm/params.py)."""
    if value is None or value == "":
        return None
    if name == "images":
        return coerce_bool(attr, value)
    low, high = _BOUNDS[name]
    parsed = number(attr, value, integer=True, minimum=-(2**31))
    parsed = max(low, parsed)
    return parsed if high is None else min(parsed, high)
