"""Runbook: Emergency Procedures / Secret Leaked, the steps that are not rotation steps.

Which credential is leaked, and why a rerun or a second report never revokes a replacement,
is explained in ``secretops/revocation.py``; the record of each response's replacement (a
fingerprint and a time, never a value) is the Prefect variable
``secretops-leak-<secret>-<environment>``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from secretops.errors import NotRetryable
from secretops.models import Stage
from secretops.report import RunReport, StepResult
from secretops.revocation import Record, leaked_credential, read_stage, record_name, revoke
from tasks.common import inventory_at, one_prefect_client, runbook_step, wiring_for
from tasks.rotation import PASSWORDS, Policy, rotate, rotator_for


def read_record(secret: str, environment: str) -> Record | None:
    """An environment's record. Read through the run's sync client, not ``Variable.get``:
    this runs in the async flow's body too, where ``Variable.get`` would return a coroutine."""
    with one_prefect_client() as context:
        variable = context.client.read_variable_by_name(record_name(secret, environment))
    record = variable.value if variable is not None else None
    return record if isinstance(record, dict) else None


@runbook_step("1. Revoke compromised secret")
def revoke_leaked(secret: str, environment: str, inventory: str, since: datetime,
                  fingerprint: str | None = None) -> list[str]:
    """Make the target refuse the leaked credential at once (``secretops.revocation``): the
    one with ``fingerprint`` when a detector named the value. The consumers fail until the
    replacement is in place: the runbook accepts that downtime. Idempotent: an already revoked
    credential is only checked."""
    return revoke(wiring_for(inventory), secret, environment, read_record(secret, environment),
                  since, fingerprint)


@runbook_step("Record the replacement", retries=2)
def record_replacement(secret: str, environment: str, inventory: str) -> list[str]:
    """Remember the staged replacement's fingerprint, so a rerun or a second report of the
    same leak never takes the replacement for the leaked credential."""
    pending = read_stage(wiring_for(inventory).stores(secret, environment), Stage.pending)
    if pending is None:
        raise NotRetryable(f"no pending {secret} credential staged in {environment}")
    fingerprint = pending.secret.fingerprint()
    Variable.set(record_name(secret, environment),
                 {"replacement": fingerprint, "staged_at": datetime.now(UTC).isoformat()},
                 overwrite=True)
    return [f"replacement {fingerprint} recorded in {record_name(secret, environment)}"]


def needs_rotation(secret: str, environment: str, inventory: str, since: datetime,
                   fingerprint: str | None = None) -> bool:
    """Whether the environment still needs its replacement (after revocation)."""
    stores = wiring_for(inventory).stores(secret, environment)
    return leaked_credential(stores, read_record(secret, environment), since,
                             fingerprint) is not None


def postmortem_of(secret: str, environment: str) -> str | None:
    """The post-mortem file of the response that replaced the credential, once written."""
    found = (read_record(secret, environment) or {}).get("postmortem")
    return str(found) if found else None


@runbook_step("5. Post-mortem recorded", retries=2)
def record_postmortem(secret: str, environments: list[str], postmortem: str) -> list[str]:
    """Note the post-mortem in each environment's record: a later report of the same leak
    finds the job done."""
    for environment in environments:
        record = read_record(secret, environment)
        if record is not None:
            Variable.set(record_name(secret, environment), {**record, "postmortem": postmortem},
                         overwrite=True)
    return [f"post-mortem {postmortem}"]


@task(name="rotate_in_environment", task_run_name="2-3. New credential for {environment}",
      persist_result=False, cache_policy=NO_CACHE, log_prints=False)
def rotate_in_environment(secret: str, environment: str, inventory: str) -> list[StepResult]:
    """Steps 2 and 3 in one environment, with the rotation flows' own steps and driver
    (:mod:`tasks.rotation`): a new credential staged as pending and recorded, set at its target,
    made current in every store, the consumers restarted and verified, the old credential's
    revocation checked. Never rolls back: the leaked credential is revoked and must stay so."""
    rotator = rotator_for(inventory, secret)
    create: dict[str, object] = {}
    finish: dict[str, object] = {}
    if rotator is PASSWORDS:
        create = {"strategy": inventory_at(inventory).strategy_for(secret, environment).value}
        finish = {"terminate_old_sessions": True}
    report = RunReport(f"replace {secret} in {environment}")
    rotate(rotator, secret, environment, inventory, report, Policy.FORWARD_ONLY,
           create=create, after_create=record_replacement, finish=lambda _: finish)
    return list(report.steps)
