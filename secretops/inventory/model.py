"""The inventory as typed objects: one pydantic model per section of ``inventory.yaml``.

Field validators check each value on its own (names, crons, paths); checks that relate one
part of the inventory to another live in :mod:`secretops.inventory.checks`. Paths that are
relative in the file are made absolute by the loader, against the inventory's folder. The
sections that depend on what is installed are built from the registries: ``providers:`` from
:mod:`secretops.providers`, each secret's ``stores:`` entries from :mod:`secretops.stores`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    create_model,
    model_validator,
)

from secretops import names, stores
from secretops.models import DbStrategy, Environment
from secretops.passwords import PasswordPolicy
from secretops.providers import POSTGRES_PASSWORD, kinds, registry
from secretops.schema import HttpUrl, StrictModel, keys_in_pairs
from secretops.stores.fields import EnvVar, ExternalSecretName, SecretName

Namespace = Annotated[str, AfterValidator(partial(names.dns_label, what="namespace"))]
DeploymentName = Annotated[str, AfterValidator(partial(names.dns_label, what="deployment"))]
PgRole = Annotated[str, AfterValidator(names.pg_role)]
BlockName = Annotated[str, AfterValidator(names.block_name)]
SecretId = Annotated[str, AfterValidator(partial(names.identifier, what="secret id"))]
Cron = Annotated[str, AfterValidator(names.cron)]
TimeZone = Annotated[str, AfterValidator(names.timezone)]

ENVIRONMENTS = tuple(Environment)


def environment_key(value: Any) -> Environment:
    """An :class:`Environment` from its name, with the list of names when it is unknown."""
    try:
        return Environment(value)
    except ValueError:
        expected = ", ".join(e.value for e in ENVIRONMENTS)
        raise ValueError(f"unknown environment {value!r} (expected one of: {expected})") from None


def _per_environment(parse: Any, value: Any) -> Any:
    """Parse a setting that is one value for every environment or a mapping per environment."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            env = environment_key(key)
            try:
                result[env] = parse(item)
            except ValueError as exc:
                raise ValueError(f"{env.value}: {exc}") from None
        return result
    return parse(value)


