"""The image budget: token formulas, the model table, and which images are sent."""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_ai_vision.context.budget import (
    ImagePolicy,
    estimate_image_tokens,
    fit_within,
    model_profile,
    select_images,
)

# ---------------------------------------------------------------- token formulas


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (1024, 1024, 765),  # OpenAI's documented examples: 768² -> 4 tiles
        (2048, 4096, 1105),  # fit 2048, short side 768 -> 768×1536 -> 6 tiles
        (512, 512, 255),  # one tile
        (100, 50, 255),  # never upscaled: still one tile
    ],
)
def test_openai_tile_models_high_detail(width, height, tokens):
    assert estimate_image_tokens(model_profile("gpt-4o"), width, height) == tokens


def test_openai_tile_low_detail_and_per_model_constants():
    assert estimate_image_tokens(model_profile("gpt-4o"), 1024, 1024, detail="low") == 85
    assert estimate_image_tokens(model_profile("o1"), 1024, 1024) == 75 + 4 * 150
    assert estimate_image_tokens(model_profile("openai/gpt-5"), 1024, 1024) == 70 + 4 * 140


def test_openai_patch_models():
    mini = model_profile("gpt-4.1-mini")
    assert mini.family == "openai-patch"
    assert estimate_image_tokens(mini, 1024, 1024) == math.ceil(1024 * 1.62)
    # 1800×2400 = 4200 patches > 1536: shrunk to 1452 patches (OpenAI's example).
    assert estimate_image_tokens(mini, 1800, 2400) == math.ceil(1452 * 1.62)
    assert estimate_image_tokens(model_profile("gpt-4.1-nano"), 64, 64) == math.ceil(4 * 2.46)
    # A square over the cap: 39×39 whole patches fit in 1536.
    assert estimate_image_tokens(model_profile("o4-mini"), 4000, 4000) == math.ceil(1521 * 1.72)


def test_anthropic_area_formula_with_server_side_downscale():
    claude = model_profile("anthropic/claude-3-5-sonnet-20240620")
    assert estimate_image_tokens(claude, 1000, 1000) == 1334
    assert estimate_image_tokens(claude, 1092, 1092) == 1590
    # Long edge 4000 > 1568: the API shrinks it first, so the cost stays ~1600.
    assert 1500 < estimate_image_tokens(claude, 4000, 3000) <= 1600


def test_gemini_tiles():
    gem = model_profile("gemini/gemini-2.0-flash")
    assert estimate_image_tokens(gem, 384, 384) == 258
    assert estimate_image_tokens(gem, 100, 30) == 258
    assert estimate_image_tokens(gem, 1024, 768) == 2 * 258
    assert estimate_image_tokens(gem, 1536, 1536) == 4 * 258


def test_generic_models_use_the_conservative_area_estimate():
    assert estimate_image_tokens(model_profile("some-local-model"), 1000, 1000) == 1334
    assert estimate_image_tokens(model_profile(None), 0, 10) == 0


# ---------------------------------------------------------------- the model table


@pytest.mark.parametrize(
    ("model", "family", "window", "images"),
    [
        ("gpt-4o", "openai-tile", 128_000, True),
        ("openai/gpt-4o-mini", "openai-tile", 128_000, True),
        ("azure/gpt-4.1", "openai-tile", 1_047_576, True),
        ("openrouter/openai/gpt-4.1-nano", "openai-patch", 1_047_576, True),
        ("gpt-3.5-turbo", "openai-tile", 16_385, False),
        ("gpt-4", "openai-tile", 8_192, False),
        ("o3-mini", "openai-tile", 128_000, False),
        ("o3", "openai-tile", 200_000, True),
        ("anthropic/claude-sonnet-4-20250514", "anthropic", 200_000, True),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "anthropic", 200_000, True),
        ("claude-2.1", "anthropic", 100_000, False),
        ("vertex_ai/gemini-1.5-pro", "gemini", 2_097_152, True),
        ("gemini/gemini-2.5-flash", "gemini", 1_048_576, True),
        ("ollama/llava:13b", "generic", None, True),
        ("deepseek/deepseek-chat", "generic", None, False),
        ("ollama/some-new-model", "generic", None, None),
    ],
)
def test_model_table(model, family, window, images):
    p = model_profile(model)
    assert (p.family, p.input_window, p.supports_images) == (family, window, images)
    assert p.model == model


def test_overrides_win_over_the_table():
    assert model_profile("gpt-3.5-turbo", supports_images=True).supports_images is True
    assert model_profile("ollama/x", supports_images=False).supports_images is False
    assert model_profile("ollama/x", input_window=8192).input_window == 8192
    assert model_profile(None).supports_images is None


def test_budget_module_does_not_import_heavy_libraries():
    tree = ast.parse(
        Path(sys.modules["jupyter_ai_vision.context.budget"].__file__ or "").read_text()
    )
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not names & {"litellm", "PIL", "vl_convert", "numpy"}


# ---------------------------------------------------------------- policy


