"""Where the real adapters are built: from the inventory and the credentials it names.

Flows and tasks ask a :class:`Wiring` for ports (a cluster, the stores of a secret in an
environment, a provider, a database, AWS access) and never build clients themselves; tests
point the same wiring at the sandbox by loading the sandbox's inventory. Credentials are
resolved when an adapter is first built (inside the flow run, never at deploy time) and
clients are kept for the wiring's lifetime. Each adapter's module (and its client library) is
imported when that adapter is first built: a leak's revocation loads only what it uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretops.credentials import resolve_credential
from secretops.errors import InventoryError
from secretops.inventory import Inventory
from secretops.models import Environment, SecretValue
from secretops.ports import KeyProvider, SecretStore
from secretops.providers import for_kind, is_key, registry
from secretops.stores import kind_of

if TYPE_CHECKING:
    from secretops.adapters.aws import AwsConfig
    from secretops.adapters.aws_audit import AwsAudit
    from secretops.adapters.kube import KubeCluster
    from secretops.adapters.postgres import PostgresDatabase

Resolver = Callable[[Inventory, str], SecretValue]

class Wiring:
    """The adapters for one inventory."""

    def __init__(self, inventory: Inventory, resolve: Resolver = resolve_credential) -> None:
        self.inventory = inventory
        self._resolve = resolve
        self._clusters: dict[str | None, KubeCluster] = {}
        self._providers: dict[str, KeyProvider] = {}
        self._aws_clients: dict[str, Any] = {}
        # a fleet run's threads ask for the same adapters at once: build each one once
        self._building = threading.RLock()

    def __repr__(self) -> str:
        return f"Wiring({self.inventory.application!r})"

    def close(self) -> None:
        """Close the clients built so far (their connection pools)."""
        for cluster in self._clusters.values():
            cluster.close()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
        for client in self._aws_clients.values():
            client.close()
        self._clusters.clear()
        self._providers.clear()
        self._aws_clients.clear()

    def __enter__(self) -> Wiring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def credential(self, name: str) -> SecretValue:
        return self._resolve(self.inventory, name)

    def cluster(self, emergency: bool = False) -> KubeCluster:
        """The cluster, through the inventory's context (or its break-glass context)."""
        settings = self.inventory.kubernetes
        context = settings.emergency_context if emergency else settings.context
        if emergency and context is None:
            raise InventoryError("the inventory names no kubernetes.emergency_context")
        with self._building:
            return self._cluster(context)

    def _cluster(self, context: str | None) -> KubeCluster:
        settings = self.inventory.kubernetes
        if context not in self._clusters:
            from secretops.adapters.kube import KubeCluster

            environments = {
                spec.namespace: env.value
                for env, spec in self.inventory.environments.items()
                if spec.namespace
            }
            self._clusters[context] = KubeCluster(
                str(settings.kubeconfig) if settings.kubeconfig else None,
                context,
                audit_log=str(settings.audit_log) if settings.audit_log else None,
                environments=environments,
            )
        return self._clusters[context]

    def aws_config(self) -> AwsConfig:
        settings = self.inventory.aws
        if settings is None:
            raise InventoryError("the inventory has no aws section")
        from secretops.adapters.aws import AwsConfig

        key_id = key = None
        if settings.access_key_id_credential and settings.secret_access_key_credential:
            key_id = self.credential(settings.access_key_id_credential)
            key = self.credential(settings.secret_access_key_credential)
        return AwsConfig(
            region=settings.region,
            access_key_id=key_id,
            secret_access_key=key,
            endpoint_url=settings.endpoint_url,
            cloudtrail_endpoint_url=settings.cloudtrail_endpoint_url,
        )

    def aws_client(self, service: str) -> Any:
        """An AWS client (``secretsmanager``, ``iam``, ``cloudtrail``), kept for reuse."""
        with self._building:
            if service not in self._aws_clients:
                config = self.aws_config()
                endpoint = config.cloudtrail_endpoint_url if service == "cloudtrail" else None
                self._aws_clients[service] = config.client(service, endpoint)
            return self._aws_clients[service]

    def aws(self, environment: Environment | str = Environment.production) -> AwsAudit:
        """IAM and CloudTrail, for the access audit of ``environment``."""
        from secretops.adapters.aws_audit import AwsAudit

        return AwsAudit(
            self.aws_client("secretsmanager"),
            self.aws_client("iam"),
            self.aws_client("cloudtrail"),
            Environment(environment).value,
        )

    def stores(self, secret_id: str, environment: Environment | str) -> list[SecretStore]:
        """The stores of the secret in the environment, primary first."""
        env = Environment(environment)
        context = _StoreContext(self, env)
        return [kind_of(spec).build(spec, context)
                for spec in self.inventory.stores(secret_id, env)]

    def provider(self, name: str) -> KeyProvider:
        """The provider of a key secret, given the secret's id (``openai``), the provider's
        name (``aws_iam``) or the kind of its keys (``openai_api_key``)."""
        if name in self.inventory.secret_ids():
            provider = self.inventory.provider_of(name)
        elif name in registry():
            provider = registry()[name]
        elif is_key(name):
            provider = for_kind(name)
        else:
            raise InventoryError(f"no provider for {name!r}")
        with self._building:
            if provider.name not in self._providers:
                settings = self.inventory.provider_config(provider.name)
                if settings is None:
                    raise InventoryError(f"the inventory has no providers.{provider.name}")
                # each provider imports its client only when it is built (anthropic's import
                # alone takes over a second, and a leak response starts with a revocation)
                self._providers[provider.name] = provider.build(settings, self.credential)
            return self._providers[provider.name]

    def database(self, environment: Environment | str) -> PostgresDatabase:
        from secretops.adapters.postgres import PostgresDatabase

        settings = self.inventory.postgres(environment)
        return PostgresDatabase(
            settings.host,
            settings.port,
            settings.database,
            settings.admin_user,
            self.credential(settings.admin_credential),
            admin_credential=settings.admin_credential,
        )


@dataclass(frozen=True)
class _StoreContext:
    """What a store kind builds its stores of one environment from (a
    :class:`~secretops.stores.StoreContext`): the wiring's cluster and AWS clients."""

    wiring: Wiring
    environment: Environment

    @property
    def inventory(self) -> Inventory:
        return self.wiring.inventory

    def namespace(self) -> str:
        namespace = self.inventory.namespace(self.environment)
        if namespace is None:
            raise InventoryError(f"environment {self.environment.value!r} has no namespace")
        return namespace

    def cluster(self) -> KubeCluster:
        return self.wiring.cluster()

    def aws_client(self, service: str) -> Any:
        return self.wiring.aws_client(service)