def _role(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a role name or a mapping of environment to role name")
    return names.pg_role(value)


def _strategy(value: Any) -> DbStrategy:
    try:
        return DbStrategy(value)
    except ValueError:
        expected = ", ".join(s.value for s in DbStrategy)
        raise ValueError(f"unknown strategy {value!r} (expected one of: {expected})") from None


RoleSetting = Annotated[
    str | dict[Environment, str], PlainValidator(partial(_per_environment, _role))
]
StrategySetting = Annotated[
    DbStrategy | dict[Environment, DbStrategy], PlainValidator(partial(_per_environment, _strategy))
]


class CredentialRef(StrictModel):
    """Where a credential that secretops itself uses is found: exactly one source."""

    block: BlockName | None = None
    env: EnvVar | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CredentialRef:
        given = [name for name in ("block", "env", "file") if getattr(self, name) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise ValueError(f"needs exactly one of block, env, file (found {found})")
        return self

    @property
    def source(self) -> str:
        """Where the value is looked for, in words (never the value)."""
        if self.block is not None:
            return f"Prefect Secret block {self.block!r}"
        if self.env is not None:
            return f"environment variable {self.env}"
        return f"file {self.file}"


def _providers_model() -> type[StrictModel]:
    """The ``providers:`` section: one optional field per installed provider, of its settings
    model (see :mod:`secretops.providers`)."""
    fields: dict[str, Any] = {name: (provider.settings | None, None)
                              for name, provider in registry().items()}
    model: type[StrictModel] = create_model("Providers", __base__=StrictModel, **fields)
    model.__doc__ = "The providers that issue the inventory's keys, each with its settings."
    return model


if TYPE_CHECKING:
    Providers = StrictModel
else:
    Providers = _providers_model()


def _kind(value: Any) -> str:
    if not isinstance(value, str) or value not in kinds():
        raise ValueError(f"unknown kind {value!r} (expected one of: {', '.join(kinds())})")
    return value


SecretKindName = Annotated[str, PlainValidator(_kind)]


class AwsSettings(StrictModel):
    """AWS access. Without credential names boto3's default chain applies (instance role)."""

    region: str = "us-east-1"
    endpoint_url: HttpUrl | None = None
    access_key_id_credential: str | None = None
    secret_access_key_credential: str | None = None
    cloudtrail_endpoint_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsSettings:
        keys_in_pairs(self.access_key_id_credential, self.secret_access_key_credential)
        return self


class KubernetesSettings(StrictModel):
    """Cluster access: a kubeconfig (``None``: ``$KUBECONFIG``, ``~/.kube/config`` or in-cluster)
    and its contexts, and the API server's audit log (JSON lines) when it is readable."""

    kubeconfig: Path | None = None
    context: str | None = None
    emergency_context: str | None = None
    audit_log: Path | None = None


class PostgresSettings(StrictModel):
    host: str
    port: int = Field(default=5432, ge=1, le=65535)
    database: str
    admin_user: PgRole = "postgres"
    admin_credential: str


class ExternalSecretSpec(StrictModel):
    """An ExternalSecret of External Secrets Operator and the Secret it owns."""

    target: SecretName


class EnvironmentSpec(StrictModel):
    """Where an environment keeps its secrets: a namespace (staging, production) or local files
    (development), the ExternalSecrets that own Secrets there, and its database server."""

    namespace: Namespace | None = None
    dotenv: Path | None = None
    dotenv_example: Path | None = None
    secrets_dir: Path | None = None
    external_secrets: dict[ExternalSecretName, ExternalSecretSpec] = Field(default_factory=dict)
    postgres: PostgresSettings | None = None

    def external_secret_owning(self, secret_name: str) -> str | None:
        """The ExternalSecret whose target is ``secret_name`` here, if any."""
        for name, spec in self.external_secrets.items():
            if spec.target == secret_name:
                return name
        return None


class ConsumerSpec(StrictModel):
    """A workload that reads secrets at start: restarted after a change, then verified."""

    deployment: DeploymentName
    verify_log: str = "API initialized"
    rollout_timeout_seconds: float = Field(default=300, gt=0)


if TYPE_CHECKING:
    StoreSpec = stores.StoreSpecModel
else:
    # one entry of a secret's stores: the specs of the installed store kinds, by type
    StoreSpec = stores.spec_union(stores.registry())


class Schedule(StrictModel):
    cron: Cron
    timezone: TimeZone = "UTC"


class SecretSpec(StrictModel):
    """One secret: what it is, where it lives per environment, who reads it, when it rotates.

    ``role``, ``strategy`` and ``password_policy`` apply to ``postgres_password`` secrets only.
    ``environments`` names the environments it lives in, when not all of the inventory's (a
    CI credential that development has no use for).
    """

    id: SecretId
    kind: SecretKindName
    description: str = ""
    schedule: Schedule | None = None
    consumers: list[str] = Field(default_factory=list)
    stores: dict[Environment, list[StoreSpec]]
    role: RoleSetting | None = None
    strategy: StrategySetting | None = None
    password_policy: PasswordPolicy | None = None
    environments: list[Environment] | None = None

    @property
    def is_password(self) -> bool:
        """A database login, rotated by secretops itself; every other kind is a provider's key."""
        return self.kind == POSTGRES_PASSWORD

    def role_in(self, env: Environment) -> str | None:
        """The owner role in ``env`` (``None`` when the inventory names none there)."""
        if isinstance(self.role, dict):
            return self.role.get(env)
        return self.role

    def strategy_in(self, env: Environment) -> DbStrategy:
        """The rotation strategy in ``env``; when the inventory names none, production
        alternates between two login roles (no downtime), the others use the single role."""
        strategy = self.strategy.get(env) if isinstance(self.strategy, dict) else self.strategy
        if strategy is None:
            return DbStrategy.alternating if env is Environment.production else DbStrategy.single
        return strategy


class AccessPolicy(StrictModel):
    """Who may read an environment's secrets (the runbook's "Who Has Access")."""

    groups: list[str]
