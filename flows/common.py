"""What every flow shares: where the inventory is, the per-secret lock, the report artifact."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

from prefect.artifacts import acreate_markdown_artifact
from pydantic import Field

from secretops.errors import InventoryError, SecretopsError
from secretops.prefect_setup import lock_name
from secretops.report import RunReport, StepResult
from tasks.common import inventory_at, one_prefect_client
from tasks.consumers import restart_pods, sync_external_secret, verify_logs
from tasks.stores import restore_previous, update_secret

R = TypeVar("R")


class RotationFailed(SecretopsError):
    """The rotation failed and was rolled back (or the rollback failed too, and says so)."""


SecretId = Annotated[str, Field(
    pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
    description="A secret of the inventory, by its id (secretops inventory check lists them)")]


def key_secret(inventory: str, secret: str) -> str:
    """``secret``, once the inventory knows it as a provider's key (else InventoryError,
    naming the inventory's keys): a flow's first check of a parameter set by hand."""
    inv = inventory_at(inventory)
    keys = [s for s in inv.secret_ids() if not inv.secret(s).is_password]
    if secret not in keys:
        raise InventoryError(f"parameter secret: {secret!r} is not a key of the inventory "
                             f"(its keys: {', '.join(keys) or 'none'})")
    return secret


def run_in_process(call: Awaitable[R]) -> R:
    """Run a flow call (``rotate_api_key(...)``, with or without ``return_state=True``) to
    its end from sync code: the CLI, the benchmarks. The Prefect client opened here serves
    the engine and the run's steps, where a run started without one opens two more (about
    25 ms each, a TLS context apiece)."""

    async def until_done() -> R:
        return await call

    with one_prefect_client():
        return asyncio.run(until_done())


def inventory_path(explicit: str | None) -> str:
    """The inventory file: the parameter, else ``$SECRETOPS_INVENTORY``, else ./inventory.yaml."""
    path = explicit or os.environ.get("SECRETOPS_INVENTORY") or "inventory.yaml"
    return str(Path(path).resolve())


def secret_lock(secret: str) -> str:
    """The global concurrency limit (one slot, created by ``secretops setup``) that keeps two
    runs touching the same secret from interleaving."""
    return lock_name(secret)


async def publish(report: RunReport, key: str) -> None:
    """The run's markdown artifact: steps, durations, ids and evidence; never a value."""
    slug = "".join(c if c.isalnum() else "-" for c in key.lower()).strip("-")
    await acreate_markdown_artifact(markdown=report.markdown(), key=slug,
                                    description=report.title)


async def roll_back_and_fail(
    report: RunReport, key: str, what: str, cause: Exception, roll_back: Callable[[], None], *,
    undone: str, restored: str, may_disagree: str,
) -> NoReturn:
    """After a failed step once something has changed: undo it (``roll_back``), publish the
    report and fail the run with what happened and what state it left. ``undone`` is the
    report's outcome, ``restored`` what the error says was put back, ``may_disagree`` what
    may be left inconsistent when the rollback fails too."""
    report.failed("verification", cause)
    try:
        roll_back()
    except Exception as undo:
        report.failed("roll back", undo)
        report.outcome = "failed, and so did the rollback: see the steps above"
        await publish(report, key)
        raise RotationFailed(
            f"{what} failed ({cause}), and so did the rollback ({undo}); {may_disagree} may "
            "disagree: see the run's report, fix the cause and rerun (a rerun finishes or "
            "undoes it)"
        ) from None
    report.outcome = f"failed and rolled back: {undone}"
    await publish(report, key)
    raise RotationFailed(
        f"{what} failed ({cause}); {restored}. See the run's report, fix the cause and rerun."
    ) from None


def propagate(secret: str, environment: str, inventory: str, report: RunReport) -> StepResult:
    """Runbook steps "Update secret" and "Restart pods" with their checks: the pending value
    becomes current in every store (and ESO syncs it in production), the consumers restart,
    and their new pods log that they started with it. Returns the restart's result."""
    report.add(update_secret(secret, environment, inventory))
    report.add(sync_external_secret(secret, environment, inventory))
    restart = report.add(restart_pods(secret, environment, inventory))
    report.add(verify_logs(secret, environment, inventory, since=restart.started_at))
    return restart


def restore(secret: str, environment: str, inventory: str, report: RunReport,
            revert: Callable[[], object] = lambda: None) -> None:
    """The rollback of :func:`propagate`: the previous value current again in every store
    (and, with ``revert``, wherever else it was changed), the consumers restarted on it and
    healthy."""
    report.add(restore_previous(secret, environment, inventory))
    revert()
    report.add(sync_external_secret(secret, environment, inventory))
    restart = report.add(restart_pods(secret, environment, inventory))
    report.add(verify_logs(secret, environment, inventory, since=restart.started_at))
