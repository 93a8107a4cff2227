"""Providers: who issues each kind of key, registered through the ``secretops.providers``
entry point group.

A provider is one module (``secretops/providers/openai.py``, ``anthropic.py``, ``aws_iam.py``)
whose :class:`Provider` says everything the rest of secretops needs to know of it:

- ``name``: its section under ``providers:`` in the inventory, with ``settings`` the model of
  that section (every field ending in ``_credential`` names a credential of the inventory);
- ``kind``: the ``kind`` of the inventory's secrets whose keys it issues;
- ``build``: its adapter (a :class:`~secretops.ports.KeyProvider`), from its settings and a
  lookup of credentials by name;
- ``checks``: the inventory checks that only it knows (optional);
- ``label``: what one of its keys is called in reports (``API key``, ``access key``);
- ``person``: for a provider whose keys a person creates (in a console, through the run's
  form), what that person is told (:class:`PersonInstructions`), from its settings, the name
  the key gets and the environment; None when its adapter creates keys (``creates_keys``).

A package adds a provider with one module and one line of its ``pyproject.toml``::

    [project.entry-points."secretops.providers"]
    vault_token = "mypackage.vault:PROVIDER"

The flows, the command line, the deployments and ``secretops inventory check`` take their
choices from the inventory and this registry; nothing else names a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from secretops.errors import InventoryError

if TYPE_CHECKING:
    from secretops.inventory.root import Inventory
    from secretops.models import SecretValue
    from secretops.ports import KeyProvider

GROUP = "secretops.providers"
# the one kind of secret that no provider issues: a database login, rotated by secretops itself
POSTGRES_PASSWORD = "postgres_password"

Credentials = Callable[[str], "SecretValue"]
Problem = tuple[str, str]


def _no_checks(inventory: Inventory, settings: Any) -> Iterable[Problem]:
    return ()


@dataclass(frozen=True)
class PersonInstructions:
    """What a person needs to create the key: where, how to name it, what it looks like."""

    console_url: str
    key_name: str
    key_prefix: str | None

    def markdown(self, secret: str, environment: str) -> str:
        return (
            f"### A new {secret} key is needed for **{environment}**\n\n"
            f"1. Open {self.console_url} and create a key named `{self.key_name}`.\n"
            f"2. Paste it below. It starts with `{self.key_prefix or ''}`.\n\n"
            "The key is stored as the pending version and deleted from this run's input at "
            "once; the old key keeps working until the new one is verified."
        )


@dataclass(frozen=True)
class Provider:
    """One provider of keys: see the module doc."""

    name: str
    kind: str
    settings: type[BaseModel]
    build: Callable[[Any, Credentials], KeyProvider]
    label: str = "API key"
    checks: Callable[[Inventory, Any], Iterable[Problem]] = field(default=_no_checks)
    person: Callable[[Any, str, str], PersonInstructions] | None = None

    @property
    def creates_keys(self) -> bool:
        """Whether its adapter creates keys; False when a person does (it has ``person``)."""
        return self.person is None

    def credential_fields(self, settings: BaseModel) -> dict[str, str]:
        """The credentials its settings name, by field: ``{"admin_credential": "openai-admin"}``."""
        return {name: value for name, value in settings.model_dump().items()
                if name.endswith("_credential") and isinstance(value, str)}


@cache
def registry() -> Mapping[str, Provider]:
    """Every installed provider, by name, in name order."""
    found: dict[str, Provider] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        provider = point.load()
        if not isinstance(provider, Provider) or provider.name != point.name:
            raise InventoryError(f"entry point {point.name} = {point.value} of {GROUP} is not "
                                 f"a secretops Provider named {point.name!r}")
        found[point.name] = provider
    if not found:
        raise InventoryError(f"no provider is registered under the entry point group {GROUP}: "
                             "install secretops (pip install -e . in a checkout)")
    return found


def kinds() -> list[str]:
    """Every kind of secret the inventory may name: each provider's, and the database's."""
    return [*(p.kind for p in registry().values()), POSTGRES_PASSWORD]


def is_key(kind: str) -> bool:
    """Whether secrets of ``kind`` are keys that a provider issues."""
    return any(p.kind == kind for p in registry().values())


def for_kind(kind: str) -> Provider:
    """The provider that issues keys of ``kind``."""
    for provider in registry().values():
        if provider.kind == kind:
            return provider
    known = ", ".join(p.kind for p in registry().values())
    raise InventoryError(f"no provider issues {kind!r} keys (installed: {known})")
