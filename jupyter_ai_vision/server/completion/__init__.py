"""Inline completions that read the live notebook — the host-independent part.

A request carries the cell's prefix and suffix, the notebook path and the cell id. We add a
*window* of the notebook around that cell (:mod:`.window`: preceding cells with their text
outputs and the most recent figure above the cursor, following cells' sources), read from the
live ``YNotebook`` when the notebook is open collaboratively, else from the saved file, else
nothing: prefix and suffix only. :mod:`.prompt` turns it into messages through the shared
context builder; :mod:`.postprocess` makes the suggestion fit to insert; :mod:`.supersession`
cancels requests a newer one replaced. :mod:`.settings` reads the provider's fields.

The host adapters (``hosts/jupyter_ai_2/completion.py``: jupyter-ai's request and reply
types, the model call) sit on top. Nothing here imports litellm, PIL or the builder at
module level: the Jupyter server imports the provider, and so this package, at start-up.
"""

from __future__ import annotations

from jupyter_ai_vision.server.completion.postprocess import post_process
from jupyter_ai_vision.server.completion.prompt import (
    CODE_SYSTEM_PROMPT,
    FOCUS_PLACEHOLDER,
    MARKDOWN_SYSTEM_PROMPT,
    CompletionRequest,
    Prompt,
    build_prompt,
    completion_instruction,
    image_policy,
    is_markdown,
    prepare_window,
)
from jupyter_ai_vision.server.completion.settings import (
    SETTING_NAMES,
    CompletionSettings,
    settings_for,
)
from jupyter_ai_vision.server.completion.supersession import (
    SUPERSESSION,
    Superseded,
    Supersession,
    unless_superseded,
)
from jupyter_ai_vision.server.completion.window import (
    SAVED_NOTEBOOKS,
    SavedNotebookCache,
    Window,
    read_window,
    window_from_cells,
    window_from_ynotebook,
)

__all__ = [
    "CODE_SYSTEM_PROMPT",
    "FOCUS_PLACEHOLDER",
    "MARKDOWN_SYSTEM_PROMPT",
    "SAVED_NOTEBOOKS",
    "SETTING_NAMES",
    "SUPERSESSION",
    "CompletionRequest",
    "CompletionSettings",
    "Prompt",
    "SavedNotebookCache",
    "Superseded",
    "Supersession",
    "Window",
    "build_prompt",
    "completion_instruction",
    "image_policy",
    "is_markdown",
    "post_process",
    "prepare_window",
    "read_window",
    "settings_for",
    "unless_superseded",
    "window_from_cells",
    "window_from_ynotebook",
]
