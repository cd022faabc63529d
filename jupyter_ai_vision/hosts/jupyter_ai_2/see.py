"""``/see``: ask the chat about the notebook you are looking at — its plots, images and tables.

The steps every host shares (which notebook, the context built off the event loop, ``@name``,
the footer, images not sent twice, one-line errors) live in ``server/see_request.py``; this
handler adds jupyter-ai 2.x's side: it streams the answer through jupyter-ai's
``stream_reply`` with an LCEL runnable: messages -> chat model -> text, wrapped in jupyter-ai's
chat history so follow-up questions keep the conversation. Images already in the remembered
conversation are not sent again (their sha256 go to ``exclude_sha256``).

Heavy libraries (litellm, PIL, vl_convert, pandas) are imported lazily: the Jupyter server
imports this module at start-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jupyter_ai.chat_handlers.base import BaseChatHandler, SlashCommandRoutingType
from jupyter_ai.history import HUMAN_MSG_ID_KEY
from jupyter_ai.models import HumanChatMessage

from jupyter_ai_vision.errors import LiveError
from jupyter_ai_vision.server import notebooks, see_request

HELP = (
    "Ask about the notebook you are looking at: the AI sees its plots, images, charts and "
    "tables, including unsaved outputs. Usage: `/see <question>` or "
    "`/see path/to/notebook.ipynb <question>`; `@name` adds a variable from the kernel."
)

SYSTEM_PROMPT = see_request.system_prompt("Jupyternaut")


@dataclass
class _Request:
    """Per-request state shared between process_message and the runnable."""

    footer: str = ""
    streams: list[Any] = field(default_factory=list)  # upstream generators to close


class SeeChatHandler(BaseChatHandler):
    """The ``/see`` slash command."""

    id = "see"
    name = "See the notebook"
    help = HELP
    routing_type = SlashCommandRoutingType(slash_id="see")
    uses_llm = True
    supports_help = True
    #: What the model is told before the notebook; subclasses (e.g. generated modules) set
    #: their own.
    system_prompt: ClassVar[str] = SYSTEM_PROMPT

    #: Human message id -> sha256 of the images sent with it (to avoid resending them).
    _sent_images: ClassVar[see_request.SentImages] = see_request.SentImages()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answer_chain: Any = None
        # Free-text questions: do not let argparse reject words it does not know.
        self.parser.add_argument("question", nargs="*", help="your question (optional path first)")
        see_request.warm_up_in_background()

    # ----- the LCEL chain --------------------------------------------------------------------
    def create_llm_chain(self, provider: type[Any], provider_params: dict[str, str]) -> None:
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.runnables import ConfigurableFieldSpec, RunnableLambda
        from langchain_core.runnables.history import RunnableWithMessageHistory

        params = {**provider_params, **self.get_model_parameters(provider, provider_params)}
        llm = provider(**params)
        self.llm = llm
        answer: Any = RunnableLambda(_to_messages) | llm | StrOutputParser()
        if not getattr(llm, "manages_history", False):
            answer = RunnableWithMessageHistory(
                runnable=answer,
                get_session_history=self.get_llm_chat_memory,
                input_messages_key="input",
                history_messages_key="history",
                history_factory_config=[
                    ConfigurableFieldSpec(id="last_human_msg", annotation=HumanChatMessage)
                ],
            )
        self._answer_chain = answer
        self.llm_chain = RunnableLambda(self._answer_with_footer)

    async def _answer_with_footer(self, inputs: dict[str, Any], config: Any) -> AsyncIterator[str]:
        """Stream the model's answer, then the footer (kept out of the chat history).

        A model error becomes the last line of the streamed answer (one line, details in the
        server log), so the chat shows one complete message instead of a stuck stream.
        """
        request: _Request = inputs["request"]
        stream = self._answer_chain.astream(
            {k: v for k, v in inputs.items() if k != "request"}, config=config
        )
        request.streams.append(stream)
        produced = False
        try:
            async for chunk in stream:
                produced = produced or bool(chunk)
                yield chunk
        except Exception as e:
            secrets = self._secrets()
            see_request.log_error(self.log, e, secrets, "/see")
            yield ("\n\n" if produced else "") + see_request.error_line(e, secrets)
            return
        finally:
            await see_request.close_stream(stream)
        if request.footer:
            yield request.footer

    # ----- the command ----------------------------------------------------------------------
    async def on_message(self, message: HumanChatMessage) -> None:
        # jupyter-ai 2.x crashes (AttributeError, no reply) when no chat model is selected.
        if self.config_manager.lm_provider is None:
            self.reply("No chat model is selected: choose one in the chat settings.", message)
            return
        await super().on_message(message)

    async def process_message(self, message: HumanChatMessage) -> None:
        # Creating the chat model may import heavy libraries (litellm: seconds): off the loop.
        await asyncio.to_thread(self.get_llm_chain)
        started = time.perf_counter()
        if self.llm_chain is None:
            self.reply("No chat model is selected: choose one in the chat settings.", message)
            return
        explicit, question = see_request.parse(message.prompt, self.routing_type.slash_id)
        selection = message.selection.source if message.selection else None
        settings = _server_settings()
        try:
            target = await notebooks.resolve(
                settings,
                username=message.client.username,
                root_dir=self.root_dir,
                explicit_path=explicit,
                selection=selection,
            )
        except LiveError as e:
            self.reply(str(e), message)
            return
        question = question or see_request.DEFAULT_QUESTION
        from jupyter_ai_vision.context.snapshot import NotebookError

        cache = see_request.image_cache()
        try:
            ctx = await see_request.build_context(
                target,
                root_dir=self.root_dir,
                model=self._model_name(),
                supports_images=await self._supports_images(),
                cache=cache,
                exclude_sha256=self._images_in_history(),
                settings=settings,
                caption=see_request.caption_settings(
                    getattr(self.llm, "caption_model", None),
                    getattr(self.llm, "caption_api_base", None),
                ),
            )
        except NotebookError as e:  # invalid / empty notebook: its own one-line reason
            self.reply(str(e).splitlines()[0], message)
            return
        notes = await see_request.add_kernel_references(
            ctx, settings, target, question, cache=cache
        )
        request = _Request(footer=see_request.footer(ctx, target, notes, model=self._model_name()))
        human = ctx.to_langchain_messages(question)[-1]
        if not ctx.images:  # plain text content works with every chat model and LLM
            from jupyter_ai_vision.context import messages

            human.content = messages.text_only(human.content)
        inputs = {
            "input": human,
            "system": self.system_prompt,
            "request": request,
        }
        self._sent_images.record(message.id, (img.sha256 for img in ctx.images))
        self.log.info(
            "/see %s (%s, %s): %d images, %d skipped, context built in %.0f ms",
            target.path,
            target.source,
            target.how,
            len(ctx.images),
            len(ctx.skipped),
            (time.perf_counter() - started) * 1000,
        )
        try:
            await self.stream_reply(
                inputs, message, pending_msg=see_request.pending_line(ctx, target)
            )
        finally:
            # The stop button breaks out of stream_reply; make sure the model request is closed.
            for stream in request.streams:
                await see_request.close_stream(stream)

    # ----- model facts ----------------------------------------------------------------------
    def _model_name(self) -> str | None:
        params = self.llm_params or self.config_manager.lm_provider_params or {}
        return params.get("model_id")

    async def _supports_images(self) -> bool | None:
        """Whether the chat model takes images (None: unknown, images are sent)."""
        from langchain_core.language_models import BaseChatModel

        if self.llm is not None and not isinstance(self.llm, BaseChatModel):
            return False  # a text-completion LLM: message content must be plain text
        try:
            probe = getattr(self.llm, "asupports_images", None)
            if callable(probe):
                return await probe()
            probe = getattr(self.llm, "supports_images", None)
            if callable(probe):
                return await asyncio.to_thread(probe)
        except Exception:  # an unknown model is not a reason to fail
            self.log.debug("supports_images() failed", exc_info=True)
        return None

    def _images_in_history(self) -> set[str]:
        """sha256 of the images the remembered conversation already carries."""
        ids = {m.additional_kwargs.get(HUMAN_MSG_ID_KEY) for m in self.llm_chat_memory.messages}
        return self._sent_images.in_conversation(i for i in ids if i)

    # ----- errors ---------------------------------------------------------------------------
    async def handle_exc(self, e: Exception, message: HumanChatMessage) -> None:
        """One line in the chat, details (secrets redacted) in the server log."""
        secrets = self._secrets()
        see_request.log_error(self.log, e, secrets, "/see")
        self.reply(see_request.error_line(e, secrets), message)

    def _secrets(self) -> set[str]:
        api_keys: dict[str, Any] = {}
        provider_params: Mapping[str, Any] = {}
        try:
            provider_params = self.config_manager.lm_provider_params or {}
            api_keys = {"api_keys": dict(self.config_manager._config.api_keys)}
        except Exception:
            pass
        return see_request.secrets_in(
            self.model_parameters, self.llm_params or {}, provider_params, api_keys
        )


# ----- helpers ---------------------------------------------------------------------------------
def _server_settings() -> Mapping[str, Any] | None:
    """The Jupyter server's settings, as jupyter-ai exposes them to providers."""
    from jupyter_ai_magics.providers import BaseProvider

    return getattr(BaseProvider, "server_settings", None)


def _to_messages(inputs: dict[str, Any]) -> list[Any]:
    """system + remembered conversation + this question (with the notebook context)."""
    from langchain_core.messages import SystemMessage

    return [SystemMessage(content=inputs["system"]), *inputs.get("history", []), inputs["input"]]
