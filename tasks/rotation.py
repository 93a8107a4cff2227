"""The rotation engine: the protocol's steps for each kind of credential, and the one driver
that runs them for one secret or a batch of them in an environment.

A :class:`Rotator` names a kind's five steps, each a runbook task: **create** the new value
(staged as pending in every store), **set** it at its target (the provider checks the new
key; the database takes the new password), then, shared by every kind, **propagate** it
(pending made current in every store, External Secrets Operator synced, the consumers
restarted and their new pods' logs verified), **test** it (the target accepts the current
value), and **finish** (the old value revoked or invalidated, the pending marker cleared);
and the undo of the first two, **unset**.

:func:`rotate_batch` runs them with a :class:`Policy`:

- ``ROLL_BACK``, a rotation on schedule or on demand: any failure once something changed
  puts the previous value back everywhere (the consumers restarted on it, if they had been
  restarted) and undoes the new value, then fails saying what was left;
- ``FLEET``, one lane of rotate-all: the same, for each secret that fails, while the others
  go on; each consumer Deployment is restarted once for the batch, and every secret's ending
  is returned instead of raised;
- ``FORWARD_ONLY``, a leak: the old value is revoked already, so a failure never rolls back
  to it; the run fails and its rerun finishes the job.

A refusal at **set** changes nothing under any policy: the new value is undone and that
rotation fails. :func:`rotate` is the driver for one secret, which raises
:class:`RotationFailed`. How a step is run is the :class:`Steps`' business: as a Prefect task
run (a single rotation, a leak) or as a plain call inside the lane's task (a fleet, which
would otherwise pay Prefect's per-task cost for nine task runs a key).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import Task

from secretops.errors import SecretopsError
from secretops.models import RotationStatus
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
    FLEET = "roll back each secret that fails, the others go on"
    FORWARD_ONLY = "never back to the old value (it is revoked)"


def run_step(step: Step, *args: Any, **kwargs: Any) -> StepResult:
    """Run a runbook step's function in the calling task (a fleet lane's)."""
    fn: Callable[..., StepResult] = step.fn
    return fn(*args, **kwargs)


@dataclass
class Steps:
    """How the driver runs a step in ``environment``: as its Prefect task, or (``plain``) as a
    call in the calling task; every result goes to ``report``."""

    environment: str
    inventory: str
    report: RunReport
    plain: bool = False

    def __call__(self, step: Step, secret: str, **extra: Any) -> StepResult:
        if self.plain:
            result = run_step(step, secret, self.environment, self.inventory, **extra)
        else:
            result = step(secret, self.environment, self.inventory, **extra)
        return self.report.add(result)


@dataclass
class Rotation:
    """What the driver did to one secret: each step's result, by the protocol's step, and how
    it ended (``status`` None while it goes on) with the seconds from the batch's start."""

    results: dict[str, StepResult] = field(default_factory=dict)
    status: RotationStatus | None = None
    detail: str = ""
    seconds: float = 0.0


@dataclass
class _Batch:
    rotator: Rotator
    steps: Steps
    policy: Policy
    rotations: dict[str, Rotation]
    began: float = field(default_factory=time.monotonic)

    def end(self, secret: str, status: RotationStatus, detail: str) -> None:
        rotation = self.rotations[secret]
        if rotation.status is None:
            rotation.status, rotation.detail = status, detail
            rotation.seconds = time.monotonic() - self.began

    def going(self, secrets: list[str]) -> list[str]:
        return [secret for secret in secrets if self.rotations[secret].status is None]


def rotate(rotator: Rotator, secret: str, environment: str, inventory: str, report: RunReport,
           policy: Policy = Policy.ROLL_BACK, *, create: Mapping[str, Any] | None = None,
           after_create: Step | None = None,
           finish: Callable[[Rotation], Mapping[str, Any]] | None = None) -> Rotation:
    """Create, set, propagate, test and finish ``secret`` in ``environment`` as task runs,
    each step's result added to ``report`` (see :func:`rotate_batch` for the extras). Raises
    :class:`RotationFailed` (the report's outcome set) when it cannot finish."""
    steps = Steps(environment, inventory, report)
    return rotate_batch(rotator, [secret], steps, policy, create=create,
                        after_create=after_create, finish=finish)[secret]


def rotate_batch(rotator: Rotator, secrets: list[str], steps: Steps,
                 policy: Policy = Policy.ROLL_BACK, *,
                 create: Mapping[str, Any] | None = None, after_create: Step | None = None,
                 finish: Callable[[Rotation], Mapping[str, Any]] | None = None,
                 rotations: dict[str, Rotation] | None = None) -> dict[str, Rotation]:
    """Rotate ``secrets`` (which share their consumers, for a fleet) in ``steps``'
    environment with ``policy`` (see the module doc): every one created and set, made
    current in its stores, the consumers restarted once, every one tested, then finished.
    ``create`` holds the create step's extra arguments; ``after_create`` is a step run once
    the new value is staged (a leak records it); ``finish`` gives the finish step's extra
    arguments from what the rotation did so far. Returns each secret's :class:`Rotation`
    (kept in ``rotations`` as it goes, when given); under any policy but ``FLEET`` a failure
    raises :class:`RotationFailed` instead."""
    if rotations is None:
        rotations = {}
    rotations.update({secret: Rotation() for secret in secrets})
    batch = _Batch(rotator, steps, policy, rotations)
    staged = [secret for secret in secrets if _created_and_set(batch, secret, create,
                                                                 after_create)]
    stored = []
    for secret in staged:
        try:
            steps(update_secret, secret)
            steps(sync_external_secret, secret)
            stored.append(secret)
        except Exception as exc:
            _failed(batch, [secret], exc, restarted=False)
    try:
        restart = _restart_consumers(steps, stored)
        for secret in stored:
            batch.rotations[secret].results["propagate"] = restart[secret]
    except Exception as exc:
        _failed(batch, stored, exc, restarted=True)
    refused: list[tuple[str, Exception]] = []
    for secret in batch.going(stored):
        try:
            batch.rotations[secret].results["test"] = steps(rotator.test, secret)
        except Exception as exc:
            refused.append((secret, exc))
    if refused:
        _failed(batch, [secret for secret, _ in refused], refused[0][1], restarted=True,
                cause="; ".join(str(exc) for _, exc in refused))
    for secret in batch.going(stored):
        rotation = batch.rotations[secret]
        try:
            rotation.results["finish"] = steps(
                rotator.finish, secret, **(finish(rotation) if finish else {}))
        except Exception as exc:
            if policy is not Policy.FLEET:
                raise
            batch.end(secret, RotationStatus.failed,
                      f"the new {rotator.what} is current and verified but the old one is not "
                      f"revoked ({exc}); rerun to revoke it")
        else:
            batch.end(secret, RotationStatus.rotated,
                      f"rotated: new {rotator.what} current and verified, old {rotator.what} "
                      "revoked")
    return batch.rotations


