"""What `secretops scan` looks for: every value the inventory's stores hold (current, pending
and previous, in every environment) and the credentials the flows themselves use."""

from __future__ import annotations

from secretops.credentials import resolve_credential
from secretops.errors import SecretopsError
from secretops.inventory import Inventory
from secretops.models import SecretValue
from secretops.scan import collect_store_values
from secretops.wiring import Wiring


def values_to_scan(inventory: Inventory, wiring: Wiring | None = None) -> list[SecretValue]:
    wiring = wiring or Wiring(inventory)
    stores = [store for secret in inventory.secret_ids()
              for environment in inventory.environments_of(secret)
              for store in wiring.stores(secret, environment)]
    values = collect_store_values(stores)
    for name in inventory.credentials:
        try:
            value = resolve_credential(inventory, name)
        except SecretopsError:
            continue  # a credential this machine cannot read cannot have leaked from it
        if value not in values:
            values.append(value)
    return values
