"""Command line: ``jupyter-ai-vision inspect NOTEBOOK`` shows what the model would see.

Exit codes: 0 success, 2 unusable notebook or bad arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_ai_vision.context.parts import Provenance, SkippedItem

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import VisionContext
    from jupyter_ai_vision.context.snapshot import NotebookSnapshot

PROG = "jupyter-ai-vision"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Let the AI in Jupyter see a notebook: show what a model would see."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = sub.add_parser(
        "inspect",
        help="show what the model would see of a notebook",
        description="Show each image the model would receive (cell, kind, original -> sent "
        "size, bytes, estimated tokens), what was left out and why, and totals.",
    )
    inspect.add_argument("notebook", metavar="NOTEBOOK", help="path to a .ipynb file")
    inspect.add_argument("--cell", metavar="ID|INDEX", help="focused cell (its figures go first)")
    inspect.add_argument(
        "--model", metavar="MODEL", help="LiteLLM model name (drives the image budget)"
    )
    images = inspect.add_mutually_exclusive_group()
    images.add_argument(
        "--images",
        dest="supports_images",
        action="store_const",
        const=True,
        help="treat the model as taking images (overrides the built-in table)",
    )
    images.add_argument(
        "--no-images",
        dest="supports_images",
        action="store_const",
        const=False,
        help="treat the model as text-only (figures become text stubs)",
    )
    inspect.add_argument(
        "--caption-model",
        metavar="MODEL",
        help="LiteLLM vision model that captions each figure for a text-only --model "
        "(e.g. ollama/llava, openai/gpt-4o-mini); its key comes from LiteLLM's usual variables",
    )
    inspect.add_argument(
        "--caption-api-base", metavar="URL", help="api_base of the caption model (e.g. Ollama)"
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument(
        "--html", metavar="OUT", type=Path, help="write a self-contained HTML report"
    )
    inspect.add_argument("--text", action="store_true", help="also print the full text context")
    inspect.add_argument(
        "--max-notebook-mb",
        metavar="MB",
        type=_megabytes,
        help="refuse notebook files larger than this "
        "(default: $JUPYTER_AI_VISION_MAX_NOTEBOOK_MB or 512)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        try:
            return _inspect(args)
        except BrokenPipeError:  # e.g. `| head`: the reader left, nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


def _megabytes(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of megabytes: {text[:40]!r}")
    return int(text) * 1024 * 1024


def _inspect(args: argparse.Namespace) -> int:
    from jupyter_ai_vision.context.builder import build_from_snapshot
    from jupyter_ai_vision.context.snapshot import NotebookError, load_notebook

    focus = args.cell  # a string: the builder tries it as a cell id, then as an index
    try:
        snapshot = load_notebook(args.notebook, max_bytes=args.max_notebook_mb)
        ctx = build_from_snapshot(
            snapshot,
            focus=focus,
            model=args.model,
            supports_images=args.supports_images,
        )
        if args.caption_model and not ctx.images_supported:
            ctx = _captioned(args, snapshot, focus)
    except NotebookError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.html is not None:
        from jupyter_ai_vision.cli.report import render_html

        try:
            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(render_html(ctx), encoding="utf-8")
        except OSError as exc:
            print(f"{PROG}: error: cannot write {args.html}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(ctx.to_json(), indent=2))
    else:
        print(format_summary(ctx))
        if args.text:
            print("\n" + ctx.text)
        if args.html is not None:
            print(f"HTML report: {args.html}")
    return 0


def _captioned(
    args: argparse.Namespace, snapshot: NotebookSnapshot, focus: int | str | None
) -> VisionContext:
    """The context a text-only model gets when a caption model describes the figures."""
    import asyncio
    from dataclasses import replace

    from jupyter_ai_vision.context.builder import build_from_snapshot
    from jupyter_ai_vision.llm.captions import CaptionSettings, captioned_context

    seen_by_captioner = build_from_snapshot(
        snapshot, focus=focus, model=args.caption_model, supports_images=True
    )
    # A command line waits for its captions (a chat waits at most a few seconds): inspect
    # shows what the model gets once they are there.
    settings = CaptionSettings(
        model=args.caption_model, api_base=args.caption_api_base, budget=120.0, timeout=120.0
    )
    ctx, report = asyncio.run(captioned_context(seen_by_captioner, settings))
    notes = []
    if report.pending:
        notes.append(f"{report.pending} captions not ready in time (figures left as stubs)")
    if report.error:
        notes.append(report.error)
    skipped = ctx.skipped + [SkippedItem(Provenance(kind="note"), n) for n in notes]
    return replace(ctx, model=args.model, skipped=skipped, captions=report.captions)


def format_summary(ctx: object) -> str:
    """Human-readable table of a VisionContext (images sent, left out, totals)."""
    from jupyter_ai_vision.context.parts import VisionContext

    assert isinstance(ctx, VisionContext)
    lines = [f"Notebook: {ctx.notebook}", f"Model: {ctx.model or 'unspecified (generic estimate)'}"]
    if not ctx.images_supported:
        lines.append("The model does not accept images: figures are sent as text stubs.")
    lines.append(f"\nImages sent ({len(ctx.images)}):")
    for n, img in enumerate(ctx.images, 1):
        prov = img.provenance
        size = f"{img.original_width}×{img.original_height} -> {img.width}×{img.height}"
        lines.append(
            f"  {n:>2}. {prov.label():<24} {prov.kind:<11} {size:<22} "
            f"{img.nbytes / 1000:>8.1f} kB {img.tokens:>6} tokens"
            + (f"  id={prov.cell_id}" if prov.cell_id else "")
        )
    if ctx.renders:
        lines.append(f"\nInteractive charts drawn by the server ({len(ctx.renders)}):")
        for render in ctx.renders:
            prov = render.provenance
            if render.outcome == "rendered" and render.seconds is not None:
                outcome = f"rendered in {render.seconds * 1000:.0f} ms"
            elif render.outcome == "cached":
                outcome = "from the cache (rendered earlier)"
            else:
                outcome = f"described as text: {render.outcome}"
            lines.append(f"  - {prov.label():<24} {prov.kind:<11} {outcome}")
    if ctx.captions:
        lines.append(f"\nCaptions for the text-only model ({len(ctx.captions)}):")
        lines.extend(f"  - {sha[:12]}: {caption}" for sha, caption in ctx.captions.items())
    if ctx.stale_figures:
        lines.append(f"\nStale figures (cell edited after it ran): {ctx.stale_figures}")
    lines.append(f"\nLeft out ({len(ctx.skipped)}):")
    for item in ctx.skipped:
        lines.append(f"  - {item.provenance.label():<24} {item.provenance.kind:<11} {item.reason}")
    lines.append(
        f"\nTotals: {len(ctx.images)} images, {ctx.image_tokens} image tokens, "
        f"~{ctx.text_tokens} text tokens, {sum(i.nbytes for i in ctx.images) / 1000:.1f} kB of images"
    )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
