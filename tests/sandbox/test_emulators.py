"""The sandbox's emulator registry (``secretops.sandbox.emulators``): one emulator per
secretops provider, wrong entry points refused, and the running world built from it."""

from __future__ import annotations

import asyncio
import secrets
import tomllib
from importlib.metadata import EntryPoint
from typing import Any

import httpx
import pytest
import yaml

from sandbox import emulators
from sandbox.emulators import GROUP, PYPROJECT, Emulator, EmulatorError
from secretops.inventory import load_inventory
from secretops.providers import registry as providers
from secretops.wiring import Wiring

NAMES = {"openai", "anthropic", "aws_iam"}


def test_the_registry_lists_an_emulator_per_provider() -> None:
    registered = emulators.registry()
    assert set(registered) == NAMES
    assert list(registered) == ["openai", "anthropic", "aws_iam"]  # rank order
    for name, emulator in registered.items():
        assert isinstance(emulator, Emulator) and emulator.name == name
        assert name in providers()
        assert (emulator.backend is None) != (emulator.application is None)
    assert emulators.fault_knobs() == ("openai", "anthropic")


def test_the_entry_points_are_the_sandbox_pyproject_table() -> None:
    """Installed metadata or, without the group there, ``sandbox/pyproject.toml``: the same
    entry points either way."""
    with open(PYPROJECT, "rb") as file:
        table = tomllib.load(file)["project"]["entry-points"][GROUP]
    assert {p.name: p.value for p in emulators.declared()} == table
    assert set(table) == NAMES


@pytest.mark.parametrize(("point", "message"), [
    (EntryPoint("openai", "sandbox.emulators.no_such_module:EMULATOR", GROUP),
     "cannot be loaded"),
    (EntryPoint("openai", "sandbox.emulators.openai:NO_SUCH_NAME", GROUP), "cannot be loaded"),
    (EntryPoint("openai", "sandbox.emulators.openai:KEY", GROUP),
     "is not a sandbox Emulator named 'openai'"),
    (EntryPoint("anthropic", "sandbox.emulators.openai:EMULATOR", GROUP),
     "is not a sandbox Emulator named 'anthropic'"),
])
def test_a_wrong_entry_point_is_refused(point: EntryPoint, message: str) -> None:
    with pytest.raises(EmulatorError) as refused:
        emulators.load([point])
    assert message in str(refused.value)
    assert f"entry point {point.name} = {point.value} of {GROUP}" in str(refused.value)


def test_an_emulator_of_no_provider_is_refused() -> None:
    point = EntryPoint("vault_token", "sandbox.emulators.openai:EMULATOR", GROUP)
    with pytest.raises(EmulatorError, match="not a sandbox Emulator named 'vault_token'"):
        emulators.load([point])
    with pytest.raises(EmulatorError, match="no emulator is registered"):
        emulators.load([])


def test_the_world_inventory_has_a_section_per_emulator(sandbox: dict[str, Any]) -> None:
    with open(sandbox["inventory"]) as file:
        inventory = yaml.safe_load(file)
    assert set(inventory["providers"]) == set(emulators.registry())
    kinds = {providers()[name].kind for name in emulators.registry()}
    assert kinds <= {secret["kind"] for secret in inventory["secrets"]}
    assert set(sandbox["providers"]) >= set(emulators.fault_knobs())


def _current(sandbox: dict[str, Any], name: str) -> tuple[str, str | None]:
    """The current key of the first secret of the provider's kind, as its primary store in
    staging holds it."""
    inventory = load_inventory(sandbox["inventory"])
    wiring = Wiring(inventory)
    kind = providers()[name].kind
    secret = next(s.id for s in inventory.secrets if s.kind == kind)
    credential = wiring.stores(secret, "staging")[0].read()
    assert credential is not None
    return credential.secret.reveal(), credential.username


@pytest.mark.usefixtures("ci_key_alone")
@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_emulator_answers_its_key_check(sandbox: dict[str, Any], name: str) -> None:
    emulator = emulators.registry()[name]
    value, key_id = _current(sandbox, name)
    made_up = value[:12] + secrets.token_urlsafe(24)
    made_up_id = f"AKIA{secrets.token_hex(8).upper()}" if key_id else None

    async def ask() -> tuple[bool, bool, str]:
        async with httpx.AsyncClient(timeout=10) as client:
            seeded = await emulator.key_works(client, sandbox, value, key_id)
            refused = await emulator.key_works(client, sandbox, made_up, made_up_id)
        return seeded.ok, refused.ok, refused.reason

    seeded, refused, reason = asyncio.run(ask())
    assert seeded is True
    assert refused is False and "refused" in reason
    assert made_up not in reason
