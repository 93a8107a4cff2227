"""The inventory: which secrets exist, where each one lives in each environment, who consumes
it, how it is rotated, who may read it, and which credentials secretops itself uses.

``load_inventory(path)`` reads and validates ``inventory.yaml``; the returned
:class:`Inventory` answers the flows' questions (``stores``, ``role_for``, ``strategy_for``...).
"""

from secretops.inventory.loader import inventory_path, load_inventory, parse_inventory
from secretops.inventory.model import (
    AccessPolicy,
    AwsSecretStoreSpec,
    AwsSettings,
    ConsumerSpec,
    CredentialRef,
    DockerSecretStoreSpec,
    DotenvStoreSpec,
    EnvironmentSpec,
    ExternalSecretSpec,
    KubernetesSecretStoreSpec,
    KubernetesSettings,
    PostgresSettings,
    Providers,
    Schedule,
    SecretSpec,
    StoreSpec,
)
from secretops.inventory.root import Inventory

__all__ = [
    "AccessPolicy",
    "AwsSecretStoreSpec",
    "AwsSettings",
    "ConsumerSpec",
    "CredentialRef",
    "DockerSecretStoreSpec",
    "DotenvStoreSpec",
    "EnvironmentSpec",
    "ExternalSecretSpec",
    "Inventory",
    "KubernetesSecretStoreSpec",
    "KubernetesSettings",
    "PostgresSettings",
    "Providers",
    "Schedule",
    "SecretSpec",
    "StoreSpec",
    "inventory_path",
    "load_inventory",
    "parse_inventory",
]
