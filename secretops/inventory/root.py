"""The whole inventory and the questions the flows ask it.

Every helper takes a secret id and, where it matters, an environment (an
:class:`~secretops.models.Environment` or its name) and raises
:class:`~secretops.errors.InventoryError` for an id or environment the inventory does not have.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PrivateAttr

from secretops import names
from secretops.errors import InventoryError
from secretops.inventory.model import (
    ENVIRONMENTS,
    AccessPolicy,
    AwsSettings,
    ConsumerSpec,
    CredentialRef,
    EnvironmentSpec,
    KubernetesSettings,
    PostgresSettings,
    Providers,
    SecretSpec,
    StoreSpec,
)
from secretops.models import DbStrategy, Environment
from secretops.passwords import PasswordPolicy
from secretops.providers import Provider, for_kind
from secretops.schema import StrictModel

EnvironmentName = Environment | str
AppName = Annotated[str, AfterValidator(partial(names.identifier, what="application"))]


def _env(environment: EnvironmentName) -> Environment:
    try:
        return Environment(environment)
    except ValueError:
        raise InventoryError(f"unknown environment {environment!r}") from None


class Inventory(StrictModel):
    """``inventory.yaml``: secrets, where they live, who consumes them, who may read them, and
    the credentials secretops itself uses (by name, never by value)."""

    version: Literal[1]
    application: AppName
    credentials: dict[str, CredentialRef] = Field(default_factory=dict)
    providers: Providers = Field(default_factory=Providers)
    aws: AwsSettings | None = None
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    environments: dict[Environment, EnvironmentSpec]
    consumers: dict[str, ConsumerSpec] = Field(default_factory=dict)
    secrets: list[SecretSpec]
    access_policy: dict[Environment, AccessPolicy] = Field(default_factory=dict)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file the inventory was loaded from (``None`` when built in code)."""
        return self._source

    def secret_ids(self) -> list[str]:
        """Every secret id, in file order (for drop-downs and ``--all``)."""
        return [s.id for s in self.secrets]

    def secret(self, secret_id: str) -> SecretSpec:
        for spec in self.secrets:
            if spec.id == secret_id:
                return spec
        known = ", ".join(self.secret_ids())
        raise InventoryError(f"unknown secret {secret_id!r} (known: {known})")

    def environment_names(self) -> list[Environment]:
        """The environments the inventory declares, development first."""
        return [e for e in ENVIRONMENTS if e in self.environments]

    def environment(self, environment: EnvironmentName) -> EnvironmentSpec:
        env = _env(environment)
        if env not in self.environments:
            raise InventoryError(f"environment {env.value!r} is not in the inventory")
        return self.environments[env]

    def namespace(self, environment: EnvironmentName) -> str | None:
        """The Kubernetes namespace of the environment; ``None`` for one that keeps its secrets
        in local files (development)."""
        return self.environment(environment).namespace

    def external_secret_target(self, environment: EnvironmentName, external_secret: str) -> str:
        """The Secret that an ExternalSecret of the environment writes."""
        env = _env(environment)
        spec = self.environment(env).external_secrets.get(external_secret)
        if spec is None:
            raise InventoryError(
                f"ExternalSecret {external_secret!r} is not declared in {env.value!r}"
            )
        return spec.target

    def postgres(self, environment: EnvironmentName) -> PostgresSettings:
        env = _env(environment)
        settings = self.environment(env).postgres
        if settings is None:
            raise InventoryError(f"environment {env.value!r} has no postgres settings")
        return settings

    def environments_of(self, secret_id: str) -> list[Environment]:
        """The environments where the secret has stores, development first."""
        stores = self.secret(secret_id).stores
        return [e for e in ENVIRONMENTS if stores.get(e)]

    def stores(self, secret_id: str, environment: EnvironmentName) -> list[StoreSpec]:
        """The stores of the secret in the environment, in file order (the first is primary)."""
        env = _env(environment)
        stores = self.secret(secret_id).stores.get(env)
        if not stores:
            raise InventoryError(f"secret {secret_id!r} has no stores in {env.value!r}")
        return list(stores)

    def consumers_of(self, secret_id: str) -> list[ConsumerSpec]:
        """The consumers that read the secret, in the order the secret lists them."""
        return [self.consumers[name] for name in self.secret(secret_id).consumers]

    def _postgres_secret(self, secret_id: str) -> SecretSpec:
        spec = self.secret(secret_id)
        if not spec.is_password:
            raise InventoryError(f"secret {secret_id!r} is not a postgres_password")
        return spec

    def role_for(self, secret_id: str, environment: EnvironmentName) -> str:
        """The database owner role of a ``postgres_password`` secret in the environment."""
        env = _env(environment)
        role = self._postgres_secret(secret_id).role_in(env)
        if role is None:
            raise InventoryError(f"secret {secret_id!r} has no role for {env.value!r}")
        return role

    def strategy_for(self, secret_id: str, environment: EnvironmentName) -> DbStrategy:
        """The rotation strategy: alternating login roles or the single role (see
        :meth:`SecretSpec.strategy_in` for the default)."""
        return self._postgres_secret(secret_id).strategy_in(_env(environment))

    def check_strategy(
        self, secret_id: str, environment: EnvironmentName, strategy: DbStrategy
    ) -> DbStrategy:
        """``strategy`` if the environment's stores can carry it, else InventoryError.
        Alternating switches the user name together with the password, so every store must
        hold a user name too (``username_key`` / ``username_json_key``); a store that holds
        only the password (a Docker secret file) would leave the consumers with the wrong
        user."""
        if strategy is DbStrategy.alternating:
            lacking = [
                spec.type for spec in self.stores(secret_id, environment)
                if not (getattr(spec, "username_key", None)
                        or getattr(spec, "username_json_key", None))
            ]
            if lacking:
                raise InventoryError(
                    f"the alternating strategy needs every store of {secret_id!r} in "
                    f"{_env(environment).value!r} to hold the user name; these do not: "
                    f"{', '.join(lacking)}. Use the single strategy there, or give the "
                    "stores a username_key"
                )
        return strategy

    def login_roles(self, secret_id: str, environment: EnvironmentName) -> list[str]:
        """The roles that log in: the owner role itself (single) or ``<role>_a`` and
        ``<role>_b``, members of the owner role (alternating)."""
        role = self.role_for(secret_id, environment)
        if self.strategy_for(secret_id, environment) is DbStrategy.alternating:
            return [f"{role}_a", f"{role}_b"]
        return [role]

    def password_policy(self, secret_id: str) -> PasswordPolicy:
        return self._postgres_secret(secret_id).password_policy or PasswordPolicy()

    def provider_of(self, secret_id: str) -> Provider:
        """The provider that issues a key secret's keys."""
        spec = self.secret(secret_id)
        if spec.is_password:
            raise InventoryError(f"secret {secret_id!r} is a database password, not a key")
        return for_kind(spec.kind)

    def provider_config(self, name: str) -> BaseModel | None:
        """The settings of the provider ``name`` (its section under ``providers``), if any."""
        settings = getattr(self.providers, name, None)
        return settings if isinstance(settings, BaseModel) else None

    def provider_settings(self, secret_id: str) -> Any:
        """The settings of the provider of a key secret (its section's model)."""
        provider = self.provider_of(secret_id)
        settings = self.provider_config(provider.name)
        if settings is None:
            raise InventoryError(f"no provider settings for secret {secret_id!r}: the "
                                 f"inventory needs providers.{provider.name}")
        return settings

    def credential(self, name: str) -> CredentialRef:
        if name not in self.credentials:
            raise InventoryError(f"credential {name!r} is not defined in the inventory")
        return self.credentials[name]

    def allowed_groups(self, environment: EnvironmentName) -> list[str]:
        """The groups the access policy lets read the environment's secrets."""
        policy = self.access_policy.get(_env(environment))
        return list(policy.groups) if policy else []
