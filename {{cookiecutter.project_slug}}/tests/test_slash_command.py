"""The slash command, end to end in-process: a real chat handler wired to a real jupyter-ai
ConfigManager, reading a notebook file and calling the recording model server."""

from __future__ import annotations

import logging
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from conftest import MODEL
from jupyter_ai.config_manager import ConfigManager
from jupyter_ai.history import BoundedChatHistory
from jupyter_ai.models import AgentStreamChunkMessage, ChatClient, HumanChatMessage
from jupyter_ai_vision.hosts.jupyter_ai_2.see import SeeChatHandler
from jupyter_ai_vision.testing import ModelServer, images_in, text_in

from {{ cookiecutter.package_name }}.provider import {{ cookiecutter.__class_prefix }}Provider
from {{ cookiecutter.package_name }}.slash_command import PROMPT, {{ cookiecutter.__class_prefix }}ChatHandler

SLASH_ID = {{ cookiecutter.slash_id | jsonify }}
PROVIDER_ID = {{ cookiecutter.provider_id | jsonify }}


class ChatPanel:
    """Stands in for a connected chat panel: keeps what the handler broadcasts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def broadcast_message(self, message: Any) -> None:
        self.messages.append(message)

    def answer(self) -> str:
        return "".join(m.content for m in self.messages if isinstance(m, AgentStreamChunkMessage))


def make_handler(
    model_server: ModelServer, root: Path, panel: ChatPanel, config_dir: Path
) -> {{ cookiecutter.__class_prefix }}ChatHandler:
    model = f"{PROVIDER_ID}:{MODEL}"
    config = ConfigManager(
        log=logging.getLogger("test"),
        lm_providers={PROVIDER_ID: {{ cookiecutter.__class_prefix }}Provider},
        em_providers={},
        defaults={"model_provider_id": model},
        config_path=str(config_dir / "config.json"),
        schema_path=str(config_dir / "config_schema.json"),
    )
    return {{ cookiecutter.__class_prefix }}ChatHandler(
        log=logging.getLogger("test"),
        config_manager=config,
        root_chat_handlers={"panel": panel},
        model_parameters={model: {"api_base": model_server.url, "api_key": "sk-test"}},
        chat_history=[],
        llm_chat_memory=BoundedChatHistory(k=2),
        root_dir=str(root),
        preferred_dir=None,
        dask_client_future=None,
        help_message_template="",
        chat_handlers={},
        context_providers={},
        message_interrupted={},
        log_dir=None,
    )


def human(prompt: str) -> HumanChatMessage:
    client = ChatClient(username="ada", initials="A", name="Ada", display_name="Ada", id="c1")
    return HumanChatMessage(id="h1", time=time.time(), body=prompt, prompt=prompt, client=client)


def test_entry_point_names_this_command() -> None:
    (ep,) = entry_points(group="jupyter_ai.chat_handlers", name=SLASH_ID)
    assert ep.load() is {{ cookiecutter.__class_prefix }}ChatHandler
    assert issubclass({{ cookiecutter.__class_prefix }}ChatHandler, SeeChatHandler)
    assert {{ cookiecutter.__class_prefix }}ChatHandler.routing_type.slash_id == SLASH_ID


async def test_the_model_gets_this_commands_prompt_the_question_and_the_figure(
    model_server: ModelServer, notebook_dir: Path, tmp_path: Path
) -> None:
    model_server.set_reply("The axes have no labels.")
    panel = ChatPanel()
    handler = make_handler(model_server, notebook_dir, panel, tmp_path / "config")
    await handler.on_message(human(f"/{SLASH_ID} plots.ipynb what is wrong with it?"))

    assert panel.answer().startswith("The axes have no labels.")
    (request,) = model_server.chat_requests()
    system = request["messages"][0]
    assert system["role"] == "system" and system["content"] == PROMPT
    text = text_in(request)
    assert "what is wrong with it?" in text and f"/{SLASH_ID}" not in text
    (figure,) = images_in(request)
    assert figure.size == (64, 64) and figure.convert("RGB").getpixel((5, 5)) == (220, 30, 30)
