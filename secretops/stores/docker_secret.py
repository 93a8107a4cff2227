"""A Docker secret file of the development environment's ``secrets_dir``
(:class:`~secretops.adapters.files.DockerSecretStore`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator

from secretops import names
from secretops.stores import LocalFileSpec, StoreContext, StoreKind

if TYPE_CHECKING:
    from secretops.inventory.model import EnvironmentSpec
    from secretops.inventory.root import Inventory
    from secretops.models import Environment
    from secretops.ports import SecretStore

SecretFileName = Annotated[str, AfterValidator(names.relative_file_name)]


class DockerSecretStoreSpec(LocalFileSpec):
    """A Docker secret file, named relative to the environment's ``secrets_dir``."""

    type: Literal["docker_secret"]
    path: SecretFileName


def build(spec: DockerSecretStoreSpec, context: StoreContext) -> SecretStore:
    from secretops.adapters.files import DockerSecretStore

    return DockerSecretStore(spec.file)


def identity(inventory: Inventory, environment: Environment,
             spec: DockerSecretStoreSpec) -> tuple[str, ...]:
    return (environment.value, spec.path)


def resolve(spec: DockerSecretStoreSpec, environment: EnvironmentSpec) -> None:
    if environment.secrets_dir is not None:
        spec.place(environment.secrets_dir / spec.path)


STORE = StoreKind(name="docker_secret", spec=DockerSecretStoreSpec, build=build,
                  identity=identity, local="secrets_dir", resolve=resolve)
