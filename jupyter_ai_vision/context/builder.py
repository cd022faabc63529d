"""The context builder: notebook -> :class:`~jupyter_ai_vision.context.parts.VisionContext`.

One builder serves every surface (/see, %%ai, inline completion, CLI). Stages:
snapshot (:mod:`.snapshot`) -> extraction (:mod:`.extract`) -> probe every image cheaply
(decode base64, hash, read the header) -> dedupe -> budget (:mod:`.budget`) -> render /
normalise only the images that will be sent, in a thread pool (:mod:`.images`, :mod:`.svg`,
:mod:`.vega`) -> assemble text and images in notebook order, each image preceded by a marker
naming its cell, each image not sent replaced by a one-line stub.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision._text import one_line, quoted
from jupyter_ai_vision.context import messages
from jupyter_ai_vision.context.extract import ImageCandidate, extract
from jupyter_ai_vision.context.parts import (
    ChartRender,
    ImagePart,
    Marker,
    Part,
    Provenance,
    SkippedItem,
    TextPart,
    VisionContext,
)
from jupyter_ai_vision.context.snapshot import NotebookError, NotebookSnapshot, load_notebook
from jupyter_ai_vision.errors import ImageRejected, RenderError
from jupyter_ai_vision.media.load import prepare_image, probe_size
from jupyter_ai_vision.mimes import decode_base64

if TYPE_CHECKING:
    from jupyter_ai_vision.context.budget import ImagePolicy, ModelProfile
    from jupyter_ai_vision.media.raster import ImageCache, PreparedImage

#: Default guess for a chart's rendered size before it is rendered (refined afterwards).
_CHART_GUESS = (450, 350)
_SVG_GUESS = (800, 600)
_MAX_ROUNDS = 4
#: Characters of notebook text sent at most (about 30k tokens); less for small windows.
MAX_TEXT_CHARS = 120_000

_default_cache: ImageCache | None = None
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def default_cache() -> ImageCache:
    """The process-wide cache of prepared images (warm builds reuse it)."""
    global _default_cache
    with _lock:
        if _default_cache is None:
            from jupyter_ai_vision.media.raster import ImageCache

            _default_cache = ImageCache()
        return _default_cache


def clear_caches() -> None:
    """Forget every processed image (the default cache) and every probed payload."""
    default_cache().clear()
    _probe_memo.clear()


def _executor() -> ThreadPoolExecutor:
    # Image work is CPU-bound but Pillow, zlib and hashlib release the GIL.
    global _pool
    with _lock:
        if _pool is None:
            # One more worker than cores: an SVG render waits on its sandbox subprocess
            # without using a core, and should not hold up the resizing of other images.
            workers = max(3, min(5, (os.cpu_count() or 2) + 1))
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="jupyter-ai-vision")
        return _pool


class BuildOptions(TypedDict, total=False):
    """What a build can be told (every surface passes some of these).

    - ``focus``: cell id or index; its figures are sent first, then the nearest preceding ones.
    - ``model`` / ``supports_images``: the target model (its image budget and token costs);
      ``supports_images`` overrides what is known about the model.
    - ``policy``: the image limits (:class:`ImagePolicy`).
    - ``cache``: prepared-image cache (default: the process-wide one).
    - ``exclude_sha256``: images already sent in this conversation (they become a stub).
    - ``include_sources``: send cell sources (default True).
    - ``question``: appended after the notebook content.
    - ``max_text_chars``: notebook text cap (default 120k characters, less for small model
      windows; the cells farthest from the focus are shortened first).
    - ``executed_sources``: execution count -> the source the kernel ran under that count
      (from its input history). A figure whose cell now reads differently is marked stale.
      Leave it out when no kernel is running: nothing is then said about staleness.
    """

    focus: int | str | None
    model: str | None
    policy: ImagePolicy | None
    supports_images: bool | None
    cache: ImageCache | None
    exclude_sha256: Iterable[str]
    include_sources: bool
    question: str | None
    max_text_chars: int | None
    executed_sources: Mapping[int, str] | None


def build_context(
    notebook: Any, *, root_dir: Any = None, path: Any = None, **options: Unpack[BuildOptions]
) -> VisionContext:
    """What a model will see of ``notebook`` (a YNotebook, nbformat dict or path); see
    :class:`BuildOptions` for the options. Raises :class:`NotebookError`."""
    snapshot = load_notebook(notebook, path=path, root_dir=root_dir)
    return build_from_snapshot(snapshot, **options)


async def build_context_async(
    notebook: Any, *, root_dir: Any = None, path: Any = None, **options: Unpack[BuildOptions]
) -> VisionContext:
    """:func:`build_context` for async code: the heavy work runs in a worker thread.

    A live YNotebook is read on the calling (event loop) thread first: its CRDT objects
    must not be touched from another thread, and the read is fast (~ms).
    """
    loop = asyncio.get_running_loop()
    if type(notebook).__name__ == "YNotebook":
        notebook = load_notebook(notebook, path=path, root_dir=root_dir)
    if isinstance(notebook, NotebookSnapshot):
        call = functools.partial(build_from_snapshot, notebook, **options)
    else:
        call = functools.partial(build_context, notebook, root_dir=root_dir, path=path, **options)
    return await loop.run_in_executor(None, call)


def build_from_snapshot(
    snapshot: NotebookSnapshot,
    *,
    focus: int | str | None = None,
    model: str | None = None,
    policy: ImagePolicy | None = None,
    supports_images: bool | None = None,
    cache: ImageCache | None = None,
    exclude_sha256: Iterable[str] = (),
    include_sources: bool = True,
    question: str | None = None,
    max_text_chars: int | None = None,
    executed_sources: Mapping[int, str] | None = None,
) -> VisionContext:
    """Build a context from an already taken :class:`NotebookSnapshot` (options:
    :class:`BuildOptions`)."""
    from jupyter_ai_vision.context.budget import ImagePolicy, model_profile

    policy = policy or ImagePolicy()
    profile = model_profile(model, supports_images=supports_images)
    focus_position = resolve_focus(snapshot, focus)
    # Every label and priority uses the cell's index in the whole notebook (a window of a
    # bigger notebook, as inline completion sends, keeps its real cell numbers).
    focus_index = snapshot.number(focus_position)
    extraction = extract(
        snapshot.cells,
        notebook_dir=snapshot.notebook_dir,
        root_dir=snapshot.root_dir,
        include_sources=include_sources,
        focus_cell_index=focus_position,
        numbers=snapshot.numbers,
    )
    run = _ImageRun(
        policy=policy,
        profile=profile,
        cache=cache if cache is not None else default_cache(),
        focus_index=focus_index,
        exclude=frozenset(exclude_sha256),
    )
    skipped = [SkippedItem(Provenance(kind="note"), n) for n in snapshot.notes]
    skipped += extraction.skipped
    images_supported = profile.supports_images is not False
    resolved = run.resolve([s for s in extraction.slots if isinstance(s, ImageCandidate)])
    skipped.extend(run.skips)
    limit = max_text_chars or _text_limit(profile)
    omitted = _fit_text(extraction.slots, focus_index, limit)
    if omitted:
        skipped.append(SkippedItem(Provenance(kind="note"), omitted))
    stale_cells = stale_figure_cells(snapshot, executed_sources)
    body: list[Part] = []
    number = 0
    stale = 0
    for slot in extraction.slots:
        if isinstance(slot, TextPart):
            body.append(slot)
            continue
        outcome = resolved[id(slot)]
        flags = [messages.STALE] if slot.provenance.cell_index in stale_cells else []
        stale += bool(flags)
        if isinstance(outcome, ImagePart):
            number += 1
            note = run.notes.get(id(outcome))
            body.append(messages.figure_marker(number, outcome, note, flags=flags))
            body.append(outcome)
        else:
            stub, reason = outcome
            body.append(messages.with_flags(stub, flags))
            if reason:
                skipped.append(SkippedItem(slot.provenance, reason))
    parts = messages.frame(
        body,
        notebook_name=os.path.basename(snapshot.name) if snapshot.name else None,
        n_cells=snapshot.total_cells or len(snapshot.cells),
        focus_index=focus_index,
        question=question,
        notes=[messages.OUT_OF_ORDER] if executed_out_of_order(snapshot.cells) else [],
    )
    skipped.sort(key=lambda s: (s.provenance.cell_index is None, s.provenance.cell_index or 0))
    return VisionContext(
        parts=parts,
        skipped=skipped,
        notebook=snapshot.name,
        model=model,
        images_supported=images_supported,
        focus_cell_index=focus_index,
        renders=run.renders,
        stale_figures=stale,
        policy=policy,
        profile=profile,
        exclude_sha256=run.exclude,
    )


def _text_limit(profile: ModelProfile) -> int:
    """Characters of notebook text: at most ~40 % of the model's window (4 chars a token)."""
    if profile.input_window:
        return max(8_000, min(MAX_TEXT_CHARS, int(profile.input_window * 4 * 0.4)))
    return MAX_TEXT_CHARS


