"""An AWS Secrets Manager secret, which an ExternalSecret may sync into the cluster
(:class:`~secretops.adapters.aws.AwsSecretStore`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from secretops.stores import Problem, StoreContext, StoreKind, StoreSpecModel
from secretops.stores.fields import ExternalSecretName

if TYPE_CHECKING:
    from secretops.inventory.root import Inventory
    from secretops.models import Environment
    from secretops.ports import SecretStore

AwsSecretId = Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")]


class AwsSecretStoreSpec(StoreSpecModel):
    """An AWS Secrets Manager secret; ``external_secret`` syncs it into the cluster."""

    type: Literal["aws_secretsmanager"]
    secret_id: AwsSecretId
    external_secret: ExternalSecretName | None = None
    json_key: str | None = None
    username_json_key: str | None = None

    @model_validator(mode="after")
    def _username_needs_json(self) -> AwsSecretStoreSpec:
        if self.username_json_key is not None and self.json_key is None:
            raise ValueError("username_json_key needs json_key (the secret is then JSON)")
        return self


def build(spec: AwsSecretStoreSpec, context: StoreContext) -> SecretStore:
    from secretops.adapters.aws import AwsSecretStore

    return AwsSecretStore(context.aws_client("secretsmanager"), spec.secret_id, spec.json_key,
                          spec.username_json_key)


def identity(inventory: Inventory, environment: Environment,
             spec: AwsSecretStoreSpec) -> tuple[str, ...]:
    # one account's secret, whichever environment names it
    return (spec.secret_id, spec.json_key or "")


def checks(inventory: Inventory, environment: Environment, spec: AwsSecretStoreSpec,
           path: str) -> Iterator[Problem]:
    if inventory.aws is None:
        yield path, "an aws_secretsmanager store needs the aws section"
    declared = inventory.environments[environment].external_secrets
    if spec.external_secret is not None and spec.external_secret not in declared:
        yield (
            path + ".external_secret",
            f"ExternalSecret {spec.external_secret!r} is not declared under "
            f"environments.{environment.value}.external_secrets",
        )


STORE = StoreKind(name="aws_secretsmanager", spec=AwsSecretStoreSpec, build=build,
                  identity=identity, checks=checks)
