"""The Vision persona's own pieces with real 3.x objects: which model (a real Jupyternaut
ConfigManager on a config file), and attachments as jupyterlab-chat gives them (dataclasses
in 0.25, dicts before)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.jupyter_ai_3


@pytest.fixture
def jupyternaut(tmp_path: Path) -> dict[str, Any]:
    """Server settings holding a real Jupyternaut ConfigManager (what its extension binds)."""
    from jupyter_ai_jupyternaut.config.config_manager import ConfigManager
    from traitlets.config import Config

    config = Config()
    config.ConfigManager.config_path = str(tmp_path / "config.json")
    manager = ConfigManager(
        config=config,
        log=logging.getLogger("test"),
        defaults={
            "model_provider_id": "openai/gpt-4o",
            "fields": {
                "openai/gpt-4o": {"api_base": "http://127.0.0.1:9/v1", "temperature": "0.2"},
                "openai/gpt-3.5-turbo": {"api_base": "http://127.0.0.1:8/v1"},
            },
            "api_keys": {"OPENAI_API_KEY": "sk-from-jupyternaut"},
        },
    )
    return {"jupyternaut.config_manager": manager}


def test_jupyternaut_model_arguments_and_key_by_default(jupyternaut: dict[str, Any]) -> None:
    from jupyter_ai_vision.hosts.jupyter_ai_3.model import choose

    choice = choose(jupyternaut, persona_model=None, persona_parameters={})
    assert (choice.model, choice.source) == ("openai/gpt-4o", "Jupyternaut")
    assert choice.api_base == "http://127.0.0.1:9/v1"
    assert choice.api_key == "sk-from-jupyternaut"
    assert choice.extra == {"temperature": 0.2}  # checked like 2.x's fields (a number)
    assert choice.secrets == {"sk-from-jupyternaut"}


def test_persona_settings_picker_and_images_override(jupyternaut: dict[str, Any]) -> None:
    from jupyter_ai_vision.hosts.jupyter_ai_3.model import choose

    own = choose(
        jupyternaut,
        persona_model="vision:anthropic/claude-sonnet-4-5",
        persona_parameters={"api_key": "sk-own", "supports_vision": "false"},
    )
    assert (own.model, own.source, own.api_key) == (
        "anthropic/claude-sonnet-4-5",
        "persona settings",
        "sk-own",
    )
    assert own.supports_vision is False
    picked = choose(
        jupyternaut,
        persona_model=None,
        persona_parameters={},
        picked="openai/gpt-3.5-turbo",
        images="on",
    )
    assert (picked.model, picked.source) == ("openai/gpt-3.5-turbo", "model picker")
    assert picked.api_base == "http://127.0.0.1:8/v1" and picked.supports_vision is True


def test_environment_then_one_line_when_nothing_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_ai_vision.errors import ModelParameterError
    from jupyter_ai_vision.hosts.jupyter_ai_3.model import ENV_MODEL, choose

    monkeypatch.setenv(ENV_MODEL, "ollama/llava")
    assert choose({}, persona_model=None, persona_parameters={}).source == "environment"
    monkeypatch.delenv(ENV_MODEL)
    with pytest.raises(ModelParameterError) as err:
        choose({}, persona_model=None, persona_parameters={})
    assert "\n" not in str(err.value) and "c.VisionPersona.model" in str(err.value)
    with pytest.raises(ModelParameterError) as bad:
        choose({}, persona_model="openai/gpt-4o", persona_parameters={"timeout": "soon"})
    assert "timeout" in str(bad.value)


class _Chat:
    """The one method attachments.sort uses, holding what a chat model returns."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table

    def get_attachments(self) -> dict[str, Any]:
        return self.table


@pytest.mark.parametrize("as_dicts", [False, True], ids=["dataclasses", "dicts"])
def test_attachments_sorted_from_both_shapes(as_dicts: bool) -> None:
    from dataclasses import asdict

    from jupyterlab_chat.models import FileAttachment, NotebookAttachment

    from jupyter_ai_vision.hosts.jupyter_ai_3.attachments import sort

    table: dict[str, Any] = {
        "nb": NotebookAttachment(
            value="a.ipynb",
            cells=[{"id": "c1", "input_type": "code"}, {"id": "c2", "input_type": "markdown"}],
        ),
        "other": NotebookAttachment(value="b.ipynb"),
        "png": FileAttachment(value="shots/x.PNG", mimetype="image/png"),
        "svg": FileAttachment(value="d.svg"),
        "txt": FileAttachment(value="notes.txt", mimetype="text/plain"),
        "empty": FileAttachment(value=""),
    }
    if as_dicts:
        table = {k: asdict(v) for k, v in table.items()}
    found = sort(_Chat(table), ["nb", "other", "png", "svg", "txt", "empty", "missing"])
    assert found.notebook == "a.ipynb" and found.cells == ["c1", "c2"]
    assert found.images == [("shots/x.PNG", "image/png"), ("d.svg", "image/svg+xml")]
    assert found.texts == ["notes.txt"]
    assert any("one notebook per question" in n for n in found.notes)
    assert sum("without a file" in n for n in found.notes) == 2  # "empty" and "missing"


def test_older_persona_manager_api_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """persona-manager < 0.2 (Jupyter AI 3.0 / 3.1) builds personas with ``ychat=``: the entry
    point refuses with PersonaRequirementsUnmet (persona-manager logs it, the chat stays quiet)."""
    from jupyter_ai_persona_manager import PersonaRequirementsUnmet

    from jupyter_ai_vision.hosts.jupyter_ai_3 import persona

    class OldBasePersona:  # the 3.0 / 3.1 constructor
        def __init__(self, *args: Any, ychat: Any, **kwargs: Any) -> None:
            self.ychat = ychat

    persona._check_persona_api()  # the installed 3.2 API passes
    monkeypatch.setattr(persona, "BasePersona", OldBasePersona)
    with pytest.raises(PersonaRequirementsUnmet) as err:
        persona._check_persona_api()
    line = str(err.value)
    assert "\n" not in line and "jupyter-ai-persona-manager >= 0.2" in line and "0.2.2" in line
