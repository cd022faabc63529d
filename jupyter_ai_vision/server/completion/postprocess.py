"""A model's suggestion, made fit to insert at the cursor: no code fences, no repeat of the
line being typed, no copy of the text after the cursor."""

from __future__ import annotations

import re

_OPENING_FENCE = re.compile(r"^\s*```[\w+.#-]*[ \t]*(\n|$)")


def post_process(suggestion: str, prefix: str, suffix: str, *, markdown: bool = False) -> str:
    """Remove code fences, a repeated prefix and a duplicated suffix from a suggestion."""
    text = suggestion
    fenced = _OPENING_FENCE.match(text)
    if fenced:
        text = text[fenced.end() :]
        # the closing fence and anything after it (explanations) go too
        close = text.find("\n```") if not markdown else text.rfind("\n```")
        if close != -1:
            text = text[:close]
        elif text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    elif not markdown and text.rstrip().endswith("\n```"):
        text = text.rstrip()[:-4]
    text = _strip_repeated_prefix(text, prefix)
    text = _strip_duplicated_suffix(text, suffix)
    return text if text.strip() else ""


def _strip_repeated_prefix(text: str, prefix: str) -> str:
    if not prefix:
        return text
    if text.startswith(prefix):
        return text[len(prefix) :]
    # the model often repeats the line being typed
    line = prefix.rsplit("\n", 1)[-1]
    if len(line.strip()) >= 2:
        if text.startswith(line):
            return text[len(line) :]
        stripped = line.lstrip()
        if text.startswith(stripped) and len(stripped) < len(text):
            return text[len(stripped) :]
    return text


_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _strip_duplicated_suffix(text: str, suffix: str) -> str:
    suffix = suffix.strip()
    if not suffix or not text:
        return text
    body = text.rstrip()
    if body.endswith(suffix) and not _only_closers(suffix):
        return body[: -len(suffix)]
    # the suggestion's tail repeats the first line(s) of the suffix
    lines = suffix.split("\n")
    for n in range(len(lines), 0, -1):
        head = "\n".join(lines[:n]).rstrip()
        if not head or not body.endswith(head):
            continue
        # ")" after "g(x)" is the suggestion's own bracket, not a copy of the suffix's
        if _only_closers(head) and not _over_closed(body, head):
            continue
        return body[: -len(head)]
    return text


def _only_closers(text: str) -> bool:
    return all(ch in _CLOSERS or ch in ",;: \t" for ch in text)


def _over_closed(body: str, head: str) -> bool:
    """True when ``body`` closes more brackets of each kind in ``head`` than it opens."""
    return all(
        body.count(ch) - body.count(_CLOSERS[ch]) >= head.count(ch)
        for ch in set(head)
        if ch in _CLOSERS
    )
