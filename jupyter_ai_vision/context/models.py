"""What the image budget needs to know about a model: its family (how images are counted),
input window and whether it takes images, from a small built-in table of name patterns; and
the estimated tokens of an image for that family.

Pure Python, no heavy imports (never imports litellm).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

from jupyter_ai_vision.limits import ImagePolicy, fit_within

Family = Literal["openai-tile", "openai-patch", "anthropic", "gemini", "generic"]


@dataclass(frozen=True)
class ModelProfile:
    """What the budget needs to know about a model."""

    model: str | None
    family: Family = "generic"
    input_window: int | None = None  # input tokens; None = unknown
    supports_images: bool | None = None  # None = unknown (send images, let the model decide)
    tile_base: int = 85  # OpenAI tile models: tokens per image ...
    tile_tokens: int = 170  # ... plus tokens per 512-px tile
    patch_multiplier: float = 1.0  # OpenAI patch models: tokens per 32-px patch

    def token_limit(self, policy: ImagePolicy) -> int:
        """Image tokens allowed per request: min(policy cap, window share)."""
        if self.input_window is None:
            return policy.max_image_tokens
        return min(policy.max_image_tokens, int(self.input_window * policy.window_fraction))


@dataclass(frozen=True)
class _Rule:
    pattern: str  # regex, searched in the normalised model name
    family: Family
    window: int | None
    images: bool | None
    tile_base: int = 85
    tile_tokens: int = 170
    patch_multiplier: float = 1.0


# First match wins: specific names before general ones.
_RULES: tuple[_Rule, ...] = (
    # OpenAI patch models (32-px patches, capped at 1536, times a per-model multiplier).
    _Rule(r"gpt-4\.1-mini", "openai-patch", 1_047_576, True, patch_multiplier=1.62),
    _Rule(r"gpt-4\.1-nano", "openai-patch", 1_047_576, True, patch_multiplier=2.46),
    _Rule(r"gpt-5(\.\d+)?-mini", "openai-patch", 272_000, True, patch_multiplier=1.62),
    _Rule(r"gpt-5(\.\d+)?-nano", "openai-patch", 272_000, True, patch_multiplier=2.46),
    _Rule(r"o4-mini", "openai-patch", 200_000, True, patch_multiplier=1.72),
    # OpenAI models without image input.
    _Rule(r"o1-mini|o3-mini|o1-preview", "openai-tile", 128_000, False),
    _Rule(r"gpt-3\.5|davinci|babbage|text-embedding", "openai-tile", 16_385, False),
    _Rule(r"gpt-4-(0314|0613|32k)|^gpt-4$", "openai-tile", 8_192, False),
    # OpenAI tile models (85 + 170 per 512-px tile; o-series 75 + 150; gpt-5 70 + 140).
    _Rule(r"gpt-5", "openai-tile", 272_000, True, tile_base=70, tile_tokens=140),
    _Rule(r"\bo[13](-pro)?\b|\bo[13]-20", "openai-tile", 200_000, True, 75, 150),
    _Rule(r"gpt-4\.1", "openai-tile", 1_047_576, True),
    _Rule(r"gpt-4o|chatgpt-4o|gpt-4\.5", "openai-tile", 128_000, True),
    _Rule(r"gpt-4-turbo|gpt-4-vision|gpt-4-1106-vision", "openai-tile", 128_000, True),
    # Anthropic.
    _Rule(r"claude-(instant|2)", "anthropic", 100_000, False),
    _Rule(r"claude", "anthropic", 200_000, True),
    # Google.
    _Rule(r"gemini-1\.5-pro", "gemini", 2_097_152, True),
    _Rule(r"gemini-(1\.5|2|3)", "gemini", 1_048_576, True),
    _Rule(r"gemini-pro-vision", "gemini", 16_384, True),
    _Rule(r"gemini-(1\.0-)?pro\b", "gemini", 32_760, False),
    _Rule(r"gemma-3", "generic", 128_000, True),
    # Open models that take images.
    _Rule(r"llava|bakllava|moondream|minicpm-v|pixtral|llama3\.2-vision", "generic", None, True),
    _Rule(r"llama-3\.2-(11|90)b-vision|llama-4|qwen2?(\.5)?-vl|internvl", "generic", None, True),
    # Common text-only families.
    _Rule(
        r"deepseek-(chat|reasoner|coder)|codestral|mistral-(small|medium|large)-2[34]",
        "generic",
        None,
        False,
    ),
)

_PREFIX = re.compile(r"^(?:[a-z0-9_.-]+/)+")


def _normalise(model: str) -> str:
    """``openrouter/openai/gpt-4o`` -> ``gpt-4o``; ``bedrock/anthropic.claude-3`` keeps ``claude``."""
    return _PREFIX.sub("", model.strip().lower())


def model_profile(
    model: str | None,
    *,
    supports_images: bool | None = None,
    input_window: int | None = None,
) -> ModelProfile:
    """Profile for a LiteLLM model name from the built-in table; unknown names get the
    generic family, an unknown window and ``supports_images=None``. Explicit arguments
    override the table."""
    profile = ModelProfile(model=model)
    if model:
        name = _normalise(model)
        for rule in _RULES:
            if re.search(rule.pattern, name):
                profile = ModelProfile(
                    model=model,
                    family=rule.family,
                    input_window=rule.window,
                    supports_images=rule.images,
                    tile_base=rule.tile_base,
                    tile_tokens=rule.tile_tokens,
                    patch_multiplier=rule.patch_multiplier,
                )
                break
    if supports_images is not None:
        profile = replace(profile, supports_images=supports_images)
    if input_window is not None:
        profile = replace(profile, input_window=input_window)
    return profile


def estimate_image_tokens(
    profile: ModelProfile, width: int, height: int, *, detail: str = "auto"
) -> int:
    """Estimated input tokens of one ``width``×``height`` image for ``profile``'s family."""
    if width <= 0 or height <= 0:
        return 0
    if profile.family == "openai-tile":
        return _openai_tile(profile, width, height, detail)
    if profile.family == "openai-patch":
        return math.ceil(_openai_patches(width, height) * profile.patch_multiplier)
    if profile.family == "gemini":
        return _gemini(width, height)
    # Anthropic, and the generic estimate (it is the most conservative of the formulas
    # for the sizes we send).
    return _anthropic(width, height)


def _openai_tile(profile: ModelProfile, width: int, height: int, detail: str) -> int:
    if detail == "low":
        return profile.tile_base
    # "high" (and "auto", which is high for any image we send): fit in 2048², then scale
    # so the short side is 768 (only ever down), then count 512-px tiles.
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return profile.tile_base + profile.tile_tokens * tiles


def _openai_patches(width: int, height: int, cap: int = 1536) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= cap:
        return patches
    # Scale down to fit the patch cap, then so that whole patches cover each side.
    shrink = math.sqrt(32 * 32 * cap / (width * height))
    w, h = width * shrink, height * shrink
    shrink *= min(math.floor(w / 32) / (w / 32), math.floor(h / 32) / (h / 32))
    w, h = width * shrink, height * shrink
    return min(cap, math.ceil(w / 32) * math.ceil(h / 32))


def _anthropic(width: int, height: int) -> int:
    # The API downscales images whose long edge exceeds 1568 px (or that would exceed
    # ~1600 tokens, i.e. ~1.2 MP) before counting w*h/750.
    w, h = fit_within(width, height, 1568, 1_200_000)
    return math.ceil(w * h / 750)


def _gemini(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)