def test_fit_never_upscales_and_respects_both_caps():
    policy = ImagePolicy()
    assert policy.fit(640, 480) == (640, 480)
    assert policy.fit(2000, 1200) == (1024, 614)
    w, h = policy.fit(1100, 1100)
    assert w == h == 1024
    w, h = fit_within(3000, 3000, 4096, 1_150_000)
    assert w * h <= 1_150_000 and w == h
    assert fit_within(10_000, 3, 1024, 1_150_000) == (1024, 1)


def test_policy_is_hashable_and_configurable():
    a, b = ImagePolicy(), ImagePolicy()
    assert hash(a) == hash(b) and a == b
    assert ImagePolicy(max_edge=512) != a
    with pytest.raises(AttributeError):
        a.max_edge = 5  # type: ignore[misc]


# ---------------------------------------------------------------- selection


@dataclass
class Img:
    cell_index: int | None
    tokens: int = 100
    name: str = ""


def _names(items):
    return [i.name for i in items]


def test_focused_cell_first_then_nearest_preceding_then_following():
    cands = [Img(c, name=f"c{c}") for c in [1, 2, 3, 5, 6, 8, 9]]
    policy = ImagePolicy(max_images=4)
    selected, dropped = select_images(
        cands, focus_cell_index=6, policy=policy, profile=model_profile("gpt-4o")
    )
    # focus 6, then 5, 3, 2 (preceding, nearest first); following cells come after.
    assert _names(selected) == ["c2", "c3", "c5", "c6"]  # notebook order kept
    assert [(i.name, r) for i, r in dropped] == [
        ("c1", "budget: 4 images per request"),
        ("c8", "budget: 4 images per request"),
        ("c9", "budget: 4 images per request"),
    ]


def test_following_cells_fill_in_after_all_preceding():
    cands = [Img(1, name="a"), Img(4, name="focus"), Img(5, name="next"), Img(9, name="far")]
    selected, _ = select_images(
        cands, focus_cell_index=4, policy=ImagePolicy(max_images=3), profile=model_profile(None)
    )
    assert _names(selected) == ["a", "focus", "next"]


def test_all_outputs_of_the_focused_cell_come_first():
    cands = [Img(3, name="p"), Img(4, name="f0"), Img(4, name="f1"), Img(4, name="f2")]
    selected, dropped = select_images(
        cands, focus_cell_index=4, policy=ImagePolicy(max_images=3), profile=model_profile(None)
    )
    assert _names(selected) == ["f0", "f1", "f2"] and _names(i for i, _ in dropped) == ["p"]


def test_token_cap_is_min_of_policy_and_window_share():
    policy = ImagePolicy()
    assert model_profile("gpt-4o").token_limit(policy) == 10_000
    assert model_profile("gpt-4").token_limit(policy) == int(8192 * 0.15)
    assert model_profile("unknown-model").token_limit(policy) == 10_000
    # A 20k-window model gets 3000 tokens: 3 images of 1000, the 4th is dropped.
    profile = model_profile("my-model", input_window=20_000)
    cands = [Img(i, tokens=1000, name=str(i)) for i in range(5)]
    selected, dropped = select_images(cands, focus_cell_index=4, policy=policy, profile=profile)
    assert _names(selected) == ["2", "3", "4"]
    assert {r for _, r in dropped} == {"budget: 3000 image tokens per request"}


def test_a_too_expensive_image_is_skipped_but_cheaper_ones_still_fit():
    cands = [Img(1, tokens=300, name="cheap"), Img(2, tokens=5000, name="huge")]
    policy = ImagePolicy(max_image_tokens=1000)
    selected, dropped = select_images(
        cands, focus_cell_index=2, policy=policy, profile=model_profile("gpt-4o")
    )
    assert _names(selected) == ["cheap"]
    assert [(i.name, r) for i, r in dropped] == [("huge", "budget: 1000 image tokens per request")]


def test_without_focus_the_latest_cells_win_and_cellless_items_go_last():
    cands = [Img(None, name="ref"), Img(0, name="first"), Img(7, name="last"), Img(3, name="mid")]
    selected, _ = select_images(
        cands, focus_cell_index=None, policy=ImagePolicy(max_images=2), profile=model_profile(None)
    )
    assert _names(selected) == ["last", "mid"]


def test_model_without_images_gets_none():
    cands = [Img(1, name="a")]
    selected, dropped = select_images(
        cands, focus_cell_index=1, policy=ImagePolicy(), profile=model_profile("gpt-3.5-turbo")
    )
    assert selected == [] and dropped[0][1] == "model does not accept images"


def test_default_budget_with_real_estimates_keeps_ten_images_under_ten_thousand_tokens():
    profile = model_profile("gpt-4o")
    cands = [
        Img(i, tokens=estimate_image_tokens(profile, 1024, 614), name=str(i)) for i in range(15)
    ]
    selected, dropped = select_images(
        cands, focus_cell_index=14, policy=ImagePolicy(), profile=profile
    )
    assert len(selected) == 10 and sum(i.tokens for i in selected) <= 10_000
    assert _names(selected) == [str(i) for i in range(5, 15)]
    assert len(dropped) == 5