def _created_and_set(batch: _Batch, secret: str, create: Mapping[str, Any] | None,
                     after_create: Step | None) -> bool:
    """Create the new value and set it at its target; False (its ending recorded) when that
    rotation cannot go on. Outside a fleet a failed creation raises as it is."""
    rotator, steps, rotation = batch.rotator, batch.steps, batch.rotations[secret]
    try:
        rotation.results["create"] = steps(rotator.create, secret, **(create or {}))
        if after_create is not None:
            steps(after_create, secret)
    except Exception as exc:
        if batch.policy is not Policy.FLEET:
            raise
        steps(rotator.unset, secret)
        batch.end(secret, RotationStatus.failed, f"no new {rotator.what} ({exc}); nothing changed")
        return False
    try:
        rotation.results["set"] = steps(rotator.set, secret)
    except SecretopsError as exc:
        steps.report.failed(rotator.set.name, exc)
        # a forward-only rotation never puts the old value back at the target (a leaked
        # password revived in the database); a new key is revoked either way
        if not (batch.policy is Policy.FORWARD_ONLY and rotator.undo_first):
            steps(rotator.unset, secret)
        if batch.policy is not Policy.FLEET:
            raise RotationFailed(f"{exc}; nothing was changed. Fix the cause (or create a new "
                                 f"{rotator.what}) and rerun.",
                                 f"failed: the new {rotator.what} was refused; nothing changed"
                                 ) from None
        batch.end(secret, RotationStatus.failed,
                  f"the new {rotator.what} was refused ({exc}); nothing changed")
        return False
    return True


def _restart_consumers(steps: Steps, secrets: list[str]) -> dict[str, StepResult]:
    """Runbook step "Restart pods" and its check for ``secrets``: each consumer Deployment
    restarted once (the secrets with the most consumers first, a secret whose consumers are
    all restarted already skipped) and its new pods' logs verified. Returns, for each secret,
    the restart that covered it."""
    inv = inventory_at(steps.inventory)
    done: dict[str, StepResult] = {}
    covered: dict[str, StepResult] = {}
    for secret in sorted(secrets, key=lambda s: -len(inv.consumers_of(s))):
        names = {consumer.deployment for consumer in inv.consumers_of(secret)}
        before = next((done[name] for name in names if name in done), None)
        if names and names <= done.keys() and before is not None:
            covered[secret] = before
            continue
        restart = steps(restart_pods, secret)
        steps(verify_logs, secret, since=restart.started_at)
        done.update(dict.fromkeys(names, restart))
        covered[secret] = restart
    return covered


def _failed(batch: _Batch, secrets: list[str], exc: Exception, *, restarted: bool,
            cause: str | None = None) -> None:
    """``secrets`` failed once their new value was set (``restarted``: after their consumers
    were restarted on it): roll them back, or not, as the policy says."""
    rotator, steps = batch.rotator, batch.steps
    cause = cause or str(exc)
    steps.report.failed("verification", exc)
    if batch.policy is Policy.FORWARD_ONLY:
        where = f"{secrets[0]} in {steps.environment}"
        raise RotationFailed(
            f"replacing {where} failed ({cause}); the old {rotator.what} stays revoked: fix "
            "the cause and rerun to finish", "failed: the old value stays revoked; rerun "
            "to finish") from None
    if batch.policy is Policy.FLEET:
        roll_back(rotator, secrets, steps, restarted)
        left = "the previous key is current" if restarted else "nothing restarted"
        for secret in secrets:
            batch.end(secret, RotationStatus.failed, f"failed and rolled back ({cause}); {left}")
        return
    where = f"rotating {secrets[0]} in {steps.environment}"
    try:
        roll_back(rotator, secrets, steps, restarted)
    except Exception as undo:
        steps.report.failed("roll back", undo)
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


def roll_back(rotator: Rotator, secrets: list[str], steps: Steps, restarted: bool) -> None:
    """The undo of the propagation and of the new value: the previous value current again in
    every store (and at the target first, for ``undo_first``), the consumers restarted on it
    and healthy if they had been restarted on the new one, the new value undone."""
    for secret in secrets:
        steps(restore_previous, secret)
        if rotator.undo_first:
            steps(rotator.unset, secret)
        steps(sync_external_secret, secret)
    if restarted:
        _restart_consumers(steps, secrets)
    if not rotator.undo_first:
        for secret in secrets:
            steps(rotator.unset, secret)
