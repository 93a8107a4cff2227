"""rotate-api-key end to end against the sandbox: the world afterwards, not mock calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flows.rotate_api_key import rotate_api_key
from secretops.models import SecretValue, Stage
from secretops.staging import stage_key
from tests.flows.conftest import World, backend_logs, mint_console_key

ENVIRONMENTS = ["development", "staging", "production"]


def current(world: World, secret: str, environment: str) -> list[SecretValue]:
    values = []
    for store in world.wiring.stores(secret, environment):
        credential = store.read(Stage.current)
        assert credential is not None, store.name
        values.append(credential.secret)
    return values


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("secret", ["openai", "anthropic"])
def test_rotation_end_to_end(world: World, kubectl: Any, secret: str, environment: str) -> None:
    old = current(world, secret, environment)[0]
    world.seen.append(old)
    stores = world.wiring.stores(secret, environment)
    if secret == "anthropic":
        stage_key(stores, mint_console_key(world, f"secretops-test-{environment}"))

    asyncio.run(rotate_api_key(secret=secret, environment=environment, inventory=world.path))

    new_values = current(world, secret, environment)
    new = new_values[0]
    world.seen.append(new)
    assert all(v == new for v in new_values) and new != old
    provider = world.wiring.provider(secret)
    assert provider.check_key(new) and not provider.check_key(old)
    assert all(store.read(Stage.pending) is None for store in stores)
    namespace = world.inventory.namespace(environment)
    if namespace:
        secret_data = world.wiring.cluster().read_secret(namespace, "api-keys") or {}
        assert secret_data[secret] == new
        logs = backend_logs(kubectl, namespace)
        assert logs.count("API initialized") >= 3
