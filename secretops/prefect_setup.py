"""What a Prefect server needs before the flows run: one global concurrency limit per secret
(one slot, so two runs touching the same secret never interleave; the flows hold it through
:mod:`secretops.locks`, where a missing limit is an error, not a silent pass)."""

from __future__ import annotations

import contextlib

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


def release_lock(secret: str) -> None:
    """Free the per-secret lock after its holder died (a SIGKILL or a lost machine leaves the
    slot taken until its lease expires). The limit is recreated rather than zeroed, so the
    dead holder's lease, when it expires, cannot free a slot a new run has taken since."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    name = lock_name(secret)
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):
            client.delete_global_concurrency_limit_by_name(name)
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=1, active=True)
        )


def lock_holders(secret: str) -> list[str]:
    """Flow runs of secretops that are running or waiting and name ``secret``: while any
    exists, the lock is not stale."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    live = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING, StateType.CANCELLING]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))))
    return [f"{run.name} ({run.id}, {run.state_type.value if run.state_type else '?'})"
            for run in runs
            if run.parameters.get("secret") == secret]
