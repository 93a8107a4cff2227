"""OpenAIProvider against the sandbox's OpenAI emulator, served over real HTTP."""

from __future__ import annotations

import pytest

from sandbox.openai_api import OpenAIState
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.adapters.providers import ProviderRefused
from secretops.models import KeyCheck, SecretValue, matches_hint

PROJECT = "proj_intelliprompt"


def test_create_check_find_and_revoke(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    state, _ = openai_world
    _, old_value = state.mint_service_account_key(PROJECT, "backend-staging-old")

    new = provider.create_key("backend-staging-rotated")
    assert provider.can_create_keys
    assert new.key.id in state.keys
    assert state.keys[new.key.id].value == new.value.reveal()
    assert state.service_accounts[new.key.extra["service_account_id"]].name == (
        "backend-staging-rotated"
    )
    assert provider.check_key(new.value)
    assert provider.check_key(SecretValue(old_value))

    listed = {key.id: key for key in provider.list_keys()}
    assert new.key.id in listed
    assert listed[new.key.id].name == "backend-staging-rotated"
    found = provider.find_key(SecretValue(old_value))
    assert found is not None and state.keys[found.id].value == old_value

    assert provider.revoke_key(found.id) is True
    assert found.id not in state.keys
    # a service account a person made keeps living: only its key is deleted
    assert found.extra["service_account_id"] in state.service_accounts
    assert provider.check_key(SecretValue(old_value)) is KeyCheck.REFUSED
    assert provider.revoke_key(found.id) is False
    assert provider.find_key(SecretValue(old_value)) is None
    assert provider.check_key(new.value)


def test_listing_follows_pages(openai_world: tuple[OpenAIState, str]) -> None:
    state, url = openai_world
    project = "proj_paging"
    minted = {state.mint_service_account_key(project, f"sa-{n}")[0] for n in range(105)}
    with OpenAIProvider(url, SecretValue(state.create_admin_key()), project) as provider:
        assert {key.id for key in provider.list_keys()} == minted


def test_refusals_do_not_echo_keys(openai_world: tuple[OpenAIState, str]) -> None:
    state, url = openai_world
    wrong = SecretValue("sk-admin-not-a-real-admin-key-0123456789")
    with OpenAIProvider(url, wrong, PROJECT) as provider, pytest.raises(ProviderRefused) as refused:
        provider.list_keys()
    text = str(refused.value)
    assert "HTTP 401" in text and "invalid_api_key" in text and "list keys" in text
    assert "sk-admin-not" not in text
    admin = SecretValue(state.create_admin_key())
    with (
        OpenAIProvider(url, admin, "proj_missing") as missing,
        pytest.raises(ProviderRefused, match="HTTP 404"),
    ):
        missing.create_key("x")


def test_unreachable_provider_is_retryable() -> None:
    from secretops.adapters.retry import is_transient

    provider = OpenAIProvider("http://127.0.0.1:9", SecretValue("sk-admin-whatever-value"), PROJECT)
    with pytest.raises(Exception) as failure:
        provider.check_key(SecretValue("sk-some-key-value-1234"))
    assert is_transient(failure.value)
    assert "APIConnectionError" in str(failure.value)


def test_matches_hint() -> None:
    assert matches_hint("sk-svcacct-abcDEF1234wxyz", "sk-svcacct-abc...wxyz")
    assert not matches_hint("sk-svcacct-abxDEF1234wxyz", "sk-svcacct-abc...wxyz")
    assert not matches_hint("sk-abcwxyz", "sk-abc...wxyz")
    assert not matches_hint("anything", None)


def test_reads_ride_out_injected_errors(openai_world: tuple[OpenAIState, str]) -> None:
    from sandbox.faults import FaultMiddleware, Faults
    from sandbox.openai_api import openai_app
    from secretops.adapters.providers import ProviderUnavailable
    from tests.sandbox.asgi_server import serve

    state, _ = openai_world
    state.mint_service_account_key(PROJECT, "ride-out-injected-errors")
    faults = Faults(seed=3)
    with serve(FaultMiddleware(openai_app(state), faults, "openai")) as url:
        admin = SecretValue(state.create_admin_key())
        with OpenAIProvider(url, admin, PROJECT) as provider:
            faults.set("openai", error_rate=0.3, codes=[429, 500, 503])
            for _ in range(10):
                assert provider.list_keys()
            faults.set("openai", error_rate=1.0, codes=[503])
            with pytest.raises(ProviderUnavailable, match=r"list keys failed: HTTP 503"):
                provider.list_keys()
