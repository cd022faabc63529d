"""Show the user what the model saw: small thumbnails of the images a reply was given.

jupyterlab-chat renders a message's ``mime_model`` (a MIME bundle) in preference to its body,
so the reply's ``text/markdown`` bundle carries the answer, a row of thumbnails (``data:``
images; JupyterLab's sanitizer keeps them) and the footer. The body stays plain text (history,
``POST /api/ai/message``, clients that do not render MIME bundles), where the footer is the
compact list of what was seen.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import ImagePart

#: Longest edge of a thumbnail, in pixels (CSS shows them at this size or smaller).
EDGE = 120
#: Thumbnails per reply (the budget allows 10 images per request).
MAX_THUMBNAILS = 10


def thumbnail_png(image: ImagePart, edge: int = EDGE) -> bytes:
    """A small PNG of ``image`` (never upscaled). Call in a worker thread (Pillow)."""
    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as opened:
        small = opened.convert("RGBA") if opened.mode not in ("RGB", "RGBA", "L") else opened
        small.thumbnail((edge, edge), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
        return out.getvalue()


def markdown_row(images: Sequence[ImagePart]) -> str:
    """One Markdown line of thumbnails, each titled with the cell it came from ("" if none)."""
    cells: list[str] = []
    for number, image in enumerate(images[:MAX_THUMBNAILS], start=1):
        try:
            png = thumbnail_png(image)
        except Exception:  # a thumbnail is a courtesy: the model got the image anyway
            continue
        label = f"figure {number}: {image.provenance.label()}".replace("]", ")").replace("[", "(")
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        cells.append(f'![{label}]({uri} "{label}")')
    return " ".join(cells)
