"""Runbook steps on the stores of a secret: make the pending version current everywhere, put
the previous one back, clear the pending one. Each step looks at the state first."""

from __future__ import annotations

from secretops.errors import NotRetryable, SecretopsError
from secretops.models import Stage
from tasks.common import runbook_step, wiring_for


@runbook_step("Check every store holds the current value")
def check_current_values(secret: str, environment: str, inventory: str) -> list[str]:
    """Before anything changes: each store must hold a current value it can read. One
    removed or garbled by hand would leave a rotation nothing to roll back to; the error
    names the store and never quotes what it holds."""
    evidence = []
    for store in wiring_for(inventory).stores(secret, environment):
        version = store.version(Stage.current)
        if version is None:
            raise NotRetryable(f"{store.name} holds no current value (removed by hand?); put "
                               "the current value back and rerun: a rotation without it "
                               "could not roll back")
        evidence.append(f"{store.name}: current version {version.version_id} "
                        f"({version.fingerprint})")
    return evidence


@runbook_step("Update secret")
def update_secret(secret: str, environment: str, inventory: str) -> list[str]:
    """Make the pending version current in every store of the environment (the runbook's
    ``kubectl edit secret``); the old one becomes the previous version."""
    evidence = []
    for store in wiring_for(inventory).stores(secret, environment):
        version = store.promote_pending()
        if version is None:
            raise SecretopsError(f"{store.name} has no pending version to make current")
        evidence.append(f"{store.name}: version {version.version_id} "
                        f"({version.fingerprint}) is current")
    return evidence


@runbook_step("Roll back: restore the previous version")
def restore_previous(secret: str, environment: str, inventory: str) -> list[str]:
    """Undo ``update_secret``: where the pending (new) version became current, the previous
    one is current again. Stores that were not promoted are left as they are."""
    evidence = []
    for store in wiring_for(inventory).stores(secret, environment):
        failed = store.read(Stage.pending)
        if failed is None:
            evidence.append(f"{store.name}: nothing pending, left as it is")
            continue
        version = store.restore_previous(failed)
        evidence.append(f"{store.name}: version {version.version_id} "
                        f"({version.fingerprint}) is current again")
    return evidence


@runbook_step("Clear the pending version")
def clear_pending(secret: str, environment: str, inventory: str) -> list[str]:
    stores = wiring_for(inventory).stores(secret, environment)
    for store in stores:
        store.clear_pending()
    return [f"{store.name}: no pending version" for store in stores]
