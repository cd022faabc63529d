"""The provider: registered under its own id, and a real vision call through LiteLLM."""

from __future__ import annotations

import base64
from importlib.metadata import entry_points

from conftest import MODEL, red_square_png
from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider
from jupyter_ai_vision.testing import ModelServer, images_in, text_in
from langchain_core.messages import HumanMessage

from {{ cookiecutter.package_name }}.provider import {{ cookiecutter.__class_prefix }}Provider

PROVIDER_ID = {{ cookiecutter.provider_id | jsonify }}


def test_entry_point_names_this_provider() -> None:
    (ep,) = entry_points(group="jupyter_ai.model_providers", name=PROVIDER_ID)
    assert ep.load() is {{ cookiecutter.__class_prefix }}Provider


def test_provider_is_a_vision_provider_with_its_own_id() -> None:
    assert issubclass({{ cookiecutter.__class_prefix }}Provider, VisionProvider)
    assert {{ cookiecutter.__class_prefix }}Provider.id == PROVIDER_ID != VisionProvider.id
    assert {{ cookiecutter.__class_prefix }}Provider.name == {{ cookiecutter.provider_name | jsonify }}


def test_the_model_receives_text_and_image(model_server: ModelServer) -> None:
    model_server.set_reply("A red square.")
    provider = {{ cookiecutter.__class_prefix }}Provider(model_id=MODEL, api_base=model_server.url, api_key="sk-test")
    png = base64.b64encode(red_square_png(32)).decode()
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        ]
    )
    answer = provider.invoke([message])
    assert answer.content == "A red square."
    (request,) = model_server.chat_requests()
    assert "What is this?" in text_in(request)
    (image,) = images_in(request)
    assert image.size == (32, 32)
