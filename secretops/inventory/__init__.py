"""The inventory: every secret of the application, which stores hold it, who consumes
it, how it is rotated, who may read it, and which credentials secretops itself uses.

``load_inventory(path)`` reads and validates ``inventory.yaml``; the returned
:class:`Inventory` answers the flows' questions (``stores``, ``role_for``, ``strategy_for``...).
The store kinds' specs live with their kinds (:mod:`secretops.stores`) and are named here too.
"""

from secretops.inventory.loader import inventory_path, load_inventory, parse_inventory
from secretops.inventory.model import (
    AccessPolicy,
    AwsSettings,
    ConsumerSpec,
    CredentialRef,
    EnvironmentSpec,
    ExternalSecretSpec,
    KubernetesSettings,
    PostgresSettings,
    Providers,
    Schedule,
    SecretSpec,
    StoreSpec,
)
from secretops.inventory.root import Inventory
from secretops.stores.aws_secretsmanager import AwsSecretStoreSpec
from secretops.stores.docker_secret import DockerSecretStoreSpec
from secretops.stores.dotenv import DotenvStoreSpec
from secretops.stores.kubernetes_secret import KubernetesSecretStoreSpec

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
