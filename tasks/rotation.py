"""The rotation engine: the protocol's steps for each kind of credential, and the one driver
that runs them in an environment.

A :class:`Rotator` names a kind's five steps, each a runbook task: **create** the new value
(staged as pending in every store), **set** it at its target (the provider checks the new
key; the database takes the new password), then, shared by every kind, **propagate** it
(pending made current in every store, External Secrets Operator synced, the consumers
restarted and their new pods' logs verified), **test** it (the target accepts the current
value), and **finish** (the old value revoked or invalidated, the pending marker cleared);
and the undo of the first two, **unset**.

:func:`rotate` runs them with a :class:`Policy`:

- ``ROLL_BACK``, a rotation on schedule or on demand: any failure once something changed
  puts the previous value back everywhere, restarts the consumers on it and undoes the new
  value, then fails saying what was left;
- ``FORWARD_ONLY``, a leak: the old value is revoked already, so a failure never rolls back
  to it; the run fails and its rerun finishes the job.

A refusal at **set** changes nothing in either case: the new value is undone and the run
fails. rotate-all's fleet lane runs the same steps for a batch of keys, restarting each
Deployment once for the batch (:mod:`tasks.fleet_keys`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import Task

from secretops.errors import SecretopsError
from secretops.report import RunReport, StepResult
from tasks.api_keys import (
    check_new_key,
    generate_new_key,
    revoke_new_key,
    revoke_old_key,
    verify_new_key,
)
from tasks.common import inventory_at
from tasks.consumers import restart_pods, sync_external_secret, verify_logs
from tasks.database import (
    create_new_password,
    invalidate_old_password,
    revert_in_database,
    update_in_database,
    verify_new_login,
)
from tasks.stores import restore_previous, update_secret

Step = Task[..., StepResult]


class RotationFailed(SecretopsError):
    """The rotation failed: nothing changed, or it was rolled back (or the rollback failed
    too), or, for a leak, it stopped where a rerun goes on. ``outcome`` is the report's."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Rotator:
    """The steps of one kind of credential (see the module doc). ``undo_first``: on a
    rollback the target takes the old value back before the consumers restart on it (a
    database password); otherwise the new value is undone once they run on the old one
    again (a key, which the provider keeps accepting until it is revoked)."""

    what: str
    create: Step
    set: Step
    test: Step
    finish: Step
    unset: Step
    undo_first: bool = False


KEYS = Rotator("key", generate_new_key, check_new_key, verify_new_key, revoke_old_key,
               revoke_new_key)
PASSWORDS = Rotator("password", create_new_password, update_in_database, verify_new_login,
                    invalidate_old_password, revert_in_database, undo_first=True)


def rotator_for(inventory: str, secret: str) -> Rotator:
    """The rotator of ``secret``: a database login's, or a provider's key's."""
    return PASSWORDS if inventory_at(inventory).secret(secret).is_password else KEYS


class Policy(enum.Enum):
    ROLL_BACK = "roll back on failure"
    FORWARD_ONLY = "never back to the old value (it is revoked)"


@dataclass
class Rotation:
    """What a driven rotation did: each step's result, by the protocol's step."""

    results: dict[str, StepResult] = field(default_factory=dict)


def propagate(secret: str, environment: str, inventory: str, report: RunReport) -> StepResult:
    """Runbook steps "Update secret" and "Restart pods" with their checks: the pending value
    becomes current in every store (and ESO syncs it in production), the consumers restart,
    and their new pods log that they started with it. Returns the restart's result."""
    report.add(update_secret(secret, environment, inventory))
    report.add(sync_external_secret(secret, environment, inventory))
    restart = report.add(restart_pods(secret, environment, inventory))
    report.add(verify_logs(secret, environment, inventory, since=restart.started_at))
    return restart