def _fit_text(slots: list[Any], focus_index: int | None, limit: int) -> str | None:
    """Shrink the text of the cells farthest from the focus until the total fits ``limit``.

    Each shrunk cell keeps a one-line header so the model knows it exists; images and stubs
    are untouched. Returns a one-line note when anything was omitted.
    """
    from jupyter_ai_vision.context.budget import priority_order

    texts = [s for s in slots if isinstance(s, TextPart)]
    total = sum(len(t.text) for t in texts)
    if total <= limit:
        return None
    by_cell: dict[int, list[TextPart]] = {}
    for t in texts:
        if t.provenance.cell_index is not None:
            by_cell.setdefault(t.provenance.cell_index, []).append(t)
    cells = sorted(by_cell)
    shrunk = 0
    for pos in reversed(priority_order(list(cells), focus_index)):
        if total <= limit:
            break
        index = cells[pos]
        if index == focus_index:
            continue
        for t in by_cell[index]:
            new = (
                f"## Cell {index} [text omitted to fit the context]"
                if t.provenance.kind == "source"
                else ""
            )
            total += len(new) - len(t.text)
            t.text = new
        shrunk += 1
    return (
        f"text of {shrunk} cells far from the focus omitted to fit the context ({limit} characters)"
    )


def stale_figure_cells(
    snapshot: NotebookSnapshot, executed_sources: Mapping[int, str] | None
) -> set[int]:
    """Indexes (in the whole notebook) of code cells whose current source differs from the
    source the kernel ran under the cell's execution count (its outputs no longer match).

    Says nothing (empty set) without the kernel's history, and nothing for a cell whose count
    the history does not know (e.g. it ran before the kernel restarted).
    """
    if not executed_sources:
        return set()
    stale = set()
    for index, cell in enumerate(snapshot.cells):
        count = cell.get("execution_count")
        if cell.get("cell_type") != "code" or not isinstance(count, int):
            continue
        ran = executed_sources.get(count)
        if ran is not None and _same_code(ran, cell.get("source")) is False:
            stale.add(snapshot.numbers[index] if snapshot.numbers else index)
    return stale


