"""The rotate-api-key procedure for a batch of keys that share their consumers, as a fleet run
does it, with the steps of every key (``tasks.rotation.KEYS``): every key is generated,
checked, stored and verified on its own, but each consumer Deployment is restarted (and its
logs verified) once for the whole batch, not once per key.

The steps are the rotation's runbook steps, run here as plain calls inside the fleet's task
(:func:`run_step`): a fleet of 200 keys would otherwise pay Prefect's per-task cost for nine
task runs a key. Nothing here retries: each call a step makes is retried by its client
(``secretops.adapters.retry``), and a key whose step fails anyway is rolled back and
reported, for the next run to rotate. Every step's evidence is kept for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import Task

from secretops.errors import SecretopsError
from secretops.models import RotationStatus
from secretops.report import StepResult
from secretops.staging import needs_person
from tasks.common import inventory_at, wiring_for
from tasks.consumers import restart_pods, sync_external_secret, verify_logs
from tasks.rotation import KEYS
from tasks.stores import restore_previous, update_secret


class Batch:
    """One batch: its keys (secret ids), one environment, and how each key's rotation went."""

    def __init__(self, secrets: list[str], environment: str, inventory: str) -> None:
        self.secrets, self.environment, self.inventory = secrets, environment, inventory
        self.began = time.monotonic()
        self.results: dict[str, tuple[RotationStatus, str, float]] = {}
        self.restarts = 0

    def step(self, step: Task[..., StepResult], secret: str, **extra: Any) -> StepResult:
        return run_step(step, secret, self.environment, self.inventory, **extra)

    def end(self, secret: str, status: RotationStatus, detail: str) -> None:
        """Record how ``secret``'s rotation ended (the first ending counts)."""
        self.results.setdefault(secret, (status, detail, time.monotonic() - self.began))

    def open(self, secrets: list[str]) -> list[str]:
        """Those of ``secrets`` that have not ended yet."""
        return [secret for secret in secrets if secret not in self.results]


def run_step(step: Task[..., StepResult], *args: Any, **kwargs: Any) -> StepResult:
    """Run a runbook step's function in the calling task."""
    fn: Callable[..., StepResult] = step.fn
    return fn(*args, **kwargs)


def restart_consumers(batch: Batch, secrets: list[str]) -> None:
    """Restart the Deployments that consume ``secrets`` and verify their new pods' logs, each
    Deployment once: secrets with the most consumers first, skipping a secret whose consumers
    are all restarted already."""
    inv = inventory_at(batch.inventory)
    done: set[str] = set()
    for secret in sorted(secrets, key=lambda s: -len(inv.consumers_of(s))):
        names = {consumer.deployment for consumer in inv.consumers_of(secret)}
        if not names - done:
            continue
        restarted = batch.step(restart_pods, secret)
        batch.step(verify_logs, secret, since=restarted.started_at)
        batch.restarts += 1
        done |= names


def roll_back(batch: Batch, secrets: list[str], cause: str) -> None:
    """Put each key's previous version back, restart the consumers once, revoke the new keys."""
    if not secrets:
        return
    for secret in secrets:
        batch.step(restore_previous, secret)
        batch.step(sync_external_secret, secret)
    restart_consumers(batch, secrets)
    for secret in secrets:
        batch.step(KEYS.unset, secret)
        batch.end(secret, RotationStatus.failed,
                  f"failed and rolled back ({cause}); the previous key is current")


def _stage(batch: Batch, secret: str) -> bool:
    """Generate and check the new key; False (with the outcome recorded) when it cannot go on."""
    wiring = wiring_for(batch.inventory)
    stores = wiring.stores(secret, batch.environment)
    if needs_person(wiring.provider(secret), stores):
        batch.end(secret, RotationStatus.needs_person,
                  "needs a person: run rotate-api-key for it (the UI asks for the key)")
        return False
    try:
        batch.step(KEYS.create, secret)
    except Exception as exc:
        batch.step(KEYS.unset, secret)
        batch.end(secret, RotationStatus.failed, f"no new key ({exc}); nothing changed")
        return False
    try:
        batch.step(KEYS.set, secret)
    except SecretopsError as exc:
        batch.step(KEYS.unset, secret)
        batch.end(secret, RotationStatus.failed,
                  f"the new key was refused ({exc}); nothing changed")
        return False
    return True


def rotate_batch(batch: Batch) -> None:
    """Rotate every key of ``batch``; see the module doc. A key that fails before the restart
    is rolled back alone; a failed restart rolls back the whole batch; a key the provider
    refuses after the restart is rolled back with one more restart of its consumers."""
    staged = [secret for secret in batch.secrets if _stage(batch, secret)]
    stored = []
    for secret in staged:
        try:
            batch.step(update_secret, secret)
            batch.step(sync_external_secret, secret)
            stored.append(secret)
        except Exception as exc:
            batch.step(restore_previous, secret)
            batch.step(sync_external_secret, secret)
            batch.step(KEYS.unset, secret)
            batch.end(secret, RotationStatus.failed,
                      f"failed and rolled back ({exc}); nothing restarted")
    try:
        restart_consumers(batch, stored)
    except Exception as exc:
        roll_back(batch, stored, f"restart: {exc}")
    refused = []
    for secret in batch.open(stored):
        try:
            batch.step(KEYS.test, secret)
        except Exception as exc:
            refused.append((secret, str(exc)))
    if refused:
        roll_back(batch, [secret for secret, _ in refused], "; ".join(e for _, e in refused))
    for secret in batch.open(stored):
        try:
            batch.step(KEYS.finish, secret)
        except Exception as exc:
            batch.end(secret, RotationStatus.failed,
                      f"the new key is current and verified but the old one is not revoked "
                      f"({exc}); rerun to revoke it")
        else:
            batch.end(secret, RotationStatus.rotated,
                      "rotated: new key current and verified, old key revoked")