def roll_back(rotator: Rotator, secret: str, environment: str, inventory: str,
              report: RunReport) -> None:
    """The undo of :func:`propagate` and of the new value: the previous value current again in
    every store (and at the target, for ``undo_first``), the consumers restarted on it and
    healthy, the new value undone."""
    report.add(restore_previous(secret, environment, inventory))
    if rotator.undo_first:
        report.add(rotator.unset(secret, environment, inventory))
    report.add(sync_external_secret(secret, environment, inventory))
    restart = report.add(restart_pods(secret, environment, inventory))
    report.add(verify_logs(secret, environment, inventory, since=restart.started_at))
    if not rotator.undo_first:
        report.add(rotator.unset(secret, environment, inventory))


def rotate(rotator: Rotator, secret: str, environment: str, inventory: str, report: RunReport,
           policy: Policy = Policy.ROLL_BACK, *, create: Mapping[str, Any] | None = None,
           after_create: Step | None = None,
           finish: Callable[[Rotation], Mapping[str, Any]] | None = None) -> Rotation:
    """Create, set, propagate, test and finish ``secret`` in ``environment`` (see the module
    doc), each step's result added to ``report``. ``create`` holds the create step's extra
    arguments; ``after_create`` is a step run once the new value is staged (a leak records
    it); ``finish`` gives the finish step's extra arguments from what the rotation did so
    far. Raises :class:`RotationFailed` (the report's outcome set) when it cannot finish."""
    done = Rotation()
    where = f"{secret} in {environment}"
    done.results["create"] = report.add(
        rotator.create(secret, environment, inventory, **(create or {})))
    if after_create is not None:
        report.add(after_create(secret, environment, inventory))
    try:
        done.results["set"] = report.add(rotator.set(secret, environment, inventory))
    except SecretopsError as exc:
        report.failed(rotator.set.name, exc)
        # a forward-only rotation never puts the old value back at the target (a leaked
        # password revived in the database); a new key is revoked either way
        if not (policy is Policy.FORWARD_ONLY and rotator.undo_first):
            report.add(rotator.unset(secret, environment, inventory))
        raise RotationFailed(f"{exc}; nothing was changed. Fix the cause (or create a new "
                             f"{rotator.what}) and rerun.",
                             f"failed: the new {rotator.what} was refused; nothing changed"
                             ) from None
    try:
        done.results["propagate"] = propagate(secret, environment, inventory, report)
        done.results["test"] = report.add(rotator.test(secret, environment, inventory))
    except Exception as exc:
        report.failed("verification", exc)
        if policy is Policy.FORWARD_ONLY:
            raise RotationFailed(
                f"replacing {where} failed ({exc}); the old {rotator.what} stays revoked: fix "
                "the cause and rerun to finish", "failed: the old value stays revoked; rerun "
                "to finish") from None
        _undo(rotator, secret, environment, inventory, report, exc)
    done.results["finish"] = report.add(rotator.finish(
        secret, environment, inventory, **(finish(done) if finish else {})))
    return done


def _undo(rotator: Rotator, secret: str, environment: str, inventory: str, report: RunReport,
          cause: Exception) -> None:
    """Roll back after ``cause`` and fail, saying what state it left."""
    where = f"rotating {secret} in {environment}"
    try:
        roll_back(rotator, secret, environment, inventory, report)
    except Exception as undo:
        report.failed("roll back", undo)
        raise RotationFailed(
            f"{where} failed ({cause}), and so did the rollback ({undo}); the stores and the "
            f"{'database' if rotator.undo_first else 'provider'} may disagree: see the run's "
            "report, fix the cause and rerun (a rerun finishes or undoes it)",
            "failed, and so did the rollback: see the steps above") from None
    raise RotationFailed(
        f"{where} failed ({cause}); the previous {rotator.what} was restored, the application "
        f"is healthy and the new {rotator.what} undone. See the run's report, fix the cause "
        "and rerun.", f"failed and rolled back: the previous {rotator.what} is current again"
    ) from None