def _same_code(ran: str, source: Any) -> bool:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    return ran.strip() == text.strip()


def executed_out_of_order(cells: list[dict[str, Any]]) -> bool:
    """True when execution counts go down somewhere going down the notebook."""
    counts: list[int] = [
        c["execution_count"]
        for c in cells
        if c.get("cell_type") == "code" and isinstance(c.get("execution_count"), int)
    ]
    return any(later < earlier for earlier, later in zip(counts, counts[1:], strict=False))


def resolve_focus(snapshot: NotebookSnapshot, focus: int | str | None) -> int | None:
    """Cell index for ``focus`` (index, negative index, numeric string or cell id)."""
    if focus is None or focus == "":
        return None
    n = len(snapshot.cells)
    if isinstance(focus, str):
        for i, cell in enumerate(snapshot.cells):
            if cell.get("id") == focus:
                return i
        if not re.fullmatch(r"-?[0-9]{1,18}", focus.strip()):  # int() refuses "²" and 5,000 digits
            raise NotebookError(
                f"no cell with id {quoted(focus)} in the notebook; "
                f"pass a cell id or index (0..{n - 1})"
            )
        focus = int(focus)
    index = focus + n if focus < 0 else focus
    if not 0 <= index < n:
        raise NotebookError(
            f"cell index {focus} out of range: the notebook has {n} cells (0..{n - 1})"
        )
    return index


