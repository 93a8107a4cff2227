"""A key of the development environment's ``.env`` file
(:class:`~secretops.adapters.files.DotenvStore`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from secretops.stores import LocalFileSpec, StoreContext, StoreKind
from secretops.stores.fields import EnvVar

if TYPE_CHECKING:
    from secretops.inventory.model import EnvironmentSpec
    from secretops.inventory.root import Inventory
    from secretops.models import Environment
    from secretops.ports import SecretStore


class DotenvStoreSpec(LocalFileSpec):
    """A key of the environment's ``.env`` file; ``url_keys`` embed the password in a URL."""

    type: Literal["dotenv"]
    key: EnvVar
    url_keys: list[EnvVar] = Field(default_factory=list)
    username_key: EnvVar | None = None


def build(spec: DotenvStoreSpec, context: StoreContext) -> SecretStore:
    from secretops.adapters.files import DotenvStore

    return DotenvStore(spec.file, spec.key, spec.url_keys, spec.username_key)


def identity(inventory: Inventory, environment: Environment,
             spec: DotenvStoreSpec) -> tuple[str, ...]:
    return (environment.value, spec.key)


def resolve(spec: DotenvStoreSpec, environment: EnvironmentSpec) -> None:
    if environment.dotenv is not None:
        spec.place(environment.dotenv)


STORE = StoreKind(name="dotenv", spec=DotenvStoreSpec, build=build, identity=identity,
                  local="dotenv", resolve=resolve)
