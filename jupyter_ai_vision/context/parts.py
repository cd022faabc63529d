"""Typed message parts: what the context builder produces and every surface consumes.

A :class:`VisionContext` is an ordered list of :class:`TextPart` and :class:`ImagePart`
(interleaved in notebook order, so the model knows which figure belongs to which cell)
plus the list of :class:`SkippedItem` (what was left out, and why).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from jupyter_ai_vision.context.models import ModelProfile
    from jupyter_ai_vision.limits import ImagePolicy

#: Kinds of notebook content an item can come from.
Kind = Literal[
    "source",  # a cell's source
    "png",
    "jpeg",
    "gif",
    "webp",
    "svg",
    "vega-lite",
    "vega",  # a Vega (not Vega-Lite) spec
    "plotly",
    "bokeh",
    "html",
    "attachment",  # markdown cell attachment
    "markdown-link",  # markdown image link to a local file
    "remote-link",  # markdown image link to a URL (never fetched)
    "error",
    "stream",
    "text",  # text/plain, text/markdown, application/json... outputs
    "kernel-variable",  # an @name reference resolved through _ai_repr_
    "note",  # builder's own notes (headers, markers)
]


@dataclass(frozen=True)
class Provenance:
    """Where an item came from in the notebook."""

    cell_index: int | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    output_index: int | None = None
    kind: Kind = "note"
    mime: str | None = None

    def label(self) -> str:
        """Short human label, e.g. ``cell 12 [7] output 0``."""
        if self.cell_index is None:
            return self.kind
        text = f"cell {self.cell_index}"
        if self.execution_count is not None:
            text += f" [{self.execution_count}]"
        if self.output_index is not None:
            text += f" output {self.output_index}"
        return text


@dataclass
class TextPart:
    """Text for the model: notebook text (defused by the wire format before it is sent)."""

    text: str
    provenance: Provenance = field(default_factory=Provenance)

    def to_openai(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass
class Marker(TextPart):
    """A line written by the wire format (``context/messages.py``): framing, figure markers,
    stubs, kernel-variable tags. Its notebook-derived pieces were defused as it was written,
    so it is sent as it is; every other :class:`TextPart` is defused."""


@dataclass
class ImagePart:
    """An image exactly as it will be sent (already normalised and within budget)."""

    data: bytes
    mime: str  # "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    width: int  # sent size
    height: int
    original_width: int
    original_height: int
    original_bytes: int
    tokens: int  # estimated image tokens for the target model
    sha256: str  # of the *original* bytes (dedupe / "already sent" key)
    provenance: Provenance = field(default_factory=Provenance)
    caption: str | None = None  # e.g. Vega-Lite spec summary, title

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_openai(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.data_uri()}}


@dataclass(frozen=True)
class SkippedItem:
    """Something visual that was not sent, with a one-line reason."""

    provenance: Provenance
    reason: str


@dataclass(frozen=True)
class ChartRender:
    """An interactive chart (Plotly, Bokeh) the server drew, or tried to, for this request."""

    provenance: Provenance
    seconds: float | None  # time in the browser; None when the picture came from the cache
    outcome: str  # "rendered" | "cached" | the one-line reason it stayed a text summary


Part = TextPart | ImagePart


@dataclass
class VisionContext:
    """What the model will see of a notebook."""

    parts: list[Part] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    notebook: str | None = None  # path or name, for messages
    model: str | None = None
    images_supported: bool = True  # False: the model gets text stubs only
    focus_cell_index: int | None = None
    renders: list[ChartRender] = field(default_factory=list)  # interactive charts drawn
    stale_figures: int = 0  # figures whose cell was edited after they were produced
    captions: dict[str, str] = field(default_factory=dict)  # sha256 -> caption (text-only model)
    # The budget the images were chosen under, so that what else the request sends (@name
    # objects) continues it: ``budget.RemainingBudget.after(ctx)``.
    policy: ImagePolicy | None = None
    profile: ModelProfile | None = None
    exclude_sha256: frozenset[str] = frozenset()  # images already shown in the conversation

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]

    @property
    def image_tokens(self) -> int:
        return sum(p.tokens for p in self.images)

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def text_tokens(self) -> int:
        """Rough token estimate for the text parts (4 characters per token)."""
        return (len(self.text) + 3) // 4

    def to_openai_content(self) -> list[dict[str, Any]]:
        """OpenAI-style content parts; adjacent text parts are merged."""
        content: list[dict[str, Any]] = []
        for part in self.parts:
            if isinstance(part, TextPart) and content and content[-1]["type"] == "text":
                content[-1]["text"] += "\n" + part.text
            else:
                content.append(part.to_openai())
        return content

    def to_langchain_messages(
        self, question: str | None = None, *, system: str | None = None
    ) -> list[Any]:
        """LangChain messages: optional system message, then one human message
        holding the notebook context followed by the question."""
        from langchain_core.messages import HumanMessage, SystemMessage

        content = self.to_openai_content()
        if question:
            content.append({"type": "text", "text": question})
        messages: list[Any] = []
        if system:
            messages.append(SystemMessage(content=system))
        messages.append(HumanMessage(content=content))  # type: ignore[arg-type]
        return messages

    def summary(self) -> str:
        """One compact line: what was seen and what was left out."""
        kinds: dict[str, int] = {}
        cells: set[int] = set()
        for img in self.images:
            kinds[img.provenance.kind] = kinds.get(img.provenance.kind, 0) + 1
            if img.provenance.cell_index is not None:
                cells.add(img.provenance.cell_index)
        seen = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no images"
        text = f"Seen: {seen}"
        if cells:
            text += (
                " from cell"
                + ("s " if len(cells) > 1 else " ")
                + ", ".join(str(c) for c in sorted(cells))
            )
        if self.stale_figures:
            text += f"; {self.stale_figures} stale (cell edited after it ran)"
        if self.skipped:
            text += f"; left out: {len(self.skipped)} ({_reasons(self.skipped)})"
        if not self.images_supported:
            text += "; images not sent: the model does not accept images"
        return text

    def to_json(self) -> dict[str, Any]:
        """The ``inspect --json`` shape."""
        return {
            "notebook": self.notebook,
            "model": self.model,
            "items": [
                {
                    "cell_index": p.provenance.cell_index,
                    "cell_id": p.provenance.cell_id,
                    "kind": p.provenance.kind,
                    "mime": p.provenance.mime,
                    "width": p.original_width,
                    "height": p.original_height,
                    "sent_width": p.width,
                    "sent_height": p.height,
                    "bytes": p.nbytes,
                    "tokens": p.tokens,
                    "sha256": p.sha256,
                }
                for p in self.images
            ],
            "skipped": [
                {
                    "cell_index": s.provenance.cell_index,
                    "kind": s.provenance.kind,
                    "reason": s.reason,
                }
                for s in self.skipped
            ],
            "renders": [
                {
                    "cell_index": r.provenance.cell_index,
                    "kind": r.provenance.kind,
                    "outcome": r.outcome,
                    "ms": None if r.seconds is None else round(r.seconds * 1000, 1),
                }
                for r in self.renders
            ],
            "captions": dict(self.captions),
            "totals": {
                "stale_figures": self.stale_figures,
                "images": len(self.images),
                "image_tokens": self.image_tokens,
                "text_tokens": self.text_tokens,
            },
        }


def _reasons(skipped: Sequence[SkippedItem]) -> str:
    counts: dict[str, int] = {}
    for item in skipped:
        key = item.reason.split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {n}" if n > 1 else k for k, n in counts.items())


def dumps(items: Iterable[Any]) -> str:
    """JSON for dataclass items (debugging aid)."""
    return json.dumps([asdict(i) for i in items], default=str)
