"""The Vision persona for Jupyter AI 3.x: every message is a question about a notebook.

Registered through the ``jupyter_ai.personas`` entry point; it appears in the chat's persona
picker as **Vision**. For each message it:

1. finds the notebook (``server/see_request.py`` + ``server/notebooks.py``, as ``/see`` on
   2.x): a path named in the message or a notebook whose cells were dragged in, else the one
   the sender is viewing (global awareness, matched to the chat sender), else the only open
   one, else one line listing the open notebooks; ``/see [path] question`` works too;
2. reads it live (the server's YNotebook through jupyter-collaboration: unsaved edits and
   fresh outputs), else the saved file, and says which;
3. builds the shared context off the event loop, adds dragged-in cells as the focus, attached
   image files as images and other files as text, and ``@name`` objects from the notebook's
   kernel, all within one image budget;
4. streams the answer from LiteLLM (``acompletion(stream=True)``) through ``stream_message``,
   then the footer (what was seen, what was left out) and thumbnails of the images sent.

The model is Jupyternaut's (``hosts/jupyter_ai_3/model.py``) unless the persona's own
settings say otherwise. Follow-ups carry the conversation (the chat's remaining messages) and
never send an image twice. The stop button (``cancel_response``) closes the model's stream.
Every failure is one line in the chat, with no key in it.

Importing this module is cheap (persona-manager imports every persona at server start):
litellm, Pillow and the context builder are imported on first use. It imports only the 3.x
API (``jupyter_ai_persona_manager``, ``jupyterlab_chat``), never jupyter_ai 2.x or langchain.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ai_persona_manager import (
    BasePersona,
    CommandOption,
    ModelConfiguration,
    ModelOption,
    PersonaDefaults,
    PersonaRequirementsUnmet,
    SettingConfiguration,
    SettingOption,
)
from traitlets import Dict, Int, Unicode

from jupyter_ai_vision.errors import VisionError
from jupyter_ai_vision.hosts.jupyter_ai_3 import attachments
from jupyter_ai_vision.hosts.jupyter_ai_3 import model as model_choice
from jupyter_ai_vision.server import notebooks, see_request


def _check_persona_api() -> None:
    """persona-manager < 0.2 constructs personas with ``ychat=`` (Jupyter AI 3.0 / 3.1): say so
    in one line instead of failing on every message."""
    params = inspect.signature(BasePersona.__init__).parameters
    if "chat" not in params:
        import importlib.metadata

        try:
            version = importlib.metadata.version("jupyter-ai-persona-manager")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        raise PersonaRequirementsUnmet(
            f"the Vision persona needs jupyter-ai-persona-manager >= 0.2 (Jupyter AI >= 3.2, "
            f"personas built with chat=); this server has {version}: upgrade Jupyter AI"
        )


_check_persona_api()

AVATAR = str(Path(__file__).with_name("vision.svg"))
NAME = "Vision"
DESCRIPTION = (
    "Sees the notebook you are looking at: its plots, images, charts and tables, including "
    "unsaved outputs. Name a notebook, drag cells or attach images to point at them; "
    "@name adds a variable from the kernel."
)
SEE_HELP = "Ask about a notebook: /see [path.ipynb] question (the one you are viewing by default)"
#: Model-picker id for "whatever Jupyternaut / the persona settings configure".
DEFAULT_MODEL = "default"
#: The persona's "images" setting.
IMAGES_SETTING = "images"
#: Conversation turns a follow-up carries (older turns are forgotten; their images may be
#: sent again).
MAX_TURNS = 4
#: Seconds cancel_response waits for the model stream to be closed.
CANCEL_WAIT = 5.0


@dataclass
class _Turn:
    """One answered question, as the model got it (for follow-ups)."""

    content: Any  # the user message content sent (notebook context + question)
    answer: str = ""


@dataclass
class _Reply:
    """State of the reply being streamed (shared with cancel_response)."""

    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str = ""
    content: Any = None  # the question's content as the model finally got it
    footer: str = ""  # as streamed (with the notes that came up while answering)
    first_chunk_at: float | None = None
    notes: list[str] = field(default_factory=list)


class VisionPersona(BasePersona):
    """Answers questions about the notebook the user is looking at, seeing its figures."""

    model = Unicode(
        None,
        allow_none=True,
        config=True,
        help="LiteLLM model id for Vision (default: Jupyternaut's chat model), e.g. openai/gpt-4o.",
    )
    model_parameters = Dict(
        default_value={},
        config=True,
        help="Arguments for the model: api_base, api_key, timeout, max_retries, "
        "supports_vision (true/false: override LiteLLM's vision flag), temperature, ...",
    )
    max_turns = Int(MAX_TURNS, config=True, help="Conversation turns a follow-up carries.")
    caption_model = Unicode(
        None,
        allow_none=True,
        config=True,
        help="LiteLLM vision model that describes figures when the chat model takes no images "
        "(e.g. ollama/llava, openai/gpt-4o-mini); its key comes from LiteLLM's variables.",
    )
    caption_api_base = Unicode(
        None, allow_none=True, config=True, help="api_base of the caption model (e.g. Ollama)."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns: dict[str, _Turn] = {}  # human message id -> turn, oldest first
        self._sent = see_request.SentImages()
        self._reply: _Reply | None = None
        self._picked: str | None = None  # model-picker choice (None: default)
        self._images: str | None = None  # "on" / "off" / None (LiteLLM's flag)
        self.report_slash_commands([CommandOption(name="/see", description=SEE_HELP)])
        self._report_settings()
        see_request.warm_up_in_background()

    @property
    def defaults(self) -> PersonaDefaults:
        return PersonaDefaults(
            name=NAME,
            description=DESCRIPTION,
            avatar_path=AVATAR,
            system_prompt=see_request.system_prompt(NAME),
            slash_commands={"see"},
        )

    async def prepare(self) -> None:
        """Run once, when a user picks Vision in the persona picker (or before its first
        message): import litellm in a worker thread (seconds) so the answer does not wait, then
        start loading its tokenizer for the model (``llm/_litellm.py``: LiteLLM needs it as
        soon as the first stream starts)."""
        from jupyter_ai_vision.llm._litellm import import_litellm_async, start_tokenizer_warmup

        try:
            await import_litellm_async()
        except Exception:  # the first request will say what is wrong, in one line
            self.log.debug("Vision: litellm import failed", exc_info=True)
            return
        try:
            choice = model_choice.choose(
                self._settings(),
                persona_model=self.model,
                persona_parameters=self.model_parameters,
                picked=self._picked,
                images=self._images,
            )
        except Exception:  # no model configured yet: the first request says so
            return
        start_tokenizer_warmup(choice.model)

    # ----- the server ---------------------------------------------------------------------------
    def _serverapp(self) -> Any:
        """The Jupyter server: through the persona manager's extension (chat documents), else
        the running ServerApp (``POST /api/ai/message/<name>`` builds a manager without one)."""
        extension = getattr(self.parent, "parent", None)
        app = getattr(extension, "serverapp", None)
        if app is not None:
            return app
        from jupyter_server.serverapp import ServerApp

        return ServerApp.instance() if ServerApp.initialized() else None

    def _settings(self) -> Mapping[str, Any]:
        app = self._serverapp()
        web_app = getattr(app, "web_app", None)
        return getattr(web_app, "settings", None) or {}

    def _root_dir(self, settings: Mapping[str, Any]) -> str:
        manager = self.parent
        root = getattr(manager, "root_dir", None)
        if not root:
            contents = settings.get("contents_manager")
            root = getattr(contents, "root_dir", None) or os.getcwd()
        return str(root)

    # ----- session UI: model picker and settings ---------------------------------------------
    def _report_settings(self) -> None:
        settings = self._settings()
        configured = self.model or model_choice.jupyternaut_model(settings)[0]
        options = [
            ModelOption(
                id=DEFAULT_MODEL,
                name=f"Default ({configured})" if configured else "Default",
                description="Vision's model setting, else Jupyternaut's chat model",
            )
        ]
        manager = settings.get("jupyternaut.config_manager")
        with contextlib.suppress(Exception):
            for custom in getattr(manager, "custom_models", None) or []:
                if custom.model_id and custom.model_id != configured:
                    options.append(ModelOption(id=custom.model_id, name=custom.model_id))
        self.report_model_configuration(
            ModelConfiguration(current=self._picked or DEFAULT_MODEL, options=options)
        )
        self.report_settings_configuration(
            [
                SettingConfiguration(
                    id=IMAGES_SETTING,
                    name="Images",
                    current=self._images or "auto",
                    description="Send figures as images: auto (LiteLLM's vision flag), on, off",
                    options=[SettingOption(id=v, name=v) for v in ("auto", "on", "off")],
                )
            ]
        )

    async def update_model(self, model_id: str) -> None:
        self._picked = None if model_id in (None, "", DEFAULT_MODEL) else model_id

    async def update_settings(self, settings: dict[str, str | None]) -> None:
        value = settings.get(IMAGES_SETTING)
        if value is not None:
            self._images = value if value in ("on", "off") else None

    # ----- one message --------------------------------------------------------------------------
    async def process_message(self, message: Any) -> None:
        started, started_wall = time.perf_counter(), time.time()
        settings = self._settings()
        root_dir = self._root_dir(settings)
        explicit, question = see_request.parse(message.body, "see", anywhere=True)
        attached = attachments.sort(self.chat, message.attachments)
        if explicit is None:
            explicit = attached.notebook
        try:
            choice = model_choice.choose(
                settings,
                persona_model=self.model,
                persona_parameters=self.model_parameters,
                picked=self._picked,
                images=self._images,
            )
            target = await notebooks.resolve(
                settings,
                username=message.sender,
                root_dir=root_dir,
                explicit_path=explicit,
                client_id=_web_client_id(message),
            )
        except VisionError as exc:  # LiveError, ModelParameterError, UnsafePath: one line
            self.send_message(str(exc))
            return
        from jupyter_ai_vision.context import messages
        from jupyter_ai_vision.context.snapshot import NotebookError
        from jupyter_ai_vision.llm.capabilities import asupports_images

        supports = await asupports_images(choice.model, choice.api_base, choice.supports_vision)
        history, sent = self._conversation(images=supports is not False)
        cache = see_request.image_cache()
        try:
            ctx = await see_request.build_context(
                target,
                root_dir=root_dir,
                model=choice.model,
                supports_images=supports,
                cache=cache,
                exclude_sha256=sent,
                focus=self._dragged_focus(attached, target, root_dir),
                settings=settings,
                caption=see_request.caption_settings(self.caption_model, self.caption_api_base),
            )
        except NotebookError as exc:  # invalid / empty notebook: its own one-line reason
            self.send_message(str(exc).splitlines()[0])
            return
        notes = list(attached.notes)
        notes += await attachments.add_files(ctx, attached, root_dir=root_dir, cache=cache)
        notes += await see_request.add_kernel_references(
            ctx, settings, target, question, cache=cache
        )
        question = question or see_request.DEFAULT_QUESTION
        content: Any = [*ctx.to_openai_content(), {"type": "text", "text": question}]
        if not ctx.images:  # plain text content works with every model
            content = messages.text_only(content)
        self.log.info(
            "Vision %s (%s, %s) with %s (%s): %d images, %d skipped, ready in %.0f ms "
            "(message reached the persona after %.0f ms)",
            target.path,
            target.source,
            target.how,
            choice.model,
            choice.source,
            len(ctx.images),
            len(ctx.skipped),
            (time.perf_counter() - started) * 1000,
            max(0.0, started_wall - float(message.time or started_wall)) * 1000,
        )
        request = [
            {"role": "system", "content": self.system_prompt},
            *history,
            {"role": "user", "content": content},
        ]
        reply = self._reply = _Reply(content=content)
        footer = see_request.footer(ctx, target, notes, model=choice.model)
        before = {m.id for m in self.chat.get_messages()}
        try:
            await self.stream_message(self._answer(choice, request, footer, reply))
        finally:
            self._reply = None
            reply.closed.set()
        if messages.has_images(reply.content):  # not when the model refused them
            self._sent.record(message.id, (img.sha256 for img in ctx.images))
        self._remember(message.id, reply.content, reply.answer)
        await self._attach_thumbnails(before, reply, ctx.images)

    def _dragged_focus(
        self, attached: attachments.Attached, target: notebooks.Target, root_dir: str
    ) -> str | None:
        """The first dragged-in cell, when it belongs to the notebook being looked at."""
        if not attached.cells or attached.notebook is None:
            return None
        try:
            same = notebooks.safe_path(attached.notebook, root_dir) == target.path
        except VisionError:  # an unusable attached path: no focus from it
            return None
        return attached.cells[0] if same else None

    # ----- the model ----------------------------------------------------------------------------
    async def _answer(
        self,
        choice: model_choice.ModelChoice,
        request: list[dict[str, Any]],
        footer: str,
        reply: _Reply,
    ) -> AsyncIterator[str]:
        """The streamed answer, then the footer. A model error ends the answer with one line;
        a model that refuses images before answering is asked again in text."""
        from jupyter_ai_vision.context import messages
        from jupyter_ai_vision.errors import ModelError

        try:
            try:
                async for text in self._texts(choice, request, reply):
                    yield text
            except ModelError as exc:
                if not (exc.images_refused and not reply.answer and _any_images(request)):
                    raise
                # LiteLLM did not know: the model takes no images after all.
                request = [{**m, "content": messages.strip_images(m["content"])} for m in request]
                reply.content = request[-1]["content"]
                reply.notes.append(f"{choice.model} refused the images: answered from text only")
                async for text in self._texts(choice, request, reply):
                    yield text
        except Exception as exc:
            yield ("\n\n" if reply.answer else "") + self._error(exc, choice)
            return
        if reply.cancel.is_set():
            yield "\n\n*(stopped)*"
        if reply.notes:
            footer = footer.replace("</sub>", " · " + " · ".join(reply.notes) + "</sub>")
        reply.footer = footer
        yield footer

    async def _texts(
        self, choice: model_choice.ModelChoice, request: list[dict[str, Any]], reply: _Reply
    ) -> AsyncIterator[str]:
        """``llm.stream.stream_chat``'s text until it ends or the user presses stop: the pending
        read is cancelled and the stream closed (which drops the model's HTTP connection)."""
        from jupyter_ai_vision.llm._retry import RETRY_BACKOFF
        from jupyter_ai_vision.llm.stream import stream_chat

        texts = stream_chat(
            request,
            model=choice.model,
            api_base=choice.api_base,
            api_key=choice.api_key,
            timeout=choice.timeout,
            max_retries=max(0, min(choice.max_retries, len(RETRY_BACKOFF))),
            extra=choice.extra,
        )
        stop = asyncio.ensure_future(reply.cancel.wait())
        try:
            while not reply.cancel.is_set():
                step = asyncio.ensure_future(texts.__anext__())
                done, _ = await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
                    return
                try:
                    text = step.result()
                except StopAsyncIteration:
                    return
                if reply.first_chunk_at is None:
                    reply.first_chunk_at = time.perf_counter()
                reply.answer += text
                yield text
        finally:
            stop.cancel()
            with contextlib.suppress(Exception):
                await texts.aclose()
            reply.closed.set()

    def _error(self, exc: BaseException, choice: model_choice.ModelChoice) -> str:
        secrets = choice.secrets | see_request.secrets_in(self.model_parameters)
        see_request.log_error(self.log, exc, secrets, "Vision")
        return see_request.error_line(exc, secrets, what="Vision")

    async def cancel_response(self) -> None:
        """The stop button: end the stream now and close the model's connection."""
        reply = self._reply
        if reply is None:
            return
        reply.cancel.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reply.closed.wait(), CANCEL_WAIT)

    async def handle_uncaught_exception(self, exc: Exception) -> None:
        """One line in the chat (not persona-manager's traceback), details in the server log."""
        secrets = see_request.secrets_in(self.model_parameters)
        see_request.log_error(self.log, exc, secrets, "Vision")
        self.send_message(see_request.error_line(exc, secrets, what="Vision"))

    # ----- the conversation ---------------------------------------------------------------------
    def _conversation(self, *, images: bool) -> tuple[list[dict[str, Any]], set[str]]:
        """Earlier turns still in the chat (as the model got them; without their images for a
        model that takes none), and the images they sent."""
        from jupyter_ai_vision.context import messages

        present = {m.id for m in self.chat.get_messages() if not m.deleted}
        for message_id in [i for i in self._turns if i not in present]:
            del self._turns[message_id]
        history: list[dict[str, Any]] = []
        for turn in self._turns.values():
            content = turn.content if images else messages.strip_images(turn.content)
            history.append({"role": "user", "content": content})
            if turn.answer:
                history.append({"role": "assistant", "content": turn.answer})
        sent = self._sent.in_conversation(self._turns) if images else set()
        return history, sent

    def _remember(self, message_id: str, content: Any, answer: str) -> None:
        self._turns[message_id] = _Turn(content, answer)
        while len(self._turns) > max(0, self.max_turns):
            self._turns.pop(next(iter(self._turns)))

    # ----- showing what was seen ----------------------------------------------------------------
    async def _attach_thumbnails(self, before: set[str], reply: _Reply, images: list[Any]) -> None:
        """Thumbnails of the images sent, in the reply's MIME bundle (the body keeps the text)."""
        if not images:
            return
        mine = [m for m in self.chat.get_messages() if m.sender == self.id and m.id not in before]
        if not mine:
            return
        from jupyterlab_chat.models import MimeModel

        from jupyter_ai_vision.hosts.jupyter_ai_3.thumbnails import markdown_row

        try:
            row = await asyncio.to_thread(markdown_row, images)
        except Exception:
            logging.getLogger(__name__).debug("thumbnails failed", exc_info=True)
            return
        if not row:
            return
        message = mine[-1]
        footer = reply.footer
        body = message.body
        answer = body[: -len(footer)] if footer and body.endswith(footer) else body
        message.mime_model = MimeModel(
            data={"text/markdown": f"{answer}\n\n{row}{footer}"}, trusted=False
        )
        self.chat.update_message(message, trigger_actions=[])


def _any_images(request: list[dict[str, Any]]) -> bool:
    from jupyter_ai_vision.context import messages

    return any(messages.has_images(m.get("content")) for m in request)


def _web_client_id(message: Any) -> str | None:
    """The browser tab that sent ``message`` (jupyterlab-commands-toolkit stamps
    ``metadata["web_client_id"]``): without RTC, that tab is asked for the notebook."""
    metadata = getattr(message, "metadata", None)
    value = metadata.get("web_client_id") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None
