"""Text helpers every module uses for what it shows: one-line messages, short quotes,
bounded notebook text. One home, so limits and ellipses agree. A leaf module: stdlib only.
"""

from __future__ import annotations

import re
from typing import Any, Literal

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Base64 left in *text* costs ~150x its cost as an image: never let it through.
_DATA_URI = re.compile(r"data:[\w.+/-]+(?:;[\w=.+-]+)*;base64,[A-Za-z0-9+/=\s]{64,}")
_LONG_B64 = re.compile(r"[A-Za-z0-9+/]{400,}={0,2}")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` with its whitespace collapsed to single spaces, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def short(text: object, limit: int = 80) -> str:
    return one_line(text, limit)


def quoted(text: object, limit: int = 80) -> str:
    """A short ``repr`` of a name, path or URL for a message (never the whole of a long one)."""
    text = text if isinstance(text, str) else str(text)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), at most ``limit``."""
    lines = str(exc).strip().splitlines()
    return one_line(lines[0] if lines else type(exc).__name__, limit)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def scrub_base64(text: str) -> str:
    """Replace inline base64 blobs (data: URIs, long runs) with a short marker."""
    if len(text) < 64:
        return text
    text = _DATA_URI.sub("[inline image data omitted]", text)
    return _LONG_B64.sub(_b64_marker, text)


def _b64_marker(match: re.Match[str]) -> str:
    run = match.group(0)
    # Real base64 mixes cases and digits; "xxxx..." or a long identifier is left alone.
    sample = run[:400]
    looks_b64 = (
        any(c.isdigit() for c in sample)
        and any(c.isupper() for c in sample)
        and any(c.islower() for c in sample)
    )
    return "[base64 data omitted]" if looks_b64 else run


def clean_text(text: Any, limit: int, *, keep: Literal["head", "tail", "both"] = "both") -> str:
    """ANSI stripped, base64 scrubbed, truncated to ``limit`` characters with a marker.

    ``keep="tail"`` keeps the end (streams and tracebacks: the last lines matter most);
    ``both`` keeps the head and a shorter tail.
    """
    text = "".join(map(str, text)) if isinstance(text, list) else str(text)
    window = 4 * limit + 1024  # what can still be shown after ANSI / base64 are removed
    if len(text) > 2 * window:  # bounded input: the regexes never scan a huge output whole
        return _clean_ends(text, limit, keep, window)
    text = scrub_base64(strip_ansi(text)).rstrip()
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    marker = f"\n[… {omitted} characters omitted …]\n"
    if keep == "head":
        return text[:limit] + marker
    if keep == "tail":
        return marker + text[-limit:]
    head = limit * 2 // 3
    return text[:head] + marker + text[-(limit - head) :]


def _clean_ends(text: str, limit: int, keep: str, window: int) -> str:
    """:func:`clean_text` of a long text: only a window at each kept end is cleaned."""
    head_chars = {"head": limit, "tail": 0}.get(keep, limit * 2 // 3)
    tail_chars = limit - head_chars
    head = scrub_base64(strip_ansi(text[:window]))[:head_chars] if head_chars else ""
    tail = scrub_base64(strip_ansi(text[-window:])).rstrip()[-tail_chars:] if tail_chars else ""
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[… {omitted} characters omitted …]\n{tail}"


def fence(text: str, lang: str) -> str:
    if not text.strip():
        return ""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"
