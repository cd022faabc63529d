"""``%%ai`` on Jupyter AI 3.x: a LiteLLM model that sees ``@fig``, ``@df`` and ``@last_figure``.

Jupyter AI 3.x's own ``%%ai`` (jupyter-ai-magic-commands) sends the prompt as one string and
has no provider hook, so ``%load_ext jupyter_ai_vision`` registers this magic instead
(see :func:`jupyter_ai_vision.host.uses_own_ai_magic`)::

    %%ai openai/gpt-4o -m {"api_base": "http://localhost:4000/v1", "timeout": 60}
    Why does @fig dip in March? Compare with @last_figure.

- ``MODEL``: any LiteLLM model id (``openai/gpt-4o``, ``anthropic/claude-sonnet-4-5``,
  ``ollama/llava``); ``vision:openai/gpt-4o`` (the 2.x spelling) works too.
- ``-m JSON``: model parameters, checked like 2.x's (``api_base``, ``api_key``, ``timeout``,
  ``max_retries``, ``temperature``, ``max_tokens``, ``supports_vision``), plus ``stream``
  (true: the answer is shown as it arrives); anything else goes to ``litellm.completion``.
- ``-f markdown|text|html``: how the answer is shown (default Markdown).

The prompt goes through the same steps as on 2.x: ``{name}`` interpolation from the user's
namespace, then ``@name`` references (:func:`jupyter_ai_vision.kernel.extension.reference_parts`)
framed by the wire format (:func:`jupyter_ai_vision.context.messages.frame_references`). The
model is called through :class:`jupyter_ai_vision.llm.chat_model.LiteLLMChatModel` (per-call
credentials, bounded retries, every model fault one line, the key never shown).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from jupyter_ai_vision.errors import ModelParameterError

USAGE = (
    "usage: %%ai MODEL [-m JSON] [-f markdown|text|html], then the prompt, e.g. "
    '%%ai openai/gpt-4o -m {"api_base": "http://localhost:4000/v1"}'
)
FORMATS = ("markdown", "md", "text", "html")
#: Parameters LiteLLMChatModel takes as fields; other checked keys are read here.
_MODEL_FIELDS = ("api_base", "api_key", "timeout", "max_retries", "temperature", "max_tokens")
NOT_SENT = (
    "Images were not sent: {model} does not accept images according to LiteLLM, so figures "
    'went as text descriptions. If it does take images, add -m {{"supports_vision": true}}.'
)
REFUSED = (
    "Images were not sent: {model} refused them, so the question was asked again with text "
    "descriptions. Pick a vision model (e.g. openai/gpt-4o) to include figures."
)


@dataclass
class Invocation:
    """One ``%%ai`` line, parsed."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    fmt: str = "markdown"
    prompt: str = ""


# ----- the line -----------------------------------------------------------------------------
def _token(text: str) -> tuple[str, str]:
    head, _, rest = text.strip().partition(" ")
    return head, rest.strip()


def _json_object(text: str) -> tuple[dict[str, Any], str]:
    """A JSON object at the start of ``text`` (optionally in single quotes) and the rest."""
    text = text.strip()
    try:
        if text.startswith("'"):
            end = text.index("'", 1)
            value, rest = json.loads(text[1:end]), text[end + 1 :]
        else:
            value, end = json.JSONDecoder().raw_decode(text)
            rest = text[end:]
    except ValueError:
        raise ModelParameterError(
            '-m must be followed by a JSON object, e.g. -m {"api_base": "http://localhost:4000/v1"}'
        ) from None
    if not isinstance(value, dict):
        raise ModelParameterError("-m must be a JSON object ({...}), not " + type(value).__name__)
    return value, rest.strip()


def _model_id(raw: str) -> str:
    model = raw.removeprefix("vision:")
    # 2.x ids are provider:model; LiteLLM ids are provider/model (":" may follow, as in
    # ollama/llava:13b).
    if not model or re.match(r"^[\w.-]+:", model) and "/" not in model.split(":", 1)[0]:
        raise ModelParameterError(
            f"{raw!r} is not a LiteLLM model id: on Jupyter AI 3.x write provider/model, "
            "e.g. openai/gpt-4o or ollama/llava"
        )
    return model


def parse_line(line: str) -> Invocation:
    """``MODEL [-m JSON] [-f FORMAT] [prompt...]`` (the prompt part is for the line magic)."""
    model, rest = _token(line)
    if not model or model.startswith("-"):
        raise ModelParameterError(USAGE)
    found = Invocation(_model_id(model))
    while rest.startswith("-"):
        option, rest = _token(rest)
        if option in ("-m", "--model-parameters"):
            found.params, rest = _json_object(rest)
        elif option in ("-f", "--format"):
            found.fmt, rest = _token(rest)
            if found.fmt not in FORMATS:
                raise ModelParameterError(f"-f must be markdown, text or html, not {found.fmt!r}")
        else:
            raise ModelParameterError(f"unknown option {option}; {USAGE}")
    found.prompt = rest
    return found


