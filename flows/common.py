"""What every flow shares: where the inventory is, the per-secret lock, the report artifact
and its publishing, the dry run."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Annotated, TypeVar

from prefect.artifacts import acreate_markdown_artifact
from pydantic import Field

from secretops import locks
from secretops.errors import InventoryError
from secretops.prefect_setup import lock_name
from secretops.report import RunReport
from tasks.common import inventory_at, one_prefect_client
from tasks.consumers import check_external_secrets
from tasks.plan import plan_rotation
from tasks.rotation import RotationFailed
from tasks.stores import check_current_values

R = TypeVar("R")


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


async def publish(report: RunReport, key: str) -> str:
    """The run's markdown artifact: steps, durations, ids and evidence; never a value.
    Returns the markdown published."""
    slug = "".join(c if c.isalnum() else "-" for c in key.lower()).strip("-")
    markdown = report.markdown()
    await acreate_markdown_artifact(markdown=markdown, key=slug, description=report.title)
    return markdown


@contextlib.asynccontextmanager
async def reported(report: RunReport, key: str, done: str) -> AsyncIterator[RunReport]:
    """The run's report, published as its artifact ``key`` when the block ends: with the
    outcome the block set, else ``done``; when the rotation failed, with the failure's
    outcome, the failure raised on."""
    try:
        yield report
    except RotationFailed as failed:
        report.outcome = failed.outcome
        await publish(report, key)
        raise
    if report.outcome == RunReport.outcome:
        report.outcome = done
    await publish(report, key)


@contextlib.asynccontextmanager
async def rotation_checked(report: RunReport, secret: str, environment: str, inventory: str,
                           key: str, done: str) -> AsyncIterator[RunReport]:
    """The block of a rotation: under the secret's lock, once the ExternalSecrets and every
    store's current value are checked; the report published when it ends (:func:`reported`)."""
    async with reported(report, key, done):
        with locks.hold([secret_lock(secret)]):
            report.add(check_external_secrets(secret, environment, inventory))
            report.add(check_current_values(secret, environment, inventory))
            yield report


async def dry_run_plan(report: RunReport, secret: str, environment: str, inventory: str,
                  steps: list[str], key: str) -> str:
    """A dry run: what each step would do, as the report and its artifact ``key-plan``."""
    report.add(plan_rotation(secret, environment, inventory, steps))
    report.outcome = "dry run: nothing changed"
    return await publish(report, f"{key}-plan")
