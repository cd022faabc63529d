"""VisionEmbeddingsProvider against the recording model server (LiteLLM's real HTTP path)."""

from __future__ import annotations

import asyncio

import litellm
import pytest
from jupyter_ai_magics.utils import get_em_providers

from jupyter_ai_vision.errors import ModelParameterError
from jupyter_ai_vision.hosts.jupyter_ai_2.embeddings import VisionEmbeddingsProvider
from jupyter_ai_vision.llm import error_messages as errors
from jupyter_ai_vision.testing import ModelServer

pytestmark = pytest.mark.jupyter_ai_2

KEY = "sk-embeddings-key-55555"


def make(server, **kw) -> VisionEmbeddingsProvider:
    params = {"model_id": "openai/text-embedding-3-small", "api_base": server.url}
    return VisionEmbeddingsProvider(**{**params, "api_key": KEY, **kw})


def test_registered():
    assert get_em_providers()["vision"] is VisionEmbeddingsProvider
    assert VisionEmbeddingsProvider.registry and "api_base" in VisionEmbeddingsProvider.help


async def test_embeds_documents_and_queries(model_server):
    e = make(model_server, batch_size=2)
    docs = await e.aembed_documents(["alpha", "beta", "gamma", "alpha"])
    assert len(docs) == 4 and docs[0] == docs[3] != docs[1]
    assert await e.aembed_query("beta") == docs[1]
    assert e.embed_query("gamma") == docs[2]
    bodies = model_server.requests
    assert [b["input"] for b in bodies[:2]] == [["alpha", "beta"], ["gamma", "alpha"]]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in model_server.records)
    assert bodies[0]["model"] == "text-embedding-3-small"


async def test_dimensions_are_passed(model_server):
    (vector,) = await make(model_server, dimensions=5).aembed_documents(["x"])
    assert len(vector) == 5 and model_server.requests[0]["dimensions"] == 5


async def test_two_providers_keep_their_own_key_and_base(model_server):
    other = ModelServer().start()
    try:
        a, b = make(model_server, api_key="sk-emb-A-0000"), make(other, api_key="sk-emb-B-1111")
        await asyncio.gather(a.aembed_query("1"), b.aembed_query("2"), a.aembed_query("3"))
        assert {r.headers["authorization"] for r in model_server.records} == {
            "Bearer sk-emb-A-0000"
        }
        assert [r.headers["authorization"] for r in other.records] == ["Bearer sk-emb-B-1111"]
        assert litellm.api_key is None and litellm.api_base is None
    finally:
        other.stop()


async def test_rate_limit_retried_then_auth_error_is_one_line(model_server):
    model_server.fail("429", times=1)
    assert await make(model_server).aembed_query("x")
    assert len(model_server.records) == 2
    model_server.fail("401")
    with pytest.raises(litellm.AuthenticationError) as info:
        await make(model_server).aembed_query("x")
    assert "update your API key" in errors.user_message(info.value)
    assert KEY not in info.value._render_traceback_()[0]


def test_wrong_parameter_type():
    with pytest.raises(ModelParameterError, match="timeout must be a number"):
        VisionEmbeddingsProvider(model_id="openai/text-embedding-3-small", timeout="x")
