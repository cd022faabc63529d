"""Which model the Vision persona asks, with which arguments and key.

Order, so a 3.x user configures models once:

1. the persona's own setting (``c.VisionPersona.model`` / ``.model_parameters``, or a model
   picked in the chat's model picker);
2. Jupyternaut's chat model, its arguments (``api_base``, ``api_key``, ...) and API keys
   (``settings["jupyternaut.config_manager"]``: what ``JupyternautExtension.initial_language_model``,
   ``.model_parameters`` and ``.default_api_keys`` and the Jupyternaut settings page set);
3. ``JUPYTER_AI_VISION_MODEL`` from the environment, with LiteLLM's usual environment variables
   (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ...) for the rest.

Parameters go through the same checks as on 2.x (``llm/params.py``): a wrong type is one line.
No litellm import here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_ai_vision.llm.params import check_parameters

ENV_MODEL = "JUPYTER_AI_VISION_MODEL"
#: Parameters read by the persona; the others go to ``litellm.acompletion`` as they are.
OWN_KEYS = ("api_base", "api_key", "timeout", "max_retries", "supports_vision")
#: Parameters no model call takes (2.x provider fields that may sit in shared settings).
_NOT_FOR_THE_API = ("expand_references", "streaming", "model_id", "model")

NO_MODEL = (
    "No model is configured for Vision: choose a chat model in the Jupyternaut settings, set "
    "c.VisionPersona.model (a LiteLLM model id, e.g. openai/gpt-4o), or the "
    f"{ENV_MODEL} environment variable."
)


@dataclass
class ModelChoice:
    """The model one request goes to."""

    model: str
    source: str  # "persona settings" | "model picker" | "Jupyternaut" | "environment"
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 2
    supports_vision: bool | None = None  # the user's override; None: ask LiteLLM
    extra: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...

    @property
    def secrets(self) -> set[str]:
        return {self.api_key} if self.api_key else set()


def jupyternaut_model(settings: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """Jupyternaut's chat model and its arguments (API key filled from its saved keys)."""
    manager = (settings or {}).get("jupyternaut.config_manager")
    if manager is None:
        return None, {}
    try:
        model = manager.chat_model
        args = dict(manager.chat_model_args or {})
    except Exception:  # an unreadable Jupyternaut config is not ours to report
        return None, {}
    return model or None, args


def jupyternaut_fields(settings: Mapping[str, Any] | None, model: str) -> dict[str, Any]:
    """The arguments Jupyternaut has saved for ``model`` (a model picked in the picker)."""
    manager = (settings or {}).get("jupyternaut.config_manager")
    try:
        return dict(manager.get_config().fields.get(model, {})) if manager else {}
    except Exception:
        return {}


def jupyternaut_api_key(settings: Mapping[str, Any] | None, model: str) -> str | None:
    """The key Jupyternaut saved for ``model``'s provider (``OPENAI_API_KEY`` for ``openai/...``).

    Jupyternaut keeps keys by environment-variable name; the provider is the model id's prefix.
    """
    manager = (settings or {}).get("jupyternaut.config_manager")
    if manager is None or "/" not in model:
        return None
    try:
        keys = dict(manager._read_config().api_keys or {})  # private: holds the key values
    except Exception:
        return None
    provider = model.split("/", 1)[0].upper().replace("-", "_")
    return keys.get(f"{provider}_API_KEY") or None


def choose(
    settings: Mapping[str, Any] | None,
    *,
    persona_model: str | None,
    persona_parameters: Mapping[str, Any] | None,
    picked: str | None = None,
    images: str | None = None,
) -> ModelChoice:
    """The model for one request. ``picked``: a model chosen in the chat's model picker;
    ``images``: the persona's "images" setting ("on" / "off" / None for LiteLLM's flag).
    Raises :class:`~jupyter_ai_vision.errors.ModelParameterError` (one line)."""
    from jupyter_ai_vision.errors import ModelParameterError

    params: dict[str, Any] = {}
    if picked:
        model, source = picked, "model picker"
        params.update(jupyternaut_fields(settings, picked))
    elif persona_model:
        model, source = persona_model, "persona settings"
    else:
        jn_model, jn_args = jupyternaut_model(settings)
        if jn_model:
            model, source = jn_model, "Jupyternaut"
            params.update(jn_args)
        elif os.environ.get(ENV_MODEL, "").strip():
            model, source = os.environ[ENV_MODEL].strip(), "environment"
        else:
            raise ModelParameterError(NO_MODEL)
    params.update(persona_parameters or {})
    model = model.removeprefix("vision:")  # the 2.x spelling
    checked = check_parameters(params)
    if not checked.get("api_key"):
        checked["api_key"] = jupyternaut_api_key(settings, model)
    if images in ("on", "off"):
        checked["supports_vision"] = images == "on"
    extra = {
        k: v
        for k, v in checked.items()
        if k not in OWN_KEYS and k not in _NOT_FOR_THE_API and v is not None
    }
    return ModelChoice(
        model=model,
        source=source,
        api_base=checked.get("api_base"),
        api_key=checked.get("api_key"),
        timeout=float(checked.get("timeout") or 120.0),
        max_retries=_retries(checked.get("max_retries")),
        supports_vision=checked.get("supports_vision"),
        extra=extra,
    )


def _retries(value: Any) -> int:
    return 2 if value is None else int(value)
