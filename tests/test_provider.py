"""VisionProvider: registration, model ids, parameters, vision capability, templates."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading

import pytest
from jupyter_ai_magics.models.completion import InlineCompletionRequest
from jupyter_ai_magics.utils import decompose_model_id, get_lm_providers
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from PIL import Image

from jupyter_ai_vision.hosts.jupyter_ai_2.provider import (
    NOTES_KEY,
    ModelParameterError,
    VisionProvider,
    reply_text,
    vision_models,
)
from jupyter_ai_vision.llm import capabilities
from jupyter_ai_vision.testing import images_in, text_in

pytestmark = pytest.mark.jupyter_ai_2

KEY = "sk-provider-test-key-987654321"


def make(server, model="openai/gpt-4o-mini", **kw) -> VisionProvider:
    return VisionProvider(model_id=model, api_base=server.url, api_key=KEY, **kw)


def _image_message(text="What is this?") -> HumanMessage:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (250, 0, 0)).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return HumanMessage(
        content=[{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    )


def test_registered_through_the_entry_point():
    providers = get_lm_providers()
    assert providers["vision"] is VisionProvider
    assert VisionProvider.name == "Vision (LiteLLM)"
    assert VisionProvider.registry and VisionProvider.models == ["*"]
    assert {f.key for f in VisionProvider.fields} == {
        "api_base",
        "api_key",
        "supports_vision",
        "timeout",
        "completion_images",
        "completion_context_cells",
        "completion_max_images",
        "completion_image_tokens",
        "caption_model",
        "caption_api_base",
    }


@pytest.mark.parametrize(
    ("model_id", "local"),
    [
        ("vision:openai/gpt-4o", "openai/gpt-4o"),
        ("vision:ollama/llava", "ollama/llava"),
        ("vision:ollama/llava:13b", "ollama/llava:13b"),
        ("vision:openrouter/anthropic/claude-3.5-sonnet", "openrouter/anthropic/claude-3.5-sonnet"),
    ],
)
def test_model_ids_with_slashes_and_colons(model_id, local):
    provider_id, local_id = decompose_model_id(model_id, get_lm_providers())
    assert (provider_id, local_id) == ("vision", local)
    assert VisionProvider(model_id=local_id).model == local


def test_vision_model_list_comes_from_litellm_map():
    import litellm

    models = vision_models()
    assert "openai/gpt-4o" in models and len(models) > 50
    for name in models[:: max(1, len(models) // 25)]:
        bare = name.split("/", 1)[1]
        info = litellm.model_cost.get(name) or litellm.model_cost.get(bare)
        assert info and info.get("supports_vision"), name
    assert "openai/gpt-4o" in VisionProvider.help and "ollama/llava" in VisionProvider.help


def test_the_0_1_provider_names_still_import():
    code = (
        "import warnings; warnings.simplefilter('ignore', DeprecationWarning)\n"
        "from jupyter_ai_vision.provider import (VisionProvider, ModelParameterError, "
        "check_parameters, check_vision, strip_images, vision_models, snapshot_vision_models, "
        "LISTED_PROVIDERS, NOT_SENT, REFUSED)\n"
        "from jupyter_ai_vision.embeddings import LiteLLMEmbeddings, VisionEmbeddingsProvider\n"
        "from jupyter_ai_vision.chat_model import import_litellm, RETRY_BACKOFF\n"
        "print(len(vision_models()) > 50, 'openai' in LISTED_PROVIDERS)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_importing_the_provider_does_not_import_litellm():
    code = (
        "import sys; import jupyter_ai_vision.hosts.jupyter_ai_2.provider, jupyter_ai_vision.hosts.jupyter_ai_2.embeddings; "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings_fields_are_coerced_and_empty_means_unset(model_server):
    # what jupyter-ai passes from the settings UI: strings, None for empty fields
    p = VisionProvider(
        model_id="openai/gpt-4o-mini",
        api_base=model_server.url,
        api_key="",
        supports_vision="true",
        timeout=None,
        verbose=True,
    )
    assert p.supports_vision is True and p.api_key is None and p.timeout == 120.0
    assert VisionProvider(model_id="m", supports_vision="").supports_vision is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeout": "soon"}, "timeout must be a number >= 0.001, not 'soon'"),
        ({"timeout": -1}, "timeout must be a number >= 0.001, not -1"),
        ({"supports_vision": "maybe"}, "supports_vision must be true or false, not 'maybe'"),
        ({"max_tokens": 2.5}, "max_tokens must be a whole number >= 1, not 2.5"),
        ({"temperature": [1]}, "temperature must be a number >= 0, not [1]"),
        ({"api_key": 123}, "api_key must be a string, not 123"),
        ({"api_base": "localhost:4000"}, "api_base must be an http(s) URL"),
    ],
)
def test_wrong_parameter_types_give_one_line(params, message):
    with pytest.raises(ModelParameterError) as info:
        VisionProvider(model_id="openai/gpt-4o", **params)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value._render_traceback_() == [f"ModelParameterError: {info.value}"]
    assert "soon" not in str(params.get("api_key", ""))


async def test_caption_settings_are_fields_never_sent_to_the_chat_api(model_server):
    p = make(model_server, caption_model=" ollama/llava ", caption_api_base="")
    assert p.caption_model == "ollama/llava" and p.caption_api_base is None
    await p.ainvoke("hi")
    body = model_server.chat_requests()[0]
    assert not any(k.startswith("caption") for k in body) and "caption" not in str(p.model_kwargs)
    with pytest.raises(ModelParameterError, match="caption_api_base must be an http"):
        make(model_server, caption_model="ollama/llava", caption_api_base="localhost:11434")


async def test_extra_model_parameters_reach_the_model(model_server):
    p = make(model_server, top_p=0.25, temperature=0.1, max_tokens=50)
    await p.ainvoke("hi")
    body = model_server.chat_requests()[0]
    assert body["top_p"] == 0.25 and body["temperature"] == 0.1 and body["max_tokens"] == 50


async def test_works_like_jupyter_ai_chat_builds_it(model_server):
    model_server.set_reply("streamed through a chain")
    p = VisionProvider(
        **{"verbose": True, "model_id": "openai/gpt-4o", "api_base": model_server.url}
    )
    chain = ChatPromptTemplate.from_messages([("human", "{input}")]) | p | StrOutputParser()
    pieces = [piece async for piece in chain.astream({"input": "hello"})]
    assert "".join(pieces) == "streamed through a chain" and len(pieces) > 2


def test_supports_images_override_and_litellm_map():
    import litellm  # noqa: F401  (loaded: supports_images() may consult the map)

    assert VisionProvider(model_id="openai/gpt-4o").supports_images() is True
    assert VisionProvider(model_id="openai/gpt-3.5-turbo").supports_images() is False
    assert VisionProvider(model_id="openai/my-finetune-xyz").supports_images() is None
    p = VisionProvider(model_id="openai/gpt-3.5-turbo", supports_vision=True)
    assert p.supports_images() is True
    assert (
        VisionProvider(model_id="openai/gpt-4o", supports_vision=False).supports_images() is False
    )


def test_supports_images_never_checks_ollama_on_the_event_loop(monkeypatch):
    calls = []
    monkeypatch.setattr(capabilities, "check_vision", lambda *a: calls.append(a))
    p = VisionProvider(model_id="ollama/llava-unlisted-tag")
    p.supports_images()
    assert calls == []  # the blocking HTTP check only runs via asupports_images (a thread)


async def test_non_vision_model_gets_stubs_and_the_reply_says_so(model_server):
    model_server.set_reply("I see text.")
    p = make(model_server, model="openai/gpt-3.5-turbo")
    text = "".join([c.content async for c in p.astream([_image_message()])])
    body = model_server.chat_requests()[0]
    assert images_in(body) == []
    assert "[image not sent: the model does not accept images]" in text_in(body)
    assert text.startswith("I see text.")
    assert "Images were not sent" in text and "supports_vision" in text


async def test_notes_are_machine_readable_and_reply_text_leaves_them_out(model_server):
    model_server.set_reply("I see text.")
    p = make(model_server, model="openai/gpt-3.5-turbo")
    reply = await p.ainvoke([_image_message()])
    (note,) = reply.response_metadata[NOTES_KEY]
    assert note.startswith("Images were not sent") and note in reply.content
    assert reply_text(reply) == "I see text."

    chunks = [c async for c in p.astream([_image_message()])]
    *answer, last = chunks
    assert last.response_metadata[NOTES_KEY] == [note] and reply_text(last) == ""
    assert all(NOTES_KEY not in c.response_metadata for c in answer)
    merged = sum(chunks[1:], chunks[0])
    assert reply_text(merged) == "I see text." and merged.content.endswith(f"_{note}_")
    # a model that takes images: no notes at all
    plain = await make(model_server).ainvoke([_image_message()])
    assert NOTES_KEY not in plain.response_metadata and reply_text(plain) == plain.content


def test_sync_paths_fall_back_on_refused_images_too(model_server):
    p = make(model_server, model="openai/some-unmapped-model", max_retries=0)
    model_server.fail("no_images", times=1)
    reply = p.invoke([_image_message()])
    assert "refused them" in reply.response_metadata[NOTES_KEY][0]
    model_server.fail("no_images", times=1)
    text = "".join(c.content for c in p.stream([_image_message()]))
    assert "refused them" in text
    first, second, third, fourth = model_server.chat_requests()
    assert [len(images_in(b)) for b in (first, second, third, fourth)] == [1, 0, 1, 0]


async def test_stop_mid_stream_closes_the_upstream_connection(model_server):
    model_server.set_reply(" ".join(f"w{i}" for i in range(60)))
    model_server.set_chunk_delay(0.05)
    stream = make(model_server).astream([_image_message()])
    for _ in range(3):
        await stream.__anext__()
    await stream.aclose()
    assert await model_server.wait_for_async(lambda rs: rs[-1].outcome != "pending", 3)
    assert model_server.records[-1].outcome == "client_closed"


async def test_model_refusing_images_is_asked_again_without_them(model_server):
    model_server.fail("no_images", times=1)
    p = make(model_server, model="openai/some-unmapped-model", max_retries=0)
    reply = await p.ainvoke([_image_message()])
    first, second = model_server.chat_requests()
    assert len(images_in(first)) == 1 and images_in(second) == []
    assert "refused them" in reply.content and reply.content.startswith("Hello")


async def test_astream_refused_images_retry(model_server):
    model_server.fail("no_images", times=1)
    p = make(model_server, model="openai/some-unmapped-model", max_retries=0)
    text = "".join([c.content async for c in p.astream([_image_message()])])
    assert "refused them" in text and len(model_server.chat_requests()) == 2


def test_prompt_templates_per_format():
    p = VisionProvider(model_id="openai/gpt-4o")
    assert p.get_prompt_template("text").format(prompt="hi {x}") == "hi {x}"
    code = p.get_prompt_template("code").format(prompt="plot it")
    assert code.startswith("plot it") and "source code only" in code
    assert "JSON format only" in p.get_prompt_template("json").format(prompt="q")
    assert "LaTeX" in p.get_prompt_template("math").format(prompt="q")
    # formats we do not customise fall back to jupyter-ai's
    assert "image only" in p.get_prompt_template("image").format(prompt="q")


async def test_inline_completions_delegate_to_the_completion_module(model_server):
    model_server.set_reply("return a + b")
    p = make(model_server)
    request = InlineCompletionRequest(
        number=1, prefix="def add(a, b):\n    ", suffix="", mime="text/x-python", stream=False
    )
    reply = await p.generate_inline_completions(request)
    assert reply.list.items[0].insertText == "return a + b"
    assert "def add(a, b):" in text_in(model_server.chat_requests()[0])

    stream_request = request.model_copy(update={"number": 2, "stream": True})
    chunks = [c async for c in p.stream_inline_completions(stream_request)]
    assert chunks[-1].done and chunks[-1].response.insertText == "return a + b"


def test_key_not_exposed(model_server):
    p = make(model_server)
    assert KEY not in repr(p) and KEY not in str(p._identifying_params)
    assert KEY not in json.dumps(p.model_dump(mode="json"), default=str)


async def test_local_server_without_any_key(model_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    p = VisionProvider(model_id="openai/llava-local", api_base=model_server.url)
    assert (await p.ainvoke("hi")).content
    assert model_server.records[0].headers["authorization"] == "Bearer no-key-configured"


async def test_ollama_check_runs_off_the_event_loop(monkeypatch):
    """LiteLLM asks the Ollama server (a blocking HTTP call): never on the event loop."""
    capabilities.VISION_CACHE.pop(("ollama/llava", None))
    real, threads = capabilities.check_vision, []

    def spy(*args):
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(capabilities, "check_vision", spy)
    p = VisionProvider(model_id="ollama/llava")
    assert p.supports_images() is True  # on the loop: the built-in table, no check
    assert threads == []
    # LiteLLM's map does not know llava (it says False): the built-in table knows it does
    assert await p.asupports_images() is True
    assert threads and threads[0] != threading.get_ident()