# --- images -------------------------------------------------------------------------------


@dataclass(eq=False)  # identity semantics: probes are dict keys
class _Probe:
    """What is known about one candidate before it is normalised."""

    candidate: ImageCandidate
    sha256: str
    width: int
    height: int
    exact: bool  # size read from the image itself (not a guess for a chart / SVG)
    data: bytes | None = None  # raw bytes of a raster, when already decoded
    original_bytes: int = 0
    tokens: int = 0

    @property
    def cell_index(self) -> int | None:
        return self.candidate.provenance.cell_index


Outcome = ImagePart | tuple[Marker, str | None]  # an image, or (stub, skipped reason)


@dataclass
class _ImageRun:
    policy: ImagePolicy
    profile: ModelProfile
    cache: ImageCache
    focus_index: int | None
    exclude: frozenset[str]
    notes: dict[int, str] = field(default_factory=dict)
    skips: list[SkippedItem] = field(default_factory=list)
    renders: list[ChartRender] = field(default_factory=list)  # interactive charts, for inspect
    _charts_started: int = 0  # chart renders begun in this request (policy.max_chart_renders)
    _charts_lock: threading.Lock = field(default_factory=threading.Lock)
    _deadline: float | None = None  # see _render_deadline

    def resolve(self, candidates: list[ImageCandidate]) -> dict[int, Outcome]:
        """Decide, for every candidate, the image sent or the stub that replaces it."""
        outcomes: dict[int, Outcome] = {}
        probes = self._probe_all(candidates, outcomes)
        probes = self._dedupe(probes, outcomes)
        if self.profile.supports_images is False:
            for p in probes:
                outcomes[id(p.candidate)] = (_stub(p, "model does not accept images"), None)
            return outcomes
        prepared = self._select_and_prepare(probes, outcomes)
        for p, image in prepared.items():
            part = self._part(p, image)
            outcomes[id(p.candidate)] = part
            if image.note:  # e.g. "labelled image/png but is JPEG"
                self.notes[id(part)] = one_line(image.note)
                if image.note.startswith(_SVG_REFS_NOTE):  # content left out: say so
                    self.skips.append(SkippedItem(p.candidate.provenance, one_line(image.note)))
        return outcomes

    def _probe_all(
        self, candidates: list[ImageCandidate], outcomes: dict[int, Outcome]
    ) -> list[_Probe]:
        results = _map(self._probe, candidates)
        probes: list[_Probe] = []
        for cand, result in zip(candidates, results, strict=True):
            if isinstance(result, _Probe):
                probes.append(result)
            else:
                outcomes[id(cand)] = (_bad_stub(cand, result), result)
        return probes

    def _probe(self, cand: ImageCandidate) -> _Probe | str:

        try:
            if cand.source == "vega":
                spec = json.dumps(cand.payload, sort_keys=True, default=str).encode()
                return _Probe(cand, _sha("vega", spec), *_chart_guess(cand.payload), exact=False)
            if cand.source in ("plotly", "bokeh"):
                probe = _chart_probe(cand)
                if self._may_draw_charts() and self.cache.get(probe.sha256, self.policy) is None:
                    from jupyter_ai_vision.media import charts

                    charts.start()  # in the background: its ~2-3 s overlap the rest of the build
                return probe
            if cand.source == "svg" or cand.mime == "image/svg+xml":
                raw = (
                    cand.payload if isinstance(cand.payload, bytes) else str(cand.payload).encode()
                )
                return _Probe(cand, _sha("svg", raw), *_svg_guess(raw), exact=False)
            memo_key = cand.payload if isinstance(cand.payload, str) else None
            known = _probe_memo.get(memo_key) if memo_key is not None else None
            if known is not None:  # seen before: no need to decode and hash again
                sha, w, h, nbytes = known
                return _Probe(cand, sha, w, h, exact=w > 0, original_bytes=nbytes)
            data = (
                decode_base64(cand.payload, self.policy)
                if cand.source == "base64"
                else cand.payload
            )
            # Size from headers (every frame) or Pillow's lazy open: nothing is decoded for
            # images the budget will not select; a rejection (too large) costs no decode.
            size = probe_size(data, cand.mime, self.policy)
            w, h = size or (0, 0)  # None: SVG bytes, sized once drawn
            sha = hashlib.sha256(data).hexdigest()
            if memo_key is not None and cand.source == "base64":
                _probe_memo.put(memo_key, (sha, w, h, len(data)))
            return _Probe(cand, sha, w, h, exact=w > 0, data=data, original_bytes=len(data))
        except ImageRejected as exc:
            return one_line(exc.reason)

    def _dedupe(self, probes: list[_Probe], outcomes: dict[int, Outcome]) -> list[_Probe]:
        """One probe per image content (the highest-priority one); drop already-shown ones."""
        from jupyter_ai_vision.context.budget import priority_order

        keep: dict[str, _Probe] = {}
        for pos in priority_order([p.cell_index for p in probes], self.focus_index):
            p = probes[pos]
            if p.sha256 in self.exclude:
                outcomes[id(p.candidate)] = (
                    _stub(p, "already shown earlier in this conversation"),
                    None,
                )
            elif p.sha256 in keep:
                first = keep[p.sha256].candidate.provenance
                outcomes[id(p.candidate)] = (_stub(p, f"same image as {first.label()}"), None)
            else:
                keep[p.sha256] = p
        return [p for p in probes if keep.get(p.sha256) is p]

    def _select_and_prepare(
        self, probes: list[_Probe], outcomes: dict[int, Outcome]
    ) -> dict[_Probe, PreparedImage]:
        """Select within budget, prepare the selection; repeat while failures or real sizes
        of rendered charts change the picture (bounded)."""
        from jupyter_ai_vision.context.budget import select_images

        prepared: dict[_Probe, PreparedImage] = {}
        live = list(probes)
        dropped: list[tuple[_Probe, str]] = []
        for _round in range(_MAX_ROUNDS):
            for p in live:
                image = prepared.get(p)
                w, h = (image.width, image.height) if image else self.policy.fit(p.width, p.height)
                p.tokens = self._tokens(w, h)
            selected, dropped = select_images(
                live, focus_cell_index=self.focus_index, policy=self.policy, profile=self.profile
            )
            # Longest jobs first (renders, then the largest images): a shorter makespan.
            todo = sorted(
                (p for p in selected if p not in prepared),
                key=lambda p: (p.data is not None, -(p.width * p.height)),
            )
            if not todo:
                break
            for p, result in zip(todo, _map(self._prepare, todo), strict=True):
                if isinstance(result, str):
                    outcomes[id(p.candidate)] = (_bad_stub(p.candidate, result), result)
                    live.remove(p)
                else:
                    prepared[p] = result
        else:  # out of rounds: keep what fits among the prepared ones
            unexamined = [p for p in live if p not in prepared]
            live = [p for p in live if p in prepared]
            for p in live:
                p.tokens = self._tokens(prepared[p].width, prepared[p].height)
            selected, dropped = select_images(
                live, focus_cell_index=self.focus_index, policy=self.policy, profile=self.profile
            )
            reason = "budget: not examined (many unusable images were tried first)"
            dropped = [*dropped, *((p, reason) for p in unexamined)]
        chosen = set(selected)
        for p, reason in dropped:
            outcomes[id(p.candidate)] = (_stub(p, reason, prepared.get(p)), reason)
        return {p: prepared[p] for p in probes if p in chosen}

    def _prepare(self, p: _Probe) -> PreparedImage | str:

        try:
            if p.candidate.source in ("base64", "bytes") and p.candidate.mime != "image/svg+xml":
                hit = self.cache.get(p.sha256, self.policy)
                if isinstance(hit, ImageRejected):
                    raise hit
                if hit is not None:
                    return hit
                data = p.data
                if data is None:  # probed from the memo: decode now (cache miss)
                    data = decode_base64(p.candidate.payload, self.policy)
                return prepare_image(data, p.candidate.mime, self.policy, self.cache)
            # Charts and SVGs: cache the final image under the source's hash, so a warm
            # build neither renders nor rasterises again.
            hit = self.cache.get(p.sha256, self.policy)
            is_chart = p.candidate.source in ("plotly", "bokeh")
            if is_chart and hit is not None:
                outcome = hit.reason if isinstance(hit, ImageRejected) else "cached"
                self.renders.append(ChartRender(p.candidate.provenance, None, outcome))
            if isinstance(hit, ImageRejected):
                raise hit
            if hit is not None:
                return hit
            if is_chart:
                return self._chart(p)
            try:
                image = prepare_image(self._render(p), "image/png", self.policy, self.cache)
                if p.candidate.source != "vega":
                    image = replace(image, note=_svg_removed_refs(p.candidate.payload, self.policy))
            except ImageRejected as exc:
                if time.monotonic() < self._render_deadline():  # not cut short: the figure's own
                    self.cache.put(p.sha256, self.policy, exc)
                raise
            self.cache.put(p.sha256, self.policy, image)
            return image
        except ImageRejected as exc:
            return one_line(exc.reason)

    def _render(self, p: _Probe) -> bytes:
        from jupyter_ai_vision.media.raster import ImageRejected

        cand = p.candidate
        deadline = self._render_deadline()
        if cand.source == "vega":  # Vega-Lite, or Vega: both drawn in the chart sandbox
            from jupyter_ai_vision.media import vega

            render = vega.render_vega if cand.provenance.kind == "vega" else vega.render_vegalite
            try:
                return render(cand.payload, policy=self.policy, deadline=deadline)
            except vega.RenderError as exc:
                raise ImageRejected(str(exc)) from None
        from jupyter_ai_vision.media.svg import rasterize_svg

        return rasterize_svg(cand.payload, self.policy, deadline=deadline)

    def _render_deadline(self) -> float:
        """Sandboxed renders of this context end ``policy.max_render_seconds`` after the first
        began: a notebook of hanging charts costs that, not their number times the timeout."""
        if self._deadline is None:  # a race between threads only moves it by microseconds
            self._deadline = time.monotonic() + self.policy.max_render_seconds
        return self._deadline

    def _may_draw_charts(self) -> bool:
        return self.profile.supports_images is not False and self.policy.max_chart_renders > 0

    def _chart(self, p: _Probe) -> PreparedImage:
        """Draw a Plotly / Bokeh chart (a cache miss), within this request's render cap.

        Only refusals that depend on the chart alone are cached; a browser still starting, a
        timeout or the cap leave the next request free to try again.
        """
        from jupyter_ai_vision.media import charts

        prov = p.candidate.provenance
        render = charts.render_plotly if p.candidate.source == "plotly" else charts.render_bokeh
        try:
            charts.vet(p.candidate.source, p.candidate.payload)  # refusals do not count
            with self._charts_lock:
                self._charts_started += 1
                over = self._charts_started > self.policy.max_chart_renders
            if over:
                reason = (
                    f"chart not drawn: over the limit of {self.policy.max_chart_renders} "
                    "interactive charts per request (described as text)"
                )
                self.renders.append(ChartRender(prov, None, reason))
                raise ImageRejected(reason)
            drawn = render(p.candidate.payload, timeout=self.policy.chart_timeout)
        except charts.ChartRefused as exc:  # the chart itself: the same answer next time
            self.renders.append(ChartRender(prov, None, one_line(str(exc))))
            self.cache.put(p.sha256, self.policy, ImageRejected(one_line(str(exc))))
            raise ImageRejected(one_line(str(exc))) from None
        except RenderError as exc:  # the browser's state: try again next time
            self.renders.append(ChartRender(prov, None, one_line(str(exc))))
            raise ImageRejected(one_line(str(exc))) from None
        self.renders.append(ChartRender(prov, drawn.seconds, "rendered"))
        image = prepare_image(drawn.png, "image/png", self.policy, self.cache)
        note = "; ".join(["drawn by the server from the chart's data", *drawn.notes])
        image = replace(image, note=note)
        self.cache.put(p.sha256, self.policy, image)
        return image

    def _tokens(self, width: int, height: int) -> int:
        from jupyter_ai_vision.context.budget import estimate_image_tokens

        return estimate_image_tokens(self.profile, width, height)

    def _part(self, p: _Probe, image: PreparedImage) -> ImagePart:
        from jupyter_ai_vision.context.budget import image_part

        return image_part(
            image,
            profile=self.profile,
            provenance=p.candidate.provenance,
            sha256=p.sha256,
            original_bytes=p.original_bytes or None,
            caption=p.candidate.caption,
        )


