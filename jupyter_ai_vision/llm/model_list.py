"""The vision models offered by name: a snapshot of LiteLLM's model map, shipped as data.

Reading the snapshot (``vision_models.json`` next to this module) imports nothing heavy, so
providers can show the list in their help text at server start-up. Regenerate it after a
litellm upgrade (imports litellm)::

    python -m jupyter_ai_vision.llm.model_list > jupyter_ai_vision/llm/vision_models.json
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.metadata import version
from typing import Any

MODELS_FILE = "vision_models.json"
#: Providers whose vision models are listed (all LiteLLM names are accepted anyway).
LISTED_PROVIDERS = (
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "xai",
    "deepseek",
    "groq",
    "together_ai",
    "fireworks_ai",
    "openrouter",
    "ollama",
)
#: Names the help text shows first.
EXAMPLES = (
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.5-flash",
    "ollama/llava",
    "openrouter/anthropic/claude-3.5-sonnet",
)
#: Names listed per provider in the help text before "(+N more)".
PER_PROVIDER = 8


def vision_models() -> list[str]:
    """Vision-capable chat models from the shipped snapshot ([] if it cannot be read)."""
    try:
        text = resources.files(__package__ or "jupyter_ai_vision.llm").joinpath(MODELS_FILE)
        return list(json.loads(text.read_text("utf-8"))["models"])
    except (OSError, ValueError, KeyError):
        return []


def snapshot_vision_models() -> dict[str, Any]:
    """The snapshot, built from the installed litellm (development time; imports litellm)."""
    from jupyter_ai_vision.llm._litellm import import_litellm

    litellm = import_litellm()
    names = set()
    for name, info in litellm.model_cost.items():
        provider = info.get("litellm_provider")
        vision_chat = info.get("supports_vision") and info.get("mode") == "chat"
        if vision_chat and provider in LISTED_PROVIDERS:
            names.add(name if name.startswith(f"{provider}/") else f"{provider}/{name}")
    return {"litellm": version("litellm"), "models": sorted(names)}


def help_text(models: list[str]) -> str:
    """The provider's help: how to name a model, where keys come from, what is listed."""
    by_provider: dict[str, list[str]] = {}
    for name in sorted(models, key=lambda n: (len(n), n)):  # short undated aliases first
        by_provider.setdefault(name.split("/", 1)[0], []).append(name)
    listed = "; ".join(
        f"{p}: {', '.join(n.split('/', 1)[1] for n in names[:PER_PROVIDER])}"
        + (f" (+{len(names) - PER_PROVIDER} more)" if len(names) > PER_PROVIDER else "")
        for p, names in sorted(by_provider.items())
    )
    return (
        "Type any LiteLLM model name, e.g. "
        + ", ".join(f"`{e}`" for e in EXAMPLES)
        + ". Set `api_base` for a LiteLLM Proxy or a local OpenAI-compatible server "
        "(Ollama, vLLM, LM Studio); the API key comes from the provider's usual environment "
        "variable (e.g. OPENAI_API_KEY) or the `api_key` field. Vision models in LiteLLM's map: "
        + (listed or "(snapshot not available)")
        + "."
    )


if __name__ == "__main__":
    print(json.dumps(snapshot_vision_models(), indent=1))