# ----- the prompt ---------------------------------------------------------------------------
class _KeepMissing(dict[str, Any]):
    """``{name}`` stays as written when the kernel has no such variable (as on 2.x)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def interpolate(prompt: str, namespace: dict[str, Any]) -> str:
    """Jupyter AI's ``{name}`` interpolation from the user's namespace."""
    try:
        return prompt.format_map(_KeepMissing(namespace))
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return prompt  # braces that are not a template (code, JSON): sent as written


def build_content(prompt: str, *, model: str, supports_images: bool | None) -> list[dict[str, Any]]:
    """The message content for ``prompt``: the question, then the ``@name`` objects inside the
    data markers, then notes about references left out (also printed for the user)."""
    from jupyter_ai_vision.context import messages
    from jupyter_ai_vision.kernel.extension import reference_parts

    # Render images even for a text-only model: they become stubs below, and the user is
    # told exactly that images were left out.
    ref_model, ref_images = (
        (model, supports_images) if supports_images is not False else (None, True)
    )
    parts, notes = reference_parts(prompt, model=ref_model, supports_images=ref_images)
    return [part.to_openai() for part in messages.frame_references(prompt, parts, notes)]


# ----- the model ----------------------------------------------------------------------------
def _split_params(params: dict[str, Any]) -> tuple[dict[str, Any], bool | None, bool]:
    """(LiteLLMChatModel keyword arguments, supports_vision override, stream)."""
    from jupyter_ai_vision.llm.params import check_parameters

    checked = check_parameters(params)
    supports = checked.pop("supports_vision", None)
    checked.pop("expand_references", None)
    stream = checked.pop("stream", False)
    if not isinstance(stream, bool):
        raise ModelParameterError(f"stream must be true or false, not {stream!r}")
    fields = {k: checked.pop(k) for k in _MODEL_FIELDS if k in checked}
    extra = checked.pop("model_kwargs", {})
    return {**fields, "model_kwargs": {**checked, **extra}}, supports, stream


def _ask(llm: Any, content: Any, stream: bool, fmt: str) -> str:
    message = [{"role": "user", "content": content}]
    if not stream:
        return str(llm.invoke(message).content)
    from IPython.display import display

    text = ""
    handle = display(_rendered("", fmt), display_id=True)
    for chunk in llm.stream(message):
        if chunk.text and handle is not None:
            text += chunk.text
            handle.update(_rendered(text, fmt))
        else:
            text += chunk.text
    return text


def _rendered(text: str, fmt: str) -> Any:
    from IPython.display import HTML, Markdown, Pretty

    if fmt == "html":
        return HTML(text)
    if fmt == "text":
        return Pretty(text)
    return Markdown(text)


def run(invocation: Invocation, prompt: str, namespace: dict[str, Any]) -> Any:
    """Ask the model; returns what the cell shows (None when the answer was streamed)."""
    from jupyter_ai_vision.context import messages
    from jupyter_ai_vision.llm import error_messages
    from jupyter_ai_vision.llm.capabilities import supports_images
    from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel

    if not prompt.strip():
        raise ModelParameterError(f"the prompt is empty; {USAGE}")
    kwargs, override, stream = _split_params(invocation.params)
    model = invocation.model
    # a kernel may block: the user's override, else the full check (llm/capabilities.py)
    supports = supports_images(model, kwargs.get("api_base"), override, may_block=True)
    content = build_content(interpolate(prompt, namespace), model=model, supports_images=supports)
    told: list[str] = []
    if supports is False and messages.has_images(content):
        content = messages.strip_images(content)
        told.append(NOT_SENT.format(model=model))
    llm = LiteLLMChatModel(model=model, **kwargs)
    try:
        text = _ask(llm, _plain(content), stream, invocation.fmt)
    except Exception as exc:
        if not (messages.has_images(content) and error_messages.images_refused(exc)):
            raise
        told.append(REFUSED.format(model=model))
        text = _ask(llm, _plain(messages.strip_images(content)), stream, invocation.fmt)
    for line in told:
        print(line, file=sys.stderr)
    if stream:
        return None
    if told and invocation.fmt in ("markdown", "md"):
        text += "\n\n" + "\n\n".join(f"*{line}*" for line in told)
    return _rendered(text, invocation.fmt)


def _plain(content: list[dict[str, Any]]) -> Any:
    """A prompt without images or framing goes as a plain string (as 3.x's own %%ai sends it)."""
    if len(content) == 1 and content[0].get("type") == "text":
        return content[0]["text"]
    return content


# ----- IPython ------------------------------------------------------------------------------
@magics_class
class AiMagics(Magics):
    """``%ai MODEL [-m JSON] prompt`` and ``%%ai MODEL [-m JSON]`` + prompt cell."""

    @line_cell_magic
    def ai(self, line: str, cell: str | None = None) -> Any:
        invocation = parse_line(line)
        prompt = cell if cell is not None else invocation.prompt
        return run(invocation, prompt, self.shell.user_ns if self.shell is not None else {})


def load_ipython_extension(shell: Any) -> None:
    """Register ``%%ai`` and remember displayed figures for ``@last_figure`` / ``@figures``."""
    from jupyter_ai_vision.kernel.extension import install_capture

    shell.register_magics(AiMagics)
    install_capture(shell)


def unload_ipython_extension(shell: Any) -> None:
    from jupyter_ai_vision.kernel.extension import uninstall_capture

    uninstall_capture(shell)
