"""How a key is told from another: redacted hints in both of the forms providers list, the
orphan sweep's refusals, and what a check's 401 and 403 mean. Against the sandbox's OpenAI
emulator over real HTTP."""

from __future__ import annotations

import dataclasses
import time

import pytest
from prefect import flow

from sandbox.openai_api import OpenAIState
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.models import (
    KeyListing,
    ProviderKey,
    SecretValue,
    hint_parts,
    keys_for,
    matches_hint,
)
from tasks.api_keys import _revoke_orphans

PROJECT = "proj_intelliprompt"
PREFIX = "secretops-intelliprompt-staging-openai-"
VALUE = "sk-svcacct-abcdefghijklmnopqrstuvwxyz0123456789wxyz"


@pytest.mark.parametrize("hint", [
    "sk-svcacct-abc...wxyz",            # the API reference's example form
    "sk-svcac****************wxyz",      # asterisks between head and tail
    "sk-svcac****...wxyz",              # both at once
])
def test_a_hint_in_either_form_matches_its_value(hint: str) -> None:
    assert matches_hint(VALUE, hint)
    assert not matches_hint(VALUE.replace("wxyz", "wxya"), hint)
    assert not matches_hint("sk-proj-" + VALUE[8:], hint)


@pytest.mark.parametrize("hint", ["sk-svcac****...****", "****wxyz", "...", "", None,
                                  "sk-svcacct-abcwxyz"])
def test_a_hint_without_a_head_and_a_tail_identifies_nothing(hint: str | None) -> None:
    assert hint_parts(hint) is None
    assert not matches_hint(VALUE, hint)


def test_a_listing_finds_by_its_index_the_keys_matches_hint_says() -> None:
    """The index of a listing by hint tail agrees with :func:`matches_hint` key by key, in
    the listing's order, the active key preferred to an inactive one of the same hint."""
    hints = ["sk-svcacct-abc...wxyz", "sk-svcac****************wxyz", "sk-svcac****...wxyz",
             "sk-svcac****...****", "****wxyz", None, "sk-svcacct-abc...xyz", "sk-x...z",
             "sk-svcacct-abd...wxyz", "sk-svcacct-abc...wxyz"]
    keys = [ProviderKey(f"key_{n}", f"k{n}", "inactive" if n in (0, 8) else "active",
                        redacted_value=hint) for n, hint in enumerate(hints)]
    values = [VALUE, VALUE.replace("wxyz", "wxya"), "sk-svcacct-abd" + VALUE[14:], "sk-xz",
              "sk-x-z", "wxyz"]
    listing = KeyListing(keys)
    for value in values:
        fits = [key for key in keys if matches_hint(value, key.redacted_value)]
        expected = [key for key in fits if key.status == "active"] or fits
        assert listing.with_value(SecretValue(value)) == expected, value
        assert keys_for(keys, SecretValue(value), {}) == expected
    assert keys_for(listing, SecretValue(VALUE), {SecretValue(VALUE).fingerprint(): "key_8"}
                    ) == [keys[8]]
    assert len(listing) == len(keys) and list(listing) == keys


def test_the_orphan_sweep_does_not_run_when_the_listing_matches_no_held_value(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    state, _ = openai_world
    live_id, live = state.mint_service_account_key(PROJECT, f"{PREFIX}live")
    orphan_id, _ = state.mint_service_account_key(PROJECT, f"{PREFIX}orphan")
    # a listing in a redacted form this code cannot read: every key would look orphaned
    unreadable = [dataclasses.replace(key, redacted_value="sk-svcacct-[redacted]")
                  for key in provider.list_keys()]

    evidence = _revoke_orphans(provider, [SecretValue(live)], PREFIX, unreadable, {})

    assert evidence and "orphan sweep not run" in evidence[0]
    assert live_id in state.keys and orphan_id in state.keys
    assert provider.check_key(SecretValue(live))


def test_the_orphan_sweep_revokes_an_older_unheld_key_only(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    state, _ = openai_world
    live_id, live = state.mint_service_account_key(PROJECT, f"{PREFIX}held")
    orphan_id, _ = state.mint_service_account_key(PROJECT, f"{PREFIX}left-by-a-dead-run")

    @flow(name="orphan-sweep", persist_result=False)
    def sweep() -> tuple[list[str], str]:
        # created after the run began: a key of someone else's, never this run's orphan. Keys
        # are stamped to the second, and one stamped with the run's first second counts as
        # older (the orphan above, left just before the run, is one), so wait for the next
        time.sleep(1.05 - time.time() % 1)
        young_id, _ = state.mint_service_account_key(PROJECT, f"{PREFIX}made-during-the-run")
        keys = provider.list_keys()
        return _revoke_orphans(provider, [SecretValue(live)], PREFIX, keys, {}), young_id

    evidence, young_id = sweep()

    assert orphan_id not in state.keys
    assert any(orphan_id in line for line in evidence)
    assert live_id in state.keys and young_id in state.keys


def test_an_id_recorded_without_its_value_does_not_shield_an_orphan(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    """A store records a key's id before it writes the value: a run killed between the two
    leaves an id beside no held value, and that key is as orphaned as one never stored."""
    state, _ = openai_world
    live_id, live = state.mint_service_account_key(PROJECT, f"{PREFIX}held")
    orphan_id, orphan = state.mint_service_account_key(PROJECT, f"{PREFIX}id-recorded-only")
    ids = {SecretValue(live).fingerprint(): live_id, SecretValue(orphan).fingerprint(): orphan_id}

    @flow(name="orphan-sweep-recorded-id", persist_result=False)
    def sweep() -> list[str]:
        return _revoke_orphans(provider, [SecretValue(live)], PREFIX, provider.list_keys(), ids)

    evidence = sweep()

    assert orphan_id not in state.keys and any(orphan_id in line for line in evidence)
    assert live_id in state.keys and provider.check_key(SecretValue(live))


def test_only_401_means_refused(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    state, _ = openai_world
    key_id, value = state.mint_service_account_key(PROJECT, "backend-check")
    # the emulator answers an admin key on /v1/models with 403 (it lacks api.model.read):
    # the provider authenticated it, so it works for whoever holds it
    assert provider.check_key(SecretValue(state.create_admin_key()))
    assert provider.check_key(SecretValue(value))
    assert provider.revoke_key(key_id)
    assert not provider.check_key(SecretValue(value))
