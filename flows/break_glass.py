"""Runbook: Emergency Procedures / Lost Access (break-glass).

    record who and why                   the run's parameters and report
    kubectl config use-context emergency-admin
    kubectl get secrets -n intelliprompt check_emergency_access (Secret names, never data)
    wait until normal access is back     a pause form with a confirmation field
    rotate what it could read            every secret with a Kubernetes Secret in a namespace
                                         the emergency identity reached: the rotation flows,
                                         run as subflows
"""

from __future__ import annotations

from prefect import flow
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import Field

from flows.common import inventory_path, publish
from flows.rotate_api_key import rotate_api_key
from flows.rotate_db_password import rotate_db_password
from secretops.errors import SecretopsError
from secretops.models import Environment
from secretops.report import RunReport
from tasks.audit import check_emergency_access, secret_names
from tasks.common import inventory_at, one_prefect_client

PAUSE_KEY = "access-restored"


class BreakGlassAborted(SecretopsError):
    """Normal access was not confirmed; the emergency credentials stay in use."""


class AccessRestored(RunInput):
    """The form shown while the emergency credentials are in use."""

    restored: bool = Field(description="Normal access works again; the emergency credentials "
                           "are no longer needed.")
    note: str = Field(default="", description="How access was restored (for the record).")


def exposed_secrets(inventory: str) -> list[tuple[str, str]]:
    """(secret, environment) pairs held in a Kubernetes Secret the emergency identity could
    read: every namespace of the inventory (it is a cluster administrator)."""
    inv = inventory_at(inventory)
    return [(secret, env.value) for secret in inv.secret_ids()
            for env in inv.environments_of(secret)
            if inv.namespace(env) and secret_names(secret, env.value, inventory)]


@flow(name="break-glass", flow_run_name="break-glass-{who}", log_prints=False)
async def break_glass(who: str, why: str, inventory: str | None = None,
                wait_timeout_seconds: int = 24 * 3600) -> str:
    """Use the emergency credentials with a record, then rotate what they exposed."""
    with one_prefect_client():
        path = inventory_path(inventory)
        inv = inventory_at(path)
        report = RunReport("Break-glass: emergency access", {"who": who, "why": why})
        for env in inv.environment_names():
            report.add(check_emergency_access(env.value, path))
        answer = await apause_flow_run(
            wait_for_input=AccessRestored.with_initial_data(
                restored=False,
                description=(f"### Emergency access in use by **{who}**\n\nWhy: {why}\n\n"
                             "Tick *restored* once normal access works again: every secret the "
                             "emergency identity could read is then rotated.")),
            timeout=wait_timeout_seconds, key=PAUSE_KEY)
        report.notes.append(f"access restored: {answer.restored}; note: {answer.note or '-'}")
        if not answer.restored:
            report.outcome = "aborted: normal access not confirmed; nothing rotated"
            await publish(report, "break-glass")
            raise BreakGlassAborted("normal access was not confirmed; nothing was rotated")
        for secret, where in exposed_secrets(path):
            if inv.secret(secret).is_password:
                await rotate_db_password(environment=Environment(where), secret=secret,
                                         inventory=path, reason=f"break-glass by {who}")
            else:
                await rotate_api_key(secret=secret, environment=Environment(where), inventory=path,
                                     reason=f"break-glass by {who}")
            report.notes.append(f"rotated {secret} in {where}")
        report.outcome = "access restored; every secret the emergency identity could read rotated"
        await publish(report, "break-glass")
        return report.markdown()
