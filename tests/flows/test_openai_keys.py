"""OpenAI keys through the whole rotation: a listing in the asterisk form, keys minted with an
expiry, and an inventory that restricts new keys to scopes. Against the sandbox's world."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest
import yaml

from flows.rotate_api_key import rotate_api_key
from secretops.expiry import key_lifetime
from secretops.models import KeyCheck
from tests.flows.api_key_world import assert_converged, faults, remember_all, rotate
from tests.flows.conftest import World

SECRET, ENVIRONMENT = "openai", "staging"


@pytest.mark.usefixtures("clean_prefect")
def test_a_listing_in_the_asterisk_form_revokes_only_the_old_key(world: World) -> None:
    old = assert_converged(world, SECRET, ENVIRONMENT)
    world.seen.append(old)
    provider = world.wiring.provider(SECRET)
    with faults(world, openai={"redaction": "stars"}):
        hints = [key.redacted_value or "" for key in provider.list_keys()]
        assert hints and all("****" in hint for hint in hints), hints
        before = {key.id for key in provider.list_keys() if key.status == "active"}
        rotate(world, SECRET, ENVIRONMENT)
        remember_all(world, SECRET, ENVIRONMENT)
        new = assert_converged(world, SECRET, ENVIRONMENT)
        after = {key.id for key in provider.list_keys() if key.status == "active"}
    assert new != old and not provider.check_key(old)
    gone = before - after
    assert len(gone) == 1, f"revoked {gone}: only the old key may go"


@pytest.mark.usefixtures("clean_prefect")
def test_a_rotated_key_carries_its_expiry(world: World) -> None:
    rotate(world, SECRET, ENVIRONMENT)
    remember_all(world, SECRET, ENVIRONMENT)
    new = assert_converged(world, SECRET, ENVIRONMENT)
    key = world.wiring.provider(SECRET).find_key(new)
    lifetime = key_lifetime(world.inventory, SECRET, datetime.now(UTC))
    assert key is not None and key.expires_at is not None and lifetime is not None
    expected = (key.created_at or datetime.now(UTC)) + lifetime
    assert abs(key.expires_at - expected) < timedelta(minutes=5), (key.expires_at, expected)


@pytest.mark.usefixtures("clean_prefect")
def test_a_key_restricted_to_scopes_rotates_and_keeps_them(world: World) -> None:
    """With ``scopes`` in the inventory the new key may list models (the application's
    start-up check) and nothing more: the official client is refused a chat completion."""
    data = yaml.safe_load(Path(world.path).read_text())
    data["providers"]["openai"]["scopes"] = ["api.model.read"]
    scoped = Path(world.path).with_name("inventory-scoped.yaml")
    scoped.write_text(yaml.safe_dump(data))
    old = assert_converged(world, SECRET, ENVIRONMENT)
    world.seen.append(old)
    asyncio.run(rotate_api_key(secret=SECRET, environment=ENVIRONMENT, inventory=str(scoped)))
    remember_all(world, SECRET, ENVIRONMENT)
    new = assert_converged(world, SECRET, ENVIRONMENT)
    assert new != old and world.wiring.provider(SECRET).check_key(new) is KeyCheck.WORKS
    base_url = f"{world.info['providers']['openai']}/v1"
    client = openai.OpenAI(api_key=new.reveal(), base_url=base_url, max_retries=0)
    with client, pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
    assert "model.request" in refused.value.message
