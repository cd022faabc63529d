"""Model parameter checks: settings fields and ``%%ai -m`` JSON arrive as strings, numbers or
None; each known parameter is coerced here, once, or refused with one line.

Used by the chat and embeddings providers and by inline completion's settings (the one bool
coercion: the same strings mean true everywhere).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from jupyter_ai_vision.errors import ModelParameterError

_BOOL_STRINGS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def coerce_bool(key: str, value: Any) -> bool | None:
    """True / False from a bool or one of true/yes/on/1, false/no/off/0 (any case); None for
    None or an empty string (a field left empty means "not set")."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _BOOL_STRINGS:
            return _BOOL_STRINGS[word]
    raise ModelParameterError(f"{key} must be true or false, not {value!r}")


def number(key: str, value: Any, *, integer: bool = False, minimum: float = 0) -> Any:
    """A float (or, with ``integer``, an int) >= ``minimum``; numeric strings are accepted."""
    if isinstance(value, str) and value.strip():
        with contextlib.suppress(ValueError):
            value = float(value) if not integer else int(value)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise ModelParameterError(f"{key} must be {kind} >= {minimum:g}, not {value!r}")
    return int(value) if integer else float(value)


def text(key: str, value: Any) -> str | None:
    """A stripped string; None for None or an empty string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ModelParameterError(f"{key} must be a string, not {value!r}")
    return value.strip()


Check = Callable[[str, Any], Any]

#: Known parameters and their checks. A JSON value of the wrong type gives one line.
CHECKS: dict[str, Check] = {
    "api_base": text,
    "api_key": text,
    "supports_vision": coerce_bool,
    "expand_references": coerce_bool,
    "timeout": lambda k, v: number(k, v, minimum=0.001),
    "max_retries": lambda k, v: number(k, v, integer=True),
    "temperature": lambda k, v: number(k, v),
    "max_tokens": lambda k, v: number(k, v, integer=True, minimum=1),
    # inline completion settings (read by hosts/jupyter_ai_2/completion.py, never sent to the API)
    "completion_images": coerce_bool,
    "completion_context_cells": lambda k, v: number(k, v, integer=True),
    "completion_max_images": lambda k, v: number(k, v, integer=True),
    "completion_image_tokens": lambda k, v: number(k, v, integer=True),
    # captions for text-only models (read by /see and the persona, never sent to the chat API)
    "caption_model": text,
    "caption_api_base": text,
}
#: Parameters that must be http(s) URLs.
URLS = ("api_base", "caption_api_base")


def check_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and coerce known parameters (settings fields arrive as strings or None);
    unknown ones pass through unchanged."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        check = CHECKS.get(key)
        if check is None:
            out[key] = value
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty settings field means "not set"
        out[key] = check(key, value)
    for key in URLS:
        if key in out and not str(out[key]).startswith(("http://", "https://")):
            raise ModelParameterError(
                f"{key} must be an http(s) URL such as http://localhost:4000/v1, not {out[key]!r}"
            )
    if "model_kwargs" in out and not isinstance(out["model_kwargs"], dict):
        raise ModelParameterError("model_kwargs must be a JSON object")
    return out
