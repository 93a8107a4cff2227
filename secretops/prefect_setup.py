"""What a Prefect server needs before the flows run: one global concurrency limit per secret
(one slot, so two runs touching the same secret never interleave; the flows take it with
``strict=True``, so a missing limit is an error, not a silent pass)."""

from __future__ import annotations

from secretops.inventory import Inventory


def lock_name(secret: str) -> str:
    return f"secretops-secret-{secret}"


def ensure_concurrency_limits(inventory: Inventory) -> list[str]:
    """Create (or re-activate) the per-secret limits; returns what was created or fixed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    changed = []
    with get_client(sync_client=True) as client:
        for secret in inventory.secrets:
            name = lock_name(secret.id)
            try:
                limit = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, active=True)
                )
                changed.append(f"created global concurrency limit {name} (1 slot)")
                continue
            if not limit.active or limit.limit != 1:
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=1, active=True)
                )
                changed.append(f"re-activated global concurrency limit {name} (1 slot)")
    return changed