def _probe_memo_size(payload: str, _item: object) -> int:
    return len(payload)


# base64 payload -> (sha256, width, height, decoded bytes). Keyed by the payload string
# itself: a warm build of the same notebook finds it by the string's cached hash, a re-read
# notebook by one hash + compare, both far cheaper than decoding and hashing every image.
_probe_memo: LRU[str, tuple[str, int, int, int]] = LRU(max_size=64_000_000, sizeof=_probe_memo_size)


_SVG_REFS_NOTE = "SVG drawn without"
_REF = re.compile(r"""(?:href\s*=|url\s*\(|@import)""", re.IGNORECASE)


def _svg_removed_refs(svg: Any, policy: ImagePolicy) -> str | None:
    """A note when the SVG sanitiser removed references (files, URLs) from the drawing.

    Counts references before and after :func:`svg.sanitize_svg` (which keeps only in-document
    ``#id`` and inline ``data:`` images): the difference was never loaded.
    """
    from jupyter_ai_vision.media.raster import ImageRejected
    from jupyter_ai_vision.media.svg import sanitize_svg

    text = svg.decode("utf-8", "replace") if isinstance(svg, bytes) else str(svg)
    try:
        clean, _ = sanitize_svg(text, policy)
    except ImageRejected:
        return None
    removed = len(_REF.findall(text)) - len(_REF.findall(clean))
    if removed <= 0:
        return None
    noun = "reference" if removed == 1 else "references"
    return f"{_SVG_REFS_NOTE} {removed} external {noun} (files / URLs are never loaded)"


