"""Images in markdown cells: find references, load attachments, resolve local links safely.

Local links are resolved relative to the notebook's directory and must stay inside the
server's root: no ``..`` escapes (also percent-encoded), absolute paths, ``file:`` URLs, ``~``,
UNC / drive paths, symlinks leaving the root, hidden files or directories, or non-image
files. Remote ``http(s)`` links are reported and never fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from jupyter_ai_vision._text import quoted
from jupyter_ai_vision.errors import ImageRejected, MissingAttachment, UnsafeLink, UnsafePath
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.mimes import IMAGE_SUFFIXES, decode_base64
from jupyter_ai_vision.paths import confine

RefKind = Literal["attachment", "local", "remote", "data"]

#: Largest local image file that is read.
MAX_FILE_BYTES = 20_000_000
#: Largest base64 attachment that is decoded.
MAX_BASE64_CHARS = ImagePolicy().max_base64_chars  # the same limit as every image
#: Key of a snapshot cell: attachment name -> why the snapshot found it unusable (set by
#: ``context/snapshot.py``, which normalises cells; said when a link uses the attachment).
ATTACHMENT_PROBLEMS = "_vision_attachment_problems"
_ALLOWED = "allowed: image files (png, jpeg, gif, webp, svg) inside the notebook server's root"


@dataclass(frozen=True)
class ImageRef:
    """One image referenced by a markdown source."""

    target: str  # as written (for attachments: the name after ``attachment:``)
    alt: str = ""
    title: str = ""
    kind: RefKind = "local"


# Quantifiers are bounded and alt text excludes "[" so that no input makes matching
# quadratic (e.g. 50,000 "![" in a row).
_INLINE = re.compile(
    r"!\[(?P<alt>(?:\\.|[^\[\]\\]){0,500})\]\(\s*"
    r"(?:<(?P<angle>[^>\n]{0,2000})>|(?P<bare>(?:\\.|[^\s()\\]|\((?:\\.|[^\s()\\]){0,200}\)){0,2000}))"
    r"(?:\s+(?P<title>\"[^\"]{0,500}\"|'[^']{0,500}'|\([^)]{0,500}\)))?\s*\)"
)
_REF_USE = re.compile(
    r"!\[(?P<alt>[^\[\]]{0,500})\]\[(?P<label>[^\[\]]{0,500})\]"
    r"|!\[(?P<short>[^\[\]]{1,500})\](?![\[(])"
)
_REF_DEF = re.compile(
    r"^ {0,3}\[(?P<label>[^\[\]]{1,500})\]:[ \t]*(?:<(?P<angle>[^>\n]{0,2000})>|(?P<bare>\S{1,2000}))"
    r"(?:[ \t]+(?P<title>\"[^\"]{0,500}\"|'[^']{0,500}'|\([^)]{0,500}\)))?[ \t]*$",
    re.MULTILINE,
)
_IMG_START = re.compile(r"<img\b", re.IGNORECASE)
# A name starts only after a non-name character and is matched possessively: otherwise every
# position inside ``<img aaaa...>`` restarts a scan of the rest (quadratic: 200k letters hung).
_ATTR = re.compile(
    r"""(?<![-\w:.])([a-zA-Z_:][-\w:.]*+)\s*+=\s*+(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]++))"""
)
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\r?")


def find_image_refs(source: str) -> list[ImageRef]:
    """Images in a markdown source, in order: ``![alt](target "title")``, reference-style
    ``![alt][label]`` and HTML ``<img src=...>``. Fenced code blocks are ignored."""
    if isinstance(source, list):  # nbformat may store sources as a list of lines
        source = "".join(source)
    text = _blank_fences(source)
    found: list[tuple[int, ImageRef]] = []
    for m in _INLINE.finditer(text):
        target = m.group("angle") if m.group("angle") is not None else m.group("bare")
        found.append((m.start(), _ref(target, _unescape(m.group("alt")), m.group("title"))))
    defs = {
        _label(m.group("label")): (m.group("angle") or m.group("bare"), m.group("title"))
        for m in _REF_DEF.finditer(text)
    }
    for m in _REF_USE.finditer(text):
        label = m.group("label") or m.group("alt") or m.group("short") or ""
        if _label(label) in defs:
            target, title = defs[_label(label)]
            alt = m.group("alt") if m.group("alt") is not None else m.group("short")
            found.append((m.start(), _ref(target, alt or "", title)))
    for start, tag in _img_tags(text):
        attrs = {a.lower(): (v1 or v2 or v3 or "") for a, v1, v2, v3 in _ATTR.findall(tag)}
        if attrs.get("src"):
            found.append((start, _ref(attrs["src"], attrs.get("alt", ""), attrs.get("title"))))
    return [ref for _, ref in sorted(found, key=lambda item: item[0])]


def load_attachment(
    cell: dict, name: str, *, max_base64_chars: int = MAX_BASE64_CHARS
) -> tuple[str, bytes]:
    """``(mime, raw bytes)`` of the cell attachment ``name`` (image mimes preferred).

    Raises :class:`MissingAttachment` (one line) when it is absent, empty or undecodable.
    """
    problem = (cell.get(ATTACHMENT_PROBLEMS) or {}).get(name)
    if problem:  # the snapshot found it unusable: say why, once
        raise MissingAttachment(f"attachment {name[:80]!r} {problem}; re-attach the image")
    attachments = cell.get("attachments") or {}
    bundle = attachments.get(name) if isinstance(attachments, dict) else None
    if not isinstance(bundle, dict) or not bundle:
        have = ", ".join(sorted(attachments)) if isinstance(attachments, dict) else ""
        raise MissingAttachment(
            f"attachment {name!r} not found in the cell"
            + (f" (it has: {have[:200]})" if have else " (it has no attachments)")
            + "; paste or drag the image into the markdown cell again"
        )
    mime = next((m for m in bundle if m.startswith("image/")), None) or next(iter(bundle))
    payload = bundle[mime]
    if mime == "image/svg+xml":
        text = "".join(payload) if isinstance(payload, list) else str(payload)
        if not text.lstrip().startswith("<"):  # stored base64 by some front-ends
            return mime, _b64(text, name, max_base64_chars)
        return mime, text.encode("utf-8")
    if not mime.startswith("image/"):
        raise MissingAttachment(
            f"attachment {name!r} is {mime}, not an image; supported: png, jpeg, gif, webp, svg"
        )
    return mime, _b64(payload, name, max_base64_chars)


def resolve_local_image(target: str, *, notebook_dir: Path, root_dir: Path) -> Path:
    """The real path of a local image link, confined to ``root_dir``.

    ``target`` is resolved relative to ``notebook_dir`` after percent-decoding. Raises
    :class:`UnsafeLink` with a one-line reason for anything else (see module docstring).
    """
    raw = target.strip()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw) and not re.match(r"^[a-zA-Z]:[\\/]", raw):
        scheme = raw.split(":", 1)[0].lower()
        if scheme in ("http", "https"):
            raise UnsafeLink(
                f"remote image {quoted(raw)} not fetched (remote links are never loaded); "
                "save the image next to the notebook and link it relatively"
            )
        raise UnsafeLink(f"image link {quoted(raw)} uses the {scheme}: scheme; " + _ALLOWED)
    try:
        real = confine(
            root_dir,
            raw,
            base=notebook_dir,
            url=True,
            allow_hidden=False,
            suffixes=IMAGE_SUFFIXES,
            file_kind="an image file",
            must_exist=True,
        )
    except UnsafePath as exc:
        raise UnsafeLink(f"image link {exc}; {_ALLOWED}") from None
    if real.stat().st_size > MAX_FILE_BYTES:
        raise UnsafeLink(
            f"image link {quoted(raw)} is larger than {MAX_FILE_BYTES // 1_000_000} MB; "
            "link a smaller image"
        )
    return real


def mime_for_path(path: Path) -> str:
    """The image mime for a resolved local image path (from its suffix)."""
    return IMAGE_SUFFIXES.get(path.suffix.lower(), "application/octet-stream")


# --- helpers ---------------------------------------------------------------------------


def _blank_fences(text: str) -> str:
    """``text`` with fenced code blocks blanked out (same length, line breaks kept).

    One pass over the lines (a lazy ``^```.*?^``` `` regex rescans to the end from every
    unclosed fence: quadratic). As in CommonMark, the closing fence uses the opening's
    character, at least as many times; an unclosed block runs to the end of the cell.
    """
    if "```" not in text and "~~~" not in text:
        return text
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        if fence is None:
            opening = _FENCE_OPEN.match(line)
            if opening is None:
                continue
            fence = opening.group(1)
        else:
            closing = _FENCE_CLOSE.fullmatch(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = None
        lines[i] = " " * len(line)
    return "\n".join(lines)


def _img_tags(text: str) -> list[tuple[int, str]]:
    """``(offset, tag text)`` of each ``<img ...>`` (linear: str.find, no regex backtracking)."""
    tags = []
    pos = 0
    while match := _IMG_START.search(text, pos):
        end = text.find(">", match.end())
        if end == -1:
            break  # no later tag can close either
        tags.append((match.start(), text[match.start() : end + 1]))
        pos = end + 1
    return tags


def _ref(target: str, alt: str, title: str | None) -> ImageRef:
    target = target.strip()
    lowered = target.lower()
    kind: RefKind
    if lowered.startswith("attachment:"):
        kind, target = "attachment", unquote(target.split(":", 1)[1])
    elif lowered.startswith(("http://", "https://", "//")):
        kind = "remote"
    elif lowered.startswith("data:"):
        kind = "data"
    else:
        kind = "local"
    return ImageRef(target=target, alt=alt, title=(title or "")[1:-1] if title else "", kind=kind)


def _b64(payload: object, name: str, limit: int) -> bytes:
    """The attachment's bytes, through the one base64 decoder (its reason, named)."""
    try:
        return decode_base64(payload, limit)
    except ImageRejected as exc:
        reason = exc.reason.replace("invalid base64 image data", "not valid base64")
        raise MissingAttachment(f"attachment {name!r}: {reason}; re-attach the image") from None


def _label(label: str) -> str:
    return " ".join(label.lower().split())


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
