"""errors.user_message: every LiteLLM exception is mapped; real failures give one line."""

from __future__ import annotations

import inspect
import socket

import litellm
import litellm.exceptions
import pytest

from jupyter_ai_vision.llm import error_messages as errors
from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel

KEY = "sk-errors-test-key-abcdef123456"


def _litellm_exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(litellm.exceptions, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith("litellm")
    ]


def test_every_litellm_exception_class_maps_to_a_message_directly_or_through_its_bases():
    # New litellm releases add subclasses (1.110 added CallerCredentialAuthenticationError,
    # EndpointNotSupportedByModelError, ...): what matters is that each one reaches a message.
    classes = _litellm_exception_classes()
    assert len(classes) > 20
    unmapped = [c.__name__ for c in classes if errors.class_key(c) is None]
    assert unmapped == [], f"no message for these (add one to MESSAGES): {unmapped}"
    for cls in classes:
        assert errors.MESSAGES[errors.class_key(cls)].strip(), cls


def test_a_new_subclass_is_mapped_through_its_parent():
    class BrandNewRateLimit(litellm.RateLimitError):
        pass

    assert errors.class_key(BrandNewRateLimit) == "RateLimitError"


def test_timeout_is_matched_before_its_base_class():
    assert "APIConnectionError" in [k.__name__ for k in litellm.Timeout.__mro__[1:]]
    assert errors.class_key(litellm.Timeout) == "Timeout"
    assert errors.class_key(litellm.ContextWindowExceededError) == "ContextWindowExceededError"


def _model(model_server, **kw):
    params = {"model": "openai/gpt-4o-mini", "api_base": model_server.url, "api_key": KEY}
    return LiteLLMChatModel(**{**params, "max_retries": 0, "timeout": 5, **kw})


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("401", "update your API key in the chat settings"),
        ("429", "rate limit"),
        ("503", "unavailable"),
        ("404", "Unknown model"),
        ("no_images", "does not accept images"),
        ("context", "context window"),
        ("midstream", "stream broke off"),
        ("malformed", "malformed stream"),
    ],
)
async def test_real_failures_map_to_one_line(model_server, mode, expected):
    model_server.fail(mode)
    with pytest.raises(Exception) as info:
        async for _ in _model(model_server).astream("hi"):
            pass
    message = errors.user_message(info.value, secrets=[KEY])
    assert expected.lower() in message.lower()
    assert "\n" not in message and KEY not in message and len(message) < 300
    # the exception itself renders as that one line in a notebook
    assert info.value._render_traceback_() == [message]


async def test_timeout_message(model_server):
    model_server.fail("timeout")
    model_server.set_timeout_sleep(3)
    with pytest.raises(litellm.Timeout) as info:
        await _model(model_server, timeout=0.3).ainvoke("hi")
    assert "did not answer in time" in errors.user_message(info.value)
    assert "timeout" in errors.user_message(info.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_api_base(model_server):
    model = LiteLLMChatModel(
        model="openai/gpt-4o-mini",
        api_base=f"http://127.0.0.1:{_closed_port()}/v1",
        api_key=KEY,
        timeout=3,
    )
    with pytest.raises(Exception) as info:
        await model.ainvoke("hi")
    assert errors.user_message(info.value) == errors.UNREACHABLE
    assert not errors.is_retryable(info.value)


def test_unknown_provider_prefix():
    model = LiteLLMChatModel(model="no-such-provider-model-xyz", api_key=KEY, max_retries=0)
    with pytest.raises(Exception) as info:
        model.invoke("hi")
    message = errors.user_message(info.value)
    assert "Unknown model provider" in message and "openai/gpt-4o" in message


def test_missing_key_for_a_provider(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    model = LiteLLMChatModel(model="anthropic/claude-sonnet-4-5", max_retries=0, timeout=5)
    with pytest.raises(Exception) as info:
        model.invoke("hi")
    assert "API key" in errors.user_message(info.value)


def test_keys_are_redacted_from_any_text():
    exc = ValueError(f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}")
    message = errors.user_message(exc, secrets=[KEY])
    assert KEY not in message and "***" in message
    assert "sk-" not in errors.redact("key sk-abcdefghijkl and api_key='hunter2'")
    assert "hunter2" not in errors.redact("api_key='hunter2'")


def test_retry_policy():
    assert errors.is_retryable(litellm.RateLimitError("x", "openai", "m"))
    assert errors.is_retryable(litellm.Timeout("x", "m", "openai"))
    assert errors.is_retryable(litellm.ServiceUnavailableError("x", "openai", "m"))
    assert not errors.is_retryable(litellm.AuthenticationError("x", "openai", "m"))
    assert not errors.is_retryable(litellm.BadRequestError("x", "m", "openai"))
    assert not errors.is_retryable(litellm.NotFoundError("x", "m", "openai"))


def test_unknown_exception_still_one_line():
    message = errors.user_message(RuntimeError("first line\nsecond line"))
    assert message == "The model call failed (RuntimeError): first line"