def _map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``fn`` over ``items`` in the shared pool (sequentially for one item)."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    return list(_executor().map(fn, items))


def _chart_probe(cand: ImageCandidate) -> _Probe:
    """Hash and guessed size of a Plotly / Bokeh chart (its JSON, key order ignored)."""
    from jupyter_ai_vision.media import charts

    if cand.source == "plotly":
        raw = json.dumps(charts.canonical(cand.payload), sort_keys=True, default=str).encode()
        layout = cand.payload.get("layout") if isinstance(cand.payload, dict) else None
        width, height = charts.chart_size(layout if isinstance(layout, dict) else {})
    else:
        raw = json.dumps(
            charts.canonical(cand.payload.docs_json_and_items()), sort_keys=True
        ).encode()
        width, height = _CHART_GUESS
    return _Probe(cand, _sha(cand.source, raw), width, height, exact=False)


def _sha(kind: str, data: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()


def _chart_guess(spec: Any) -> tuple[int, int]:
    w = spec.get("width") if isinstance(spec, dict) else None
    h = spec.get("height") if isinstance(spec, dict) else None
    if (
        isinstance(w, (int, float))
        and isinstance(h, (int, float))
        and 0 < w < 20000
        and 0 < h < 20000
    ):
        return int(w) + 100, int(h) + 80  # axes, title and legend
    return _CHART_GUESS


_SVG_SIZE = re.compile(
    rb'<svg[^>]*?\swidth="(\d+(?:\.\d+)?)(?:px)?"[^>]*?\sheight="(\d+(?:\.\d+)?)(?:px)?"', re.S
)


def _svg_guess(svg: bytes) -> tuple[int, int]:
    m = _SVG_SIZE.search(svg[:4000])
    if m:
        w, h = float(m.group(1)), float(m.group(2))
        if 0 < w < 20000 and 0 < h < 20000:
            return int(w), int(h)
    return _SVG_GUESS


# --- text ---------------------------------------------------------------------------------


def _stub(p: _Probe, reason: str, image: PreparedImage | None = None) -> Marker:
    size = None
    if image is not None:
        size = (image.original_width, image.original_height)
    elif p.exact and p.width:
        size = (p.width, p.height)
    return messages.figure_stub(p.candidate.provenance, reason, size=size)


def _bad_stub(cand: ImageCandidate, reason: str) -> Marker:
    return messages.figure_stub(cand.provenance, reason, usable=False)
