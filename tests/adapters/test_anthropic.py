"""AnthropicProvider against the sandbox's Anthropic emulator, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.anthropic_api import AnthropicState
from secretops.adapters.anthropic_admin import AnthropicProvider
from secretops.adapters.files import DockerSecretStore
from secretops.adapters.providers import ProviderRefused
from secretops.models import KeyCheck, SecretValue
from secretops.staging import stage_key


@pytest.fixture()
def provider(anthropic_world: tuple[AnthropicState, str]) -> Iterator[AnthropicProvider]:
    state, url = anthropic_world
    built = AnthropicProvider(url, SecretValue(state.create_admin_key()))
    yield built
    built.close()


def test_find_check_and_deactivate(
    anthropic_world: tuple[AnthropicState, str], provider: AnthropicProvider
) -> None:
    state, _ = anthropic_world
    key_id, value = state.mint_key("backend-staging")
    assert not provider.can_create_keys
    with pytest.raises(ProviderRefused):
        provider.create_key("anything")

    assert provider.check_key(SecretValue(value))
    found = provider.find_key(SecretValue(value))
    assert found is not None and found.id == key_id and found.status == "active"
    assert found.created_at is not None

    assert provider.revoke_key(key_id) is True
    assert state.keys[key_id].status == "inactive"
    assert provider.check_key(SecretValue(value)) is KeyCheck.REFUSED
    assert provider.revoke_key(key_id) is False
    assert {k.id: k.status for k in provider.list_keys()}[key_id] == "inactive"

    # refused: now for good
    assert provider.revoke_key(key_id, final=True) is False  # it was not active any more
    assert state.keys[key_id].status == "archived"
    assert provider.revoke_key(key_id, final=True) is False


def test_a_leaked_key_is_archived_at_once(
    anthropic_world: tuple[AnthropicState, str], provider: AnthropicProvider
) -> None:
    state, _ = anthropic_world
    key_id, value = state.mint_key("backend-production-leaked")
    assert provider.revoke_key(key_id, final=True) is True
    assert state.keys[key_id].status == "archived"
    assert provider.check_key(SecretValue(value)) is KeyCheck.REFUSED


def test_workspace_filter_and_paging(anthropic_world: tuple[AnthropicState, str]) -> None:
    state, url = anthropic_world
    minted = {state.mint_key(f"k{n}", workspace_id="wrkspc_paging")[0] for n in range(103)}
    admin = SecretValue(state.create_admin_key())
    with AnthropicProvider(url, admin, "wrkspc_paging") as provider:
        assert {key.id for key in provider.list_keys()} == minted


def test_refusals_name_call_status_and_type(
    anthropic_world: tuple[AnthropicState, str], provider: AnthropicProvider
) -> None:
    _, url = anthropic_world
    with (
        AnthropicProvider(url, SecretValue("sk-ant-admin01-not-a-real-key-0000000")) as wrong,
        pytest.raises(ProviderRefused) as refused,
    ):
        wrong.list_keys()
    text = str(refused.value)
    assert "Anthropic list keys failed: HTTP 401" in text
    assert "authentication_error" in text
    assert "not-a-real" not in text
    with pytest.raises(ProviderRefused, match="HTTP 404"):
        provider.revoke_key("apikey_01doesnotexist")


def test_an_admin_key_without_the_permission_is_one_clear_line(
    anthropic_world: tuple[AnthropicState, str],
) -> None:
    state, url = anthropic_world
    _, ordinary = state.mint_key("not-an-admin-key")
    before = {key_id: key.status for key_id, key in state.keys.items()}
    with (AnthropicProvider(url, SecretValue(ordinary)) as provider,
          pytest.raises(ProviderRefused) as refused):
        provider.revoke_key(next(iter(before)), final=True)
    text = str(refused.value)
    assert "HTTP 403 (permission_error)" in text and "\n" not in text
    assert "sk-ant-" not in text
    assert {key_id: key.status for key_id, key in state.keys.items()} == before


def test_a_key_a_person_pasted_is_staged_with_its_id(
    anthropic_world: tuple[AnthropicState, str], provider: AnthropicProvider, tmp_path: Path
) -> None:
    """The console has no API, so the person's key is found once by its hint and known by id
    from then on; a key the listing cannot show is staged without one, and says so."""
    state, _ = anthropic_world
    key_id, value = state.mint_key("backend-staging-pasted")
    path = tmp_path / "anthropic_key.txt"
    path.write_text("sk-ant-api03-current-" + "z" * 30)
    store = DockerSecretStore(path)
    lines = stage_key([store], SecretValue(value), provider)
    assert store.key_ids() == {SecretValue(value).fingerprint(): key_id}
    assert lines[-1].endswith(f"as key {key_id}") and value not in "".join(lines)

    other = tmp_path / "other_key.txt"
    other.write_text("sk-ant-api03-current-" + "z" * 30)
    unknown = SecretValue("sk-ant-api03-never-listed-" + "q" * 30)
    lines = stage_key([DockerSecretStore(other)], unknown, provider)
    assert DockerSecretStore(other).key_ids() == {}
    assert "match it by hint" in lines[-1]
