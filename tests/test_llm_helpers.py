"""The shared pieces of llm/: parameter coercion, secret collection, the capability cache and
the model-list regenerator (host-independent, no LangChain)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest
from pydantic import SecretStr

from jupyter_ai_vision.errors import ModelParameterError
from jupyter_ai_vision.llm import capabilities, error_messages, model_list, params


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("1", True),
        (False, False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
        ("", None),
        (None, None),
    ],
)
def test_one_bool_coercion_for_every_setting(value, expected):
    assert params.coerce_bool("completion_images", value) is expected
    checked = params.check_parameters({"supports_vision": value, "completion_images": value})
    assert checked.get("supports_vision") is expected and checked.get("completion_images") is (
        expected
    )


@pytest.mark.parametrize("value", ["maybe", 2, [True]])
def test_other_bool_values_are_one_line_and_a_value_error(value):
    with pytest.raises(ModelParameterError, match="must be true or false") as info:
        params.coerce_bool("supports_vision", value)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_secrets_of_providers_and_nested_settings():
    class Provider:
        api_key = SecretStr("sk-provider-secret-1")
        openai_api_key = "sk-openai-secret-2"

    settings = {
        "model_parameters": {"vision:openai/gpt-4o": {"api_key": "sk-nested-3", "top_p": "0.5"}},
        "api_keys": {"OPENAI_API_KEY": "sk-env-4"},
        "headers": {"Authorization": "Bearer tok-5555"},
        "short": {"token": "abc"},  # too short to redact safely
    }
    found = error_messages.secrets_of(Provider(), settings, None)
    assert found == {
        "sk-provider-secret-1",
        "sk-openai-secret-2",
        "sk-nested-3",
        "sk-env-4",
        "Bearer tok-5555",
    }
    line = error_messages.redact("failed with sk-nested-3 and Bearer tok-5555", found)
    assert "sk-nested-3" not in line and "tok-5555" not in line


def test_capability_cache_is_bounded():
    capabilities.VISION_CACHE.clear()
    for i in range(capabilities.VISION_CACHE.max_items + 50):
        capabilities.supports_images(f"openai/made-up-{i}", may_block=True)
    assert len(capabilities.VISION_CACHE) == capabilities.VISION_CACHE.max_items


def test_capability_answers():
    assert capabilities.supports_images("openai/gpt-4o", may_block=True) is True
    assert capabilities.supports_images("openai/gpt-3.5-turbo", may_block=True) is False
    assert capabilities.supports_images("openai/my-finetune-xyz", may_block=True) is None
    assert capabilities.supports_images("openai/gpt-3.5-turbo", override=True) is True
    assert capabilities.supports_images("ollama/llava", may_block=True) is True  # the table


async def test_async_capability_check_runs_in_a_thread_once(monkeypatch):
    capabilities.VISION_CACHE.clear()
    real, threads = capabilities.check_vision, []

    def spy(*args):
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(capabilities, "check_vision", spy)
    answers = await asyncio.gather(
        *(capabilities.asupports_images("ollama/llava", "http://127.0.0.1:9") for _ in range(3))
    )
    assert answers == [True, True, True]
    assert threads and threading.get_ident() not in threads
    threads.clear()
    assert await capabilities.asupports_images("ollama/llava", "http://127.0.0.1:9") is True
    assert threads == []  # cached: no thread hop, no check


@pytest.mark.slow
def test_model_list_regenerator_writes_the_shipped_format():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_ai_vision.llm.model_list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        timeout=120,
    )
    snapshot = json.loads(out.stdout)
    assert set(snapshot) == {"litellm", "models"} and "openai/gpt-4o" in snapshot["models"]
    assert {m.split("/", 1)[0] for m in snapshot["models"]} <= set(model_list.LISTED_PROVIDERS)
    assert set(model_list.vision_models()) & set(snapshot["models"])
