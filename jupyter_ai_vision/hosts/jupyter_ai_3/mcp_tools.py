"""MCP tools for Jupyter AI 3.x: let Jupyternaut and every ACP agent see a notebook.

Registered through the ``jupyter_server_mcp.tools`` entry point (the list :data:`TOOLS`), so
jupyter-server-mcp serves them from inside the Jupyter server, and persona-manager hands that
MCP server to every persona by default:

- :func:`list_notebook_visuals` — what ``jupyter-ai-vision inspect --json`` lists: per figure
  its cell, kind, original and sent size, bytes and estimated tokens; what is left out, why.
- :func:`see_notebook` — the notebook as the model should see it: the shared context
  builder's text, with each figure as an MCP ``ImageContent`` (PNG/JPEG) right after the
  ``[figure N: ...]`` line naming its cell, within the image budget. Never base64 in text.

The live document comes first (the server's YNotebook holds unsaved edits and fresh
outputs), else the saved file; the path is confined to the server root. All notebook and
image work runs in a worker thread, bounded in time; any bad input ends as one line
(an MCP error result), never a traceback.

Importing this module is cheap (jupyter-server-mcp imports it at server start): the context
builder, Pillow and the live-notebook helpers are imported on first use.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any, NoReturn

from mcp.types import ImageContent, TextContent

from jupyter_ai_vision._lru import LRU
from jupyter_ai_vision.errors import ToolInputError, VisionError

TOOLS = [
    "jupyter_ai_vision.hosts.jupyter_ai_3.mcp_tools:list_notebook_visuals",
    "jupyter_ai_vision.hosts.jupyter_ai_3.mcp_tools:see_notebook",
]

#: Seconds one call may take (reading, rendering charts, resizing) before it gives up.
TIMEOUT = 60.0
#: Longest ``path`` / ``cell`` argument accepted (anything longer is not a notebook path).
MAX_ARG_CHARS = 1_000
#: MIME types MCP clients take as ``ImageContent`` everywhere; others are re-encoded as PNG.
MCP_IMAGE_MIMES = ("image/png", "image/jpeg")

log = logging.getLogger(__name__)


async def list_notebook_visuals(path: str) -> dict[str, Any]:
    """List the figures of a Jupyter notebook (live, unsaved state first) without sending them.

    For each figure the model would be sent: the cell (index and id), the kind (png, svg,
    vega-lite, plotly, ...), the original and sent size in pixels, bytes and estimated image
    tokens; then what is left out and why, and totals. ``path`` is relative to the Jupyter
    root, e.g. ``analysis.ipynb``. Use see_notebook to look at the figures.
    """
    try:
        ctx, source = await _bounded(_context(path, None))
    except Exception as exc:
        _fail("list_notebook_visuals", exc)
    listing = ctx.to_json()
    listing["source"] = "saved file" if source == "disk" else source  # live | browser
    return listing


async def see_notebook(
    path: str, cell: str | int | None = None
) -> list[TextContent | ImageContent]:
    """Look at a Jupyter notebook as the user sees it: cell sources, text outputs and every
    figure (matplotlib, images, SVG, Altair/Vega-Lite, Plotly) as an image.

    ``path``: notebook path relative to the Jupyter root, e.g. ``analysis.ipynb`` (use
    get_active_notebook to find the one the user is viewing). ``cell``: optional cell id or
    index to focus on (its figures are sent first, then the nearest preceding ones); default:
    the last executed cell. Reads the live notebook (unsaved changes and fresh outputs) when it
    is open (on a server without real-time collaboration: from the browser tab that has it
    open), else the saved file. Figures beyond the image budget are listed as one-line stubs.
    """
    try:
        ctx, source = await _bounded(_context(path, cell))
        return await _bounded(asyncio.to_thread(_to_mcp_content, ctx, source))
    except Exception as exc:
        _fail("see_notebook", exc)


# ----- reading the notebook ---------------------------------------------------------------
async def _bounded(awaitable: Any) -> Any:
    try:
        return await asyncio.wait_for(awaitable, TIMEOUT)
    except TimeoutError:
        raise ToolInputError(
            f"reading the notebook took longer than {TIMEOUT:.0f} s; try again, or ask about "
            "one cell"
        ) from None


def _server() -> tuple[Mapping[str, Any], str]:
    """The running Jupyter server's settings and root directory."""
    from jupyter_server.serverapp import ServerApp

    if not ServerApp.initialized():
        raise ToolInputError("no Jupyter server is running in this process")
    app = ServerApp.instance()
    return app.web_app.settings, str(app.root_dir)


def _checked(name: str, value: Any, *, allow_int: bool = False) -> Any:
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        kind = "a cell id or index" if allow_int else "a notebook path relative to the root"
        raise ToolInputError(f"{name} must be {kind}")
    if len(value) > MAX_ARG_CHARS or any(ord(c) < 32 for c in value):
        raise ToolInputError(f"{name} is not a usable {name}: too long or has control characters")
    return value.strip()


