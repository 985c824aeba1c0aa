"""Router.resolve: which upstream target(s) serve a requested model name. Pure decisions, no I/O."""

from __future__ import annotations

import pytest

from sidecar.config import Config, config_from_dict
from sidecar.routing import RouteError, Router, Target

PRESET_IDS = ("openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "openrouter", "together", "xai",
              "ollama")


def labels(targets: list[Target]) -> list[str]:
    return [t.label for t in targets]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(Config())


@pytest.mark.parametrize("requested, provider, model", [
    ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("gemini/gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
    ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
    ("ollama/llama3.2:3b", "ollama", "llama3.2:3b"),
    # provider/model wins even for a model name no catalog knows
    ("together/some-brand-new-model", "together", "some-brand-new-model"),
    # the prefix decides; the model is passed through untouched even when it looks like another provider's
    ("openai/claude-haiku-4-5", "openai", "claude-haiku-4-5"),
])
def test_provider_slash_model(router, requested, provider, model):
    [target] = router.resolve(requested)
    assert target.provider.id == provider
    assert target.model == model
    assert target.label == f"{provider}/{model}"


def test_openrouter_style_model_keeps_its_slash(router):
    [target] = router.resolve("openrouter/anthropic/claude-x")
    assert target.provider.id == "openrouter"
    assert target.model == "anthropic/claude-x"
    [target] = router.resolve("together/meta-llama/Llama-3.3-70B-Instruct-Turbo")
    assert (target.provider.id, target.model) == ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo")


def test_alias_targets_in_order():
    config = config_from_dict({"models": {
        "smart": {"targets": ["anthropic/claude-sonnet-4-5", "openai/gpt-4o", "openrouter/google/gemini-2.5-pro"]},
        "cheap": {"targets": ["groq/llama-3.1-8b-instant"], "strategy": "lowest_cost"},
    }})
    router = Router(config)
    targets = router.resolve("smart")
    assert labels(targets) == ["anthropic/claude-sonnet-4-5", "openai/gpt-4o", "openrouter/google/gemini-2.5-pro"]
    assert targets[2].model == "google/gemini-2.5-pro"
    assert [t.provider.adapter for t in targets] == ["anthropic", "openai", "openai"]
    assert labels(router.resolve("cheap")) == ["groq/llama-3.1-8b-instant"]


def test_alias_shadows_a_bare_name():
    """An alias named like a real model wins: the user asked for that indirection."""
    router = Router(config_from_dict({"models": {"gpt-4o": {"targets": ["openrouter/openai/gpt-4o"]}}}))
    assert labels(router.resolve("gpt-4o")) == ["openrouter/openai/gpt-4o"]


def test_alias_targets_use_the_configured_provider():
    config = config_from_dict({
        "providers": {"openai": {"base_url": "http://127.0.0.1:1/v1"}},
        "models": {"fast": {"targets": ["openai/gpt-4o-mini"]}},
    })
    [target] = Router(config).resolve("fast")
    assert target.provider.base_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize("model, provider", [
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-some-future-model", "anthropic"),
    ("gpt-4o-mini", "openai"),
    ("gpt-99-imaginary", "openai"),
    ("o3-mini", "openai"),
    ("gemini-2.5-flash", "gemini"),
    ("gemini-9-ultra-imaginary", "gemini"),
    ("grok-4", "xai"),
    ("grok-imaginary", "xai"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-imaginary", "deepseek"),
    ("mistral-large-latest", "mistral"),
    ("Claude-3-Haiku", "anthropic"),  # prefixes match case-insensitively
])
def test_bare_name_by_prefix(router, model, provider):
    [target] = router.resolve(model)
    assert target.provider.id == provider
    assert target.model == model  # bare names are sent upstream exactly as asked


@pytest.mark.parametrize("model, provider", [
    ("llama-3.3-70b-versatile", "groq"),   # only groq lists it in the genai-prices catalog
    ("llama-3.1-8b-instant", "groq"),
    ("codestral", "mistral"),               # no "codestral-" prefix match: the catalog decides
    ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together"),  # "meta-llama" is not a provider id
])
def test_bare_name_from_the_catalog(router, model, provider):
    [target] = router.resolve(model)
    assert target.provider.id == provider
    assert target.model == model


def test_bare_name_prefers_prefix_over_catalog(router):
    # genai-prices lists claude-3-haiku under "google" (Vertex) too; the claude- prefix sends it to anthropic.
    [target] = router.resolve("claude-3-haiku")
    assert target.provider.id == "anthropic"


def test_bare_name_skips_keyless_local_providers():
    """ollama/vllm/lmstudio serve whatever is pulled locally; the catalog must not route cloud names there."""
    router = Router(Config())
    with pytest.raises(RouteError):
        router.resolve("some-local-only-model-xyz")


def test_bare_name_with_a_configured_prefix():
    config = config_from_dict({"providers": {
        "mylab": {"adapter": "openai", "base_url": "http://127.0.0.1:1/v1", "models": ["lab-"]},
    }})
    [target] = Router(config).resolve("lab-model-7")
    assert (target.provider.id, target.model) == ("mylab", "lab-model-7")


def test_bare_name_with_a_capitalised_configured_prefix():
    config = config_from_dict({"providers": {
        "mylab": {"adapter": "openai", "base_url": "http://127.0.0.1:1/v1", "models": ["Lab-"]},
    }})
    [target] = Router(config).resolve("Lab-Model-7")
    assert target.provider.id == "mylab"


def test_new_provider_is_addressable_as_provider_slash_model():
    config = config_from_dict({"providers": {
        "mylab": {"adapter": "anthropic", "base_url": "http://127.0.0.1:1"},
    }})
    [target] = Router(config).resolve("mylab/anything/with/slashes")
    assert (target.provider.id, target.provider.adapter, target.model) == ("mylab", "anthropic", "anything/with/slashes")


def test_unknown_model_is_404_listing_providers(router):
    with pytest.raises(RouteError) as info:
        router.resolve("mystery-model-9")
    err = info.value
    assert err.status == 404
    assert "mystery-model-9" in err.message
    for pid in PRESET_IDS:
        assert pid in err.message
    assert str(err) == err.message


@pytest.mark.parametrize("typo, suggestion", [
    ("opnai/gpt-4o", "openai/gpt-4o"),
    ("antropic/claude-3-haiku", "anthropic/claude-3-haiku"),
    ("lama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
])
def test_unknown_model_suggests_close_matches(router, typo, suggestion):
    with pytest.raises(RouteError) as info:
        router.resolve(typo)
    assert info.value.status == 404
    assert "Did you mean" in info.value.message
    assert suggestion in info.value.message


def test_unknown_model_mentions_aliases():
    router = Router(config_from_dict({"models": {"smart": {"targets": ["openai/gpt-4o"]}}}))
    with pytest.raises(RouteError) as info:
        router.resolve("smrt")
    assert info.value.status == 404
    assert "alias" in info.value.message and "smart" in info.value.message


def test_unknown_provider_prefix_is_404(router):
    with pytest.raises(RouteError) as info:
        router.resolve("nosuchprovider/some-model")
    assert info.value.status == 404


def test_provider_with_empty_model_is_not_routed_to_that_provider(router):
    with pytest.raises(RouteError) as info:
        router.resolve("openai/")
    assert info.value.status == 404


@pytest.mark.parametrize("empty", ["", None, 42, ["gpt-4o"]])
def test_empty_or_non_string_model_is_400(router, empty):
    with pytest.raises(RouteError) as info:
        router.resolve(empty)
    assert info.value.status == 400
    assert "model" in info.value.message


def test_resolution_is_stable_across_calls(router):
    first = labels(router.resolve("llama-3.3-70b-versatile"))
    assert labels(router.resolve("llama-3.3-70b-versatile")) == first
    with pytest.raises(RouteError):
        router.resolve("mystery-model-9")
    with pytest.raises(RouteError):
        router.resolve("mystery-model-9")
