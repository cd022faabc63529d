"""The image budget: policy knobs, what a request has used, and image selection.

One request has one budget, whatever its images come from: the notebook's figures are
chosen by :func:`select_images`, and ``@name`` objects from the kernel continue what the
notebook left (:class:`RemainingBudget`, ``RemainingBudget.after(ctx)``). Both say no with
the same reasons, and both build their :class:`ImagePart` with :func:`image_part`.

Per-model profiles and token estimates live in :mod:`.models` (re-exported here). Pure
Python, no heavy imports (never imports litellm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from jupyter_ai_vision.context.models import ModelProfile, estimate_image_tokens, model_profile
from jupyter_ai_vision.context.parts import ImagePart, Provenance
from jupyter_ai_vision.limits import ImagePolicy, fit_within

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import VisionContext
    from jupyter_ai_vision.media.raster import PreparedImage

# ImagePolicy, fit_within and the model profiles (context/models.py) are re-exported: the
# budget reads as one module.
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
