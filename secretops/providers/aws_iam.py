"""AWS IAM: the access key pair of an IAM user per environment, such as a CI runner's
(:mod:`secretops.adapters.aws_iam`).

A pair is stored as a two-part credential: the access key id as its user name (a store's
``username_key`` or ``username_json_key``) and the secret access key as its value. A rotation
creates the user's second key (deleting an inactive one first when the user has two), stages
and propagates it, checks the new pair with ``sts:GetCallerIdentity``, then deactivates the old
key, checks AWS refuses it, and deletes it. A leak deactivates the leaked key first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import model_validator

from secretops.models import Environment
from secretops.providers import Credentials, Problem, Provider
from secretops.schema import HttpUrl, StrictModel, keys_in_pairs

if TYPE_CHECKING:
    from secretops.inventory.root import Inventory
    from secretops.ports import KeyProvider


class AwsIamSettings(StrictModel):
    """``users``: each environment's IAM user. The rotator's own credentials (allowed
    ``iam:CreateAccessKey``, ``ListAccessKeys``, ``UpdateAccessKey``, ``DeleteAccessKey``,
    ``GetAccessKeyLastUsed``, ``TagUser``, ``UntagUser``, ``ListUserTags`` on those users) are
    named in pairs; without them botocore's default chain applies (the worker's role).
    ``endpoint_url`` is for an AWS-compatible endpoint (none: AWS)."""

    users: dict[Environment, str]
    region: str = "us-east-1"
    endpoint_url: HttpUrl | None = None
    access_key_id_credential: str | None = None
    secret_access_key_credential: str | None = None

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsIamSettings:
        keys_in_pairs(self.access_key_id_credential, self.secret_access_key_credential)
        return self


def build(settings: AwsIamSettings, credential: Credentials) -> KeyProvider:
    from secretops.adapters.aws_iam import AwsIamProvider

    key_id = key = None
    if settings.access_key_id_credential and settings.secret_access_key_credential:
        key_id = credential(settings.access_key_id_credential)
        key = credential(settings.secret_access_key_credential)
    users = {env.value: user for env, user in settings.users.items()}
    return AwsIamProvider(users, settings.region, settings.endpoint_url, key_id, key)


def checks(inventory: Inventory, settings: AwsIamSettings) -> Iterator[Problem]:
    for env in settings.users:
        if env not in inventory.environments:
            yield (f"providers.aws_iam.users.{env.value}",
                   f"environment {env.value!r} is not under environments")
    users = list(settings.users.values())
    for env, user in settings.users.items():
        if users.count(user) > 1:
            yield (f"providers.aws_iam.users.{env.value}",
                   f"IAM user {user!r} serves more than one environment; AWS allows a user two "
                   "access keys, so a rotation in one would have no room for the other's")
    for index, secret in enumerate(inventory.secrets):
        if secret.kind != PROVIDER.kind:
            continue
        for env in secret.stores:
            if env not in settings.users:
                yield (f"secrets[{index}].stores.{env.value}",
                       f"providers.aws_iam.users names no IAM user for {env.value!r}")
            for i, store in enumerate(secret.stores[env]):
                if not (getattr(store, "username_key", None)
                        or getattr(store, "username_json_key", None)):
                    yield (f"secrets[{index}].stores.{env.value}[{i}]",
                           "an access key is two parts: the store needs username_key (or "
                           "username_json_key) for the access key id")


PROVIDER = Provider(name="aws_iam", kind="aws_iam_access_key", settings=AwsIamSettings,
                    build=build, checks=checks, label="access key")
