"""``@name`` references in a question: find them, and turn the named objects into parts.

Only dotted identifiers (``@df``, ``@model.coef_``, ``@a.b.c``) are references; anything else
that follows an ``@`` (``@x[0]``, ``@__import__('os')``, ``@df;``) is rejected with a one-line
note and never evaluated. Names are resolved by a dict lookup plus ``getattr`` on validated
identifiers, never by ``eval``. Dunder segments (``@obj.__class__``) are rejected.

- :func:`find_references` — text -> names (+ notes about rejected ones);
- :func:`resolve_in_namespace` — in the kernel (``%%ai``): names -> parts, notes;
- ``server.kernels.fetch_from_kernel`` — in the Jupyter server (``/see``): names -> parts, notes, via
  :mod:`jupyter_ai_vision.server.kernels`.

Images from ``_ai_repr_`` bundles go through :func:`jupyter_ai_vision.media.load.prepare_image`
and the request's one image budget (:class:`~jupyter_ai_vision.context.budget.RemainingBudget`:
after a notebook context, what the notebook's figures left), exactly like notebook raster;
the text is a ``<kernel-variable>`` block written and defused by :mod:`context.messages`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jupyter_ai_vision.context import messages
from jupyter_ai_vision.context.budget import ImagePolicy, RemainingBudget, image_part
from jupyter_ai_vision.context.parts import ImagePart, Part, Provenance
from jupyter_ai_vision.errors import ImageRejected, NameNotFound
from jupyter_ai_vision.kernel.names import validate_name
from jupyter_ai_vision.mimes import RASTER_MIMES, TEXT_MIMES, decode_base64

if TYPE_CHECKING:
    from jupyter_ai_vision.media.raster import ImageCache

#: At most this many references are looked up per question.
MAX_REFERENCES = 10
#: Text per referenced object sent to the model.
DEFAULT_MAX_CHARS = 8_000
#: Image MIME types read from a bundle, in order of preference (one image per object).
IMAGE_MIMES = RASTER_MIMES

# "@" not preceded by a word character, "." or "@" (so e-mail addresses are not references),
# then everything up to whitespace; trailing sentence punctuation is not part of the name.
_TOKEN = re.compile(r"(?<![\w.@])@(\S+)")
_TRAILING = ".,!?:)]}'\"`*"
# Chat context commands like "@file:notes.md" belong to Jupyter AI, not to us.
_CONTEXT_COMMAND = re.compile(r"^[A-Za-z_]\w*:")


class References(list[str]):
    """A list of valid names, plus ``notes`` about the ``@...`` tokens that were rejected."""

    def __init__(self, names: Iterable[str] = (), notes: Iterable[str] = ()) -> None:
        super().__init__(names)
        self.notes: list[str] = list(notes)


def find_references(text: str) -> References:
    """The ``@name`` references in ``text``, in order, without duplicates."""
    names: list[str] = []
    notes: list[str] = []
    for match in _TOKEN.finditer(text or ""):
        raw = match.group(1)
        token = raw.rstrip(_TRAILING)
        if not token or _CONTEXT_COMMAND.match(token):
            continue
        reason = validate_name(token)
        if reason:  # quote what the user typed, e.g. "@x[0]" rather than "@x[0"
            notes.append(validate_name(raw) or reason)
        elif token not in names:
            names.append(token)
    if len(names) > MAX_REFERENCES:
        notes.append(f"only the first {MAX_REFERENCES} of {len(names)} @references were looked up")
        names = names[:MAX_REFERENCES]
    return References(names, notes)


def walk(namespace: Mapping[str, Any], name: str) -> Any:
    """``namespace[first]`` then ``getattr`` for each further segment (validated names only)."""
    reason = validate_name(name)
    if reason:
        raise NameNotFound(reason)
    first, *rest = name.split(".")
    if first not in namespace:
        raise NameNotFound(f"@{name}: {first!r} is not defined in the kernel")
    obj = namespace[first]
    path = first
    for attr in rest:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise NameNotFound(f"@{name}: {path} has no attribute {attr!r}") from None
        except Exception as exc:  # a property that raises
            raise NameNotFound(
                f"@{name}: reading {path}.{attr} raised {type(exc).__name__}: {exc}"
            ) from None
        path += "." + attr
    return obj


# ------------------------------------------------------------------------ bundle -> parts


def _text_of(data: Mapping[str, Any]) -> str:
    for mime in TEXT_MIMES:
        if isinstance(data.get(mime), str):
            return data[mime]
    if "application/json" in data:
        return json.dumps(data["application/json"], indent=1)[:DEFAULT_MAX_CHARS]
    other = [m for m in data if not m.startswith("image/")]
    return f"(representation in {', '.join(other) or 'images only'})"


def entry_to_parts(
    entry: Mapping[str, Any], budget: RemainingBudget, *, cache: ImageCache | None = None
) -> tuple[list[Part], list[str]]:
    """One fetched entry (``{"name", "type", "data", "notes"}`` or ``{"name", "error"}``)
    -> a ``<kernel-variable>`` text part and at most one image part (recorded in
    ``budget``), plus notes."""
    name = str(entry.get("name", "?"))
    if "error" in entry:
        return [], [str(entry["error"])]
    data = entry.get("data") or {}
    notes = [f"@{name}: {n}" for n in entry.get("notes") or []]
    text = _text_of(data)
    image, image_note = _image_part(name, data, budget, cache)
    if image_note:
        text += f"\n[image of @{name}: {image_note}]"
        if image_note != _DUPLICATE:  # the model is told; the user has lost nothing
            notes.append(f"@{name}: image {image_note}")
    parts: list[Part] = [messages.kernel_variable(name, entry.get("type", "?"), text)]
    if image is not None:
        parts.append(image)
    return parts, notes


_DUPLICATE = "not sent twice: the same image is already in this request or conversation"


def _image_part(
    name: str, data: Mapping[str, Any], budget: RemainingBudget, cache: ImageCache | None
) -> tuple[ImagePart | None, str | None]:
    mime = next((m for m in IMAGE_MIMES if isinstance(data.get(m), str)), None)
    if mime is None:
        return None, None
    from jupyter_ai_vision.media.load import prepare_image

    if budget.profile.supports_images is False:
        return None, "not sent: the model does not accept images"
    try:
        raw = decode_base64(data[mime], budget.policy)
        prepared = prepare_image(raw, mime, budget.policy, cache)
    except ImageRejected as exc:
        return None, f"not sent: {exc.reason}"
    if prepared.sha256 in budget.seen:
        return None, _DUPLICATE
    part = image_part(
        prepared,
        profile=budget.profile,
        provenance=Provenance(kind="kernel-variable", mime=mime),
        caption=f"@{name}",
    )
    refused = budget.refuse(part.tokens)
    if refused:
        return None, f"{prepared.original_width}×{prepared.original_height}, not sent: {refused}"
    budget.take(part.tokens, part.sha256)
    return part, None


def request_mimetypes(supports_images: bool | None) -> list[str]:
    """What to ask reprs for: no images at all for a text-only model (they are not rendered)."""
    images = [] if supports_images is False else list(IMAGE_MIMES)
    return [*TEXT_MIMES, *images, "application/json"]


def entries_to_parts(
    entries: Sequence[Mapping[str, Any]],
    *,
    budget: RemainingBudget | None = None,
    policy: ImagePolicy | None = None,
    model: str | None = None,
    supports_images: bool | None = None,
    cache: ImageCache | None = None,
) -> tuple[list[Part], list[str]]:
    """Fetched entries -> parts and notes, their images within the request's budget.

    ``budget`` is what the request has left (``RemainingBudget.after(ctx)`` after a notebook
    context) and is continued: call again with the same object for more entries of the same
    request. Without one, a fresh budget from ``policy`` / ``model`` / ``supports_images``.
    """
    if budget is None:
        budget = RemainingBudget.fresh(policy, model=model, supports_images=supports_images)
    parts: list[Part] = []
    notes: list[str] = []
    for entry in entries:
        more_parts, more_notes = entry_to_parts(entry, budget, cache=cache)
        parts.extend(more_parts)
        notes.extend(more_notes)
    return parts, notes


# ------------------------------------------------------------------------------ in-kernel


def resolve_in_namespace(
    names: Sequence[str],
    namespace: Mapping[str, Any],
    *,
    budget: RemainingBudget | None = None,
    policy: ImagePolicy | None = None,
    model: str | None = None,
    supports_images: bool | None = None,
    cache: ImageCache | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout: float = 5.0,
    **repr_kwargs: Any,
) -> tuple[list[Part], list[str]]:
    """Resolve ``names`` in ``namespace`` (e.g. IPython's ``user_ns``) for ``%%ai``.

    Returns ``(parts, notes)``: a ``kernel-variable`` text part per name (plus an image part
    when the representation has one and ``budget`` allows: see :func:`entries_to_parts`),
    and one-line notes for names that are invalid, undefined, or whose repr fell back. Extra
    kwargs go to the reprs.
    """
    if budget is None:
        budget = RemainingBudget.fresh(policy, model=model, supports_images=supports_images)
    entries = fetch_entries(
        names,
        namespace,
        mimetypes=request_mimetypes(budget.profile.supports_images),
        max_chars=max_chars,
        timeout=timeout,
        **repr_kwargs,
    )
    return entries_to_parts(entries, budget=budget, cache=cache)


def fetch_entries(
    names: Sequence[str], namespace: Mapping[str, Any], **kwargs: Any
) -> list[dict[str, Any]]:
    """``ai_repr`` of each name as a JSON-ready entry (what the kernel sends to the server)."""
    from jupyter_ai_vision.ai_repr.registry import _default

    registry = _default()
    entries: list[dict[str, Any]] = []
    for name in list(names)[:MAX_REFERENCES]:
        try:
            obj = walk(namespace, name)
        except NameNotFound as exc:
            entries.append({"name": name, "error": str(exc)})
            continue
        result = registry.format(obj, **kwargs)
        entries.append({"name": name, **result.to_json()})
    return entries
