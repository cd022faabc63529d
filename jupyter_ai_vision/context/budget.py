"""The image budget: policy knobs, per-model profiles, token estimates and image selection.

One request has one budget, whatever its images come from: the notebook's figures are
chosen by :func:`select_images`, and ``@name`` objects from the kernel continue what the
notebook left (:class:`RemainingBudget`, ``RemainingBudget.after(ctx)``). Both say no with
the same reasons, and both build their :class:`ImagePart` with :func:`image_part`.

Pure Python, no heavy imports (never imports litellm): the model table below is a small
built-in list of name patterns, and token costs are computed from image dimensions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from jupyter_ai_vision.context.parts import ImagePart, Provenance
from jupyter_ai_vision.limits import ImagePolicy, fit_within

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import VisionContext
    from jupyter_ai_vision.media.raster import PreparedImage

# ImagePolicy and fit_within are re-exported: the budget reads as one module.
__all__ = [
    "ImagePolicy",
    "ModelProfile",
    "RemainingBudget",
    "estimate_image_tokens",
    "fit_within",
    "image_part",
    "model_profile",
    "select_images",
]

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


class Candidate(Protocol):
    """What :func:`select_images` needs from an image candidate."""

    @property
    def cell_index(self) -> int | None: ...

    @property
    def tokens(self) -> int: ...


C = TypeVar("C", bound=Candidate)


def priority_order(cell_indexes: Sequence[int | None], focus_cell_index: int | None) -> list[int]:
    """Positions ordered by preference: the focused cell's items (in output order), then
    the nearest preceding cells, then the following ones. Without a focus the latest
    cells come first (the user is most likely looking at the end of the notebook)."""
    known = [c for c in cell_indexes if c is not None]
    focus = focus_cell_index if focus_cell_index is not None else (max(known, default=0) + 1)

    def key(pos: int) -> tuple[int, int, int]:
        cell = cell_indexes[pos]
        if cell is None:
            return (3, 0, pos)  # items without a cell go last
        if cell == focus:
            return (0, 0, pos)
        if cell < focus:
            return (1, focus - cell, pos)
        return (2, cell - focus, pos)

    return sorted(range(len(cell_indexes)), key=key)


@dataclass
class RemainingBudget:
    """What one request's images have used so far: count, estimated tokens, and the sha256
    of the images already in it (or already shown earlier in the conversation).

    Mutable on purpose: every image added to the request is recorded with :meth:`take`, so
    the notebook's figures, ``@name`` objects and ``@figures`` share one count.
    """

    policy: ImagePolicy
    profile: ModelProfile
    count: int = 0
    tokens: int = 0
    seen: set[str] = field(default_factory=set)

    @classmethod
    def fresh(
        cls,
        policy: ImagePolicy | None = None,
        *,
        model: str | None = None,
        supports_images: bool | None = None,
    ) -> RemainingBudget:
        """An untouched budget (a request without notebook content, e.g. ``%%ai``)."""
        return cls(policy or ImagePolicy(), model_profile(model, supports_images=supports_images))

    @classmethod
    def after(cls, ctx: VisionContext) -> RemainingBudget:
        """What ``ctx`` (a built notebook context) leaves for the rest of its request: the
        builder records the policy and model profile it chose the figures under (a context
        made by hand gets the defaults for its model)."""
        policy = ctx.policy or ImagePolicy()
        profile = ctx.profile or model_profile(
            ctx.model, supports_images=None if ctx.images_supported else False
        )
        images = ctx.images
        return cls(
            policy,
            profile,
            count=len(images),
            tokens=sum(i.tokens for i in images),
            seen={i.sha256 for i in images} | set(ctx.exclude_sha256),
        )

    @property
    def limit(self) -> int:
        """Image tokens allowed per request."""
        return self.profile.token_limit(self.policy)

    def refuse(self, tokens: int) -> str | None:
        """Why one more image of ``tokens`` does not fit (a one-line reason), or None."""
        if self.profile.supports_images is False:
            return "model does not accept images"
        if self.count >= self.policy.max_images:
            return f"budget: {self.policy.max_images} images per request"
        if self.tokens + tokens > self.limit:
            return f"budget: {self.limit} image tokens per request"
        return None

    def take(self, tokens: int, sha256: str | None = None) -> None:
        """Record one image added to the request."""
        self.count += 1
        self.tokens += tokens
        if sha256 is not None:
            self.seen.add(sha256)


def image_part(
    image: PreparedImage,
    *,
    profile: ModelProfile,
    provenance: Provenance,
    sha256: str | None = None,
    original_bytes: int | None = None,
    caption: str | None = None,
) -> ImagePart:
    """The :class:`ImagePart` for a prepared image, its tokens estimated for ``profile``.

    ``sha256`` / ``original_bytes`` default to the image's own (the builder passes the
    source's hash for charts and SVGs, whose prepared PNG differs from what the notebook
    holds)."""
    return ImagePart(
        data=image.data,
        mime=image.mime,
        width=image.width,
        height=image.height,
        original_width=image.original_width,
        original_height=image.original_height,
        original_bytes=original_bytes or image.original_bytes,
        tokens=estimate_image_tokens(profile, image.width, image.height),
        sha256=sha256 or image.sha256,
        provenance=provenance,
        caption=caption,
    )


def select_images(
    candidates: Sequence[C],
    *,
    focus_cell_index: int | None,
    policy: ImagePolicy,
    profile: ModelProfile,
) -> tuple[list[C], list[tuple[C, str]]]:
    """Choose which images to send. Returns ``(selected, dropped)``: ``selected`` keeps the
    candidates' order (notebook order); each dropped candidate comes with a one-line
    reason starting with ``budget`` (or saying the model takes no images)."""
    used = RemainingBudget(policy, profile)
    if profile.supports_images is False:
        return [], [(c, "model does not accept images") for c in candidates]
    chosen: set[int] = set()
    reasons: dict[int, str] = {}
    for pos in priority_order([c.cell_index for c in candidates], focus_cell_index):
        tokens = candidates[pos].tokens
        reason = used.refuse(tokens)
        if reason:
            reasons[pos] = reason
        else:
            chosen.add(pos)
            used.take(tokens)
    selected = [c for i, c in enumerate(candidates) if i in chosen]
    dropped = [(c, reasons[i]) for i, c in enumerate(candidates) if i not in chosen]
    return selected, dropped
