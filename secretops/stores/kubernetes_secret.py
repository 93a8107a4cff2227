"""A key of a Kubernetes Secret in the environment's namespace, patched directly
(:class:`~secretops.adapters.kube_store.KubernetesSecretStore`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator

from secretops import names
from secretops.stores import Problem, StoreContext, StoreKind, StoreSpecModel
from secretops.stores.fields import SecretName

if TYPE_CHECKING:
    from secretops.inventory.root import Inventory
    from secretops.models import Environment
    from secretops.ports import SecretStore

SecretKey = Annotated[str, AfterValidator(names.secret_key)]


class KubernetesSecretStoreSpec(StoreSpecModel):
    """A key of a Kubernetes Secret in the environment's namespace, patched directly."""

    type: Literal["kubernetes_secret"]
    name: SecretName
    key: SecretKey
    username_key: SecretKey | None = None


def build(spec: KubernetesSecretStoreSpec, context: StoreContext) -> SecretStore:
    from secretops.adapters.kube_store import KubernetesSecretStore

    namespace = context.namespace()
    return KubernetesSecretStore(context.cluster(), namespace, spec.name, spec.key,
                                 spec.username_key)


def identity(inventory: Inventory, environment: Environment,
             spec: KubernetesSecretStoreSpec) -> tuple[str, ...]:
    return (environment.value, spec.name, spec.key)


def checks(inventory: Inventory, environment: Environment, spec: KubernetesSecretStoreSpec,
           path: str) -> Iterator[Problem]:
    owner = inventory.environments[environment].external_secret_owning(spec.name)
    if owner is not None:
        yield (
            path + ".name",
            f"Secret {spec.name!r} is owned by ExternalSecret {owner!r} in {environment.value}, "
            "which rewrites it on every sync: use an aws_secretsmanager store with "
            f"external_secret: {owner}",
        )


STORE = StoreKind(name="kubernetes_secret", spec=KubernetesSecretStoreSpec, build=build,
                  identity=identity, checks=checks)