async def _context(path: Any, cell: Any) -> tuple[Any, str]:
    """(VisionContext, where it was read: "live" | "browser" | "disk") for ``path``
    focused on ``cell``."""
    from jupyter_ai_vision.server import notebooks

    path = _checked("path", path)
    cell = None if cell is None or cell == "" else _checked("cell", cell, allow_int=True)
    settings, root_dir = _server()
    safe = await asyncio.to_thread(_confined, root_dir, path)  # realpath: filesystem calls
    target = await notebooks.read_target(
        settings, safe, how="explicit", username="", root_dir=root_dir
    )
    ctx = await asyncio.get_running_loop().run_in_executor(None, _build, target, cell, root_dir)
    return ctx, target.source


def _confined(root_dir: str, path: str) -> str:
    """``path`` as a server-relative notebook path inside the root (no hidden directories)."""
    from jupyter_ai_vision.paths import confine, relative_posix

    return relative_posix(
        root_dir, confine(root_dir, path, notebooks_only=True, allow_hidden=False)
    )


def _build(target: Any, cell: str | int | None, root_dir: str) -> Any:
    """The shared context builder on a private copy of the notebook (worker thread).

    Agents call the tool again and again on a notebook that has not changed: a live notebook
    whose state (the Yjs update) and focus are the same as last time reuses that context.
    Reading a big YNotebook back costs far more than comparing its update.
    """
    from jupyter_ai_vision.context.builder import build_from_snapshot
    from jupyter_ai_vision.context.snapshot import load_notebook
    from jupyter_ai_vision.server.notebooks import pick_focus

    key = (target.path, cell)
    if target.source == "live":
        hit = _CONTEXTS.get(key)
        # the same state byte for byte (a memcmp: far cheaper than hashing megabytes)
        if hit is not None and hit[0] == target.notebook:
            return hit[1]
    snapshot = load_notebook(target.load(), path=target.path, root_dir=root_dir)
    focus = cell
    if focus is None:
        focus, _how = pick_focus(snapshot.cells, active=None, selection=None)
    ctx = build_from_snapshot(snapshot, focus=focus)
    ctx.notebook = target.path  # server-relative: the model never learns the server's paths
    if target.source == "live":
        _CONTEXTS.put(key, (target.notebook, ctx))  # read-only from here on
    return ctx


def _entry_bytes(_key: Any, entry: tuple[bytes, Any]) -> int:
    state, ctx = entry
    return len(state) + sum(p.nbytes for p in ctx.images) + len(ctx.text)


#: (path, focus) -> (live state it was built from, context), bounded by what they hold.
_CONTEXTS: LRU[tuple[str, str | int | None], tuple[bytes, Any]] = LRU(
    max_items=16, max_size=96_000_000, sizeof=_entry_bytes
)


# ----- MCP content ------------------------------------------------------------------------
def _to_mcp_content(ctx: Any, source: str) -> list[TextContent | ImageContent]:
    """The wire format (``VisionContext.to_openai_content``) carried over MCP: each text part
    as TextContent, each ``image_url`` part as ImageContent (PNG/JPEG)."""
    from jupyter_ai_vision.context import messages

    first = messages.READ_FROM[source]
    content: list[TextContent | ImageContent] = [TextContent(type="text", text=first)]
    for part in ctx.to_openai_content():
        if part["type"] == "image_url":
            # our own data URI: "data:<mime>;base64,<payload>"
            head, _, payload = part["image_url"]["url"].partition(",")
            mime = head[len("data:") :].split(";", 1)[0]
            if mime not in MCP_IMAGE_MIMES:
                mime, payload = _as_png(payload)
            content.append(ImageContent(type="image", data=payload, mimeType=mime))
        elif isinstance(content[-1], TextContent):
            content[-1].text += "\n" + part["text"]
        else:
            content.append(TextContent(type="text", text=part["text"]))
    content.append(TextContent(type="text", text=ctx.summary()))
    return content


def _as_png(payload: str) -> tuple[str, str]:
    """A GIF/WebP (already within budget: first frame, right size) as base64 PNG."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        im.seek(0)
        keep_alpha = "A" in im.getbands() or "transparency" in im.info
        frame = im.convert("RGBA" if keep_alpha else "RGB")
    out = io.BytesIO()
    frame.save(out, format="PNG", compress_level=3)
    return "image/png", base64.b64encode(out.getvalue()).decode("ascii")


def _fail(tool: str, exc: Exception) -> NoReturn:
    """Raise the MCP tool error the calling model reads: one line, no traceback.

    A :class:`VisionError` says what is wrong with the input; anything else is our bug: it is
    logged with its traceback and the model only learns that the tool failed.
    """
    from fastmcp.exceptions import ToolError

    if isinstance(exc, VisionError):
        line = " ".join(str(exc).split()) or type(exc).__name__
        log.info("%s: %s", tool, line)
    else:
        log.exception("%s failed", tool, exc_info=exc)
        line = f"{tool} failed unexpectedly ({type(exc).__name__}); the server log has details"
    raise ToolError(line) from None
