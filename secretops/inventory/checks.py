"""Checks that relate one part of the inventory to another.

Each field is already valid on its own (see :mod:`secretops.inventory.model`); here the
inventory is checked as a whole: references resolve, every secret has stores in every
environment, store types fit their environment, no direct patch of a Secret that External
Secrets Operator owns, no two secrets share a store. :func:`problems` returns every problem as
``(field path, message)``.
"""

from __future__ import annotations

from collections.abc import Iterator

from secretops import stores
from secretops.inventory.model import EnvironmentSpec, SecretSpec, StoreSpec
from secretops.inventory.root import Inventory
from secretops.models import DbStrategy, Environment
from secretops.providers import for_kind, registry

Problem = tuple[str, str]
_ALTERNATING_SUFFIX = len("_a")


def problems(inv: Inventory) -> list[Problem]:
    """Every cross-reference problem of ``inv``, in file order."""
    found: list[Problem] = []
    found.extend(_credential_references(inv))
    found.extend(_environment_problems(inv))
    found.extend(_secret_problems(inv))
    return found


def _credential_references(inv: Inventory) -> Iterator[Problem]:
    refs: list[tuple[str, str | None]] = []
    for provider_name, provider in registry().items():
        settings = inv.provider_config(provider_name)
        if settings is not None:
            refs.extend((f"providers.{provider_name}.{field}", credential)
                        for field, credential in provider.credential_fields(settings).items())
    if inv.aws:
        refs.append(("aws.access_key_id_credential", inv.aws.access_key_id_credential))
        refs.append(("aws.secret_access_key_credential", inv.aws.secret_access_key_credential))
    for env, spec in inv.environments.items():
        if spec.postgres:
            refs.append(
                (
                    f"environments.{env.value}.postgres.admin_credential",
                    spec.postgres.admin_credential,
                )
            )
    defined = ", ".join(inv.credentials) or "none"
    for path, name in refs:
        if name is not None and name not in inv.credentials:
            yield path, f"credential {name!r} is not defined under credentials (defined: {defined})"


def _environment_problems(inv: Inventory) -> Iterator[Problem]:
    for env, spec in inv.environments.items():
        path = f"environments.{env.value}"
        if env is Environment.development:
            if spec.namespace is not None or spec.external_secrets:
                yield path, "development keeps its secrets in local files, not in a namespace"
        elif spec.namespace is None:
            yield path + ".namespace", f"{env.value} needs the Kubernetes namespace it runs in"
        for field in ("dotenv", "dotenv_example", "secrets_dir"):
            if env is not Environment.development and getattr(spec, field) is not None:
                yield f"{path}.{field}", "local files are for development only"
    for name, provider in registry().items():
        settings = inv.provider_config(name)
        if settings is not None:
            yield from provider.checks(inv, settings)
    for env in inv.access_policy:
        if env not in inv.environments:
            yield (
                f"access_policy.{env.value}",
                f"environment {env.value!r} is not under environments",
            )


def _secret_problems(inv: Inventory) -> Iterator[Problem]:
    seen_ids: dict[str, int] = {}
    seen_stores: dict[tuple[str, ...], int] = {}
    for index, secret in enumerate(inv.secrets):
        path = f"secrets[{index}]"
        if secret.id in seen_ids:
            yield (
                path + ".id",
                f"duplicate secret id {secret.id!r} (also secrets[{seen_ids[secret.id]}])",
            )
        seen_ids.setdefault(secret.id, index)
        defined = ", ".join(inv.consumers) or "none"
        for i, consumer in enumerate(secret.consumers):
            if consumer not in inv.consumers:
                yield (
                    f"{path}.consumers[{i}]",
                    f"consumer {consumer!r} is not defined under consumers (defined: {defined})",
                )
        yield from _kind_problems(inv, secret, path)
        for env in secret.environments or inv.environment_names():
            if not secret.stores.get(env):
                yield (
                    path + ".stores",
                    f"no stores for environment {env.value!r} "
                    "(a secret needs stores in every environment under environments, or in "
                    "each that its environments field names)",
                )
        for env in secret.stores:
            if secret.environments is not None and env not in secret.environments:
                yield (f"{path}.stores.{env.value}",
                       f"environment {env.value!r} is not one of the secret's environments")
        for env, specs in secret.stores.items():
            if env not in inv.environments:
                yield (
                    f"{path}.stores.{env.value}",
                    f"environment {env.value!r} is not under environments",
                )
                continue
            for i, store in enumerate(specs):
                store_path = f"{path}.stores.{env.value}[{i}]"
                yield from _store_problems(inv, env, store, store_path)
                where = (store.type, *stores.kind_of(store).identity(inv, env, store))
                if where in seen_stores and seen_stores[where] != index:
                    other = seen_stores[where]
                    yield (
                        store_path,
                        f"this store already holds secret {inv.secrets[other].id!r} "
                        f"(secrets[{other}])",
                    )
                seen_stores.setdefault(where, index)


def _kind_problems(inv: Inventory, secret: SecretSpec, path: str) -> Iterator[Problem]:
    if not secret.is_password:
        for field in ("role", "strategy", "password_policy"):
            if getattr(secret, field) is not None:
                yield f"{path}.{field}", "only postgres_password secrets have this field"
        provider = for_kind(secret.kind).name
        if inv.provider_config(provider) is None:
            yield path + ".kind", f"{secret.kind} needs providers.{provider}"
        return
    if secret.role is None:
        yield path, "a postgres_password secret needs a role"
        return
    for env in secret.stores:
        if env not in inv.environments:
            continue
        role = secret.role_in(env)
        if role is None:
            yield path + ".role", f"no role for environment {env.value!r}"
            continue
        if inv.environments[env].postgres is None:
            yield f"environments.{env.value}", f"{secret.id!r} needs postgres settings here"
        if secret.strategy_in(env) is DbStrategy.alternating and (
            len(role) + _ALTERNATING_SUFFIX > 63
        ):
            yield path + ".role", f"role {role!r} is too long for the _a/_b login roles"


def _store_problems(
    inv: Inventory, env: Environment, store: StoreSpec, path: str
) -> Iterator[Problem]:
    kind = stores.kind_of(store)
    if kind.local is not None:
        if env is not Environment.development:
            yield (
                path + ".type",
                f"store type {store.type!r} does not fit environment {env.value!r} "
                "(local files are for development only)",
            )
        elif getattr(inv.environments[env], kind.local, None) is None:
            yield path, f"a {store.type} store needs environments.{env.value}.{kind.local}"
        else:
            yield from kind.checks(inv, env, store, path)
        return
    if env is Environment.development:
        yield (
            path + ".type",
            f"store type {store.type!r} does not fit environment 'development' "
            f"(development keeps its secrets in local files: {_local_types()})",
        )
        return
    yield from kind.checks(inv, env, store, path)


def _local_types() -> str:
    """The store types kept in local files, in the order of the settings that locate them."""
    order = {name: index for index, name in enumerate(EnvironmentSpec.model_fields)}
    local = [kind for kind in stores.registry().values() if kind.local is not None]
    local.sort(key=lambda kind: order.get(kind.local or "", len(order)))
    return " or ".join(kind.name for kind in local)
