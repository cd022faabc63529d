"""Model parameters as users write them (settings fields, ``%%ai -m JSON``): checked and
coerced, one line (:class:`~jupyter_ai_vision.errors.ModelParameterError`) for a wrong type.

Shared by every host. Stdlib only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from jupyter_ai_vision.errors import ModelParameterError

_BOOL_STRINGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _coerce_bool(key: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        if value.strip().lower() in _BOOL_STRINGS:
            return _BOOL_STRINGS[value.strip().lower()]
    raise ModelParameterError(f"{key} must be true or false, not {value!r}")


def _number(key: str, value: Any, *, integer: bool = False, minimum: float = 0) -> Any:
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


def _text(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ModelParameterError(f"{key} must be a string, not {value!r}")
    return value.strip()


#: Known parameters and their checks. A JSON value of the wrong type gives one line.
_CHECKS: dict[str, Any] = {
    "api_base": _text,
    "api_key": _text,
    "supports_vision": _coerce_bool,
    "expand_references": _coerce_bool,
    "timeout": lambda k, v: _number(k, v, minimum=0.001),
    "max_retries": lambda k, v: _number(k, v, integer=True),
    "temperature": lambda k, v: _number(k, v),
    "max_tokens": lambda k, v: _number(k, v, integer=True, minimum=1),
    # inline completion settings (read by the 2.x inline completion, never sent to the API)
    "completion_images": _coerce_bool,
    "completion_context_cells": lambda k, v: _number(k, v, integer=True),
    "completion_max_images": lambda k, v: _number(k, v, integer=True),
    "completion_image_tokens": lambda k, v: _number(k, v, integer=True),
}


def check_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and coerce known parameters (settings fields arrive as strings or None)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        check = _CHECKS.get(key)
        if check is None:
            out[key] = value
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty settings field means "not set"
        out[key] = check(key, value)
    if "api_base" in out and not str(out["api_base"]).startswith(("http://", "https://")):
        raise ModelParameterError(
            f"api_base must be an http(s) URL such as http://localhost:4000/v1, "
            f"not {out['api_base']!r}"
        )
    if "model_kwargs" in out and not isinstance(out["model_kwargs"], dict):
        raise ModelParameterError("model_kwargs must be a JSON object")
    return out
