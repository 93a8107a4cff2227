"""Runbook: Secret Rotation / Rotate API Keys.

    1. Generate new key at provider      generate_new_key (OpenAI: admin API; Anthropic: a person)
    2. Update secret                     update_secret (+ sync_external_secret in production)
    3. Restart pods                      restart_pods (rollout restart + rollout status)
    4. Verify                            verify_logs ("API initialized"), verify_new_key
    5. Revoke old key at provider        revoke_old_key

The old key is revoked only after the new one is verified in every consumer. A failure before
step 5 puts the previous key back everywhere, restarts, checks the application is healthy again,
revokes the new key and fails the run with what happened and what to do. The steps are those of
every provider's keys (``tasks.rotation.KEYS``), driven as every rotation is
(``tasks.rotation.rotate``).
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.input.actions import adelete_flow_run_input
from prefect.input.run_input import keyset_from_base_key
from prefect.runtime import flow_run
from prefect.states import Cancelled, Cancelling
from pydantic import Field, SecretStr

from flows.common import (
    SecretId,
    dry_run_plan,
    inventory_path,
    key_secret,
    rotation_checked,
)
from secretops.errors import NotRetryable, SecretopsError
from secretops.models import Environment, SecretValue
from secretops.ports import KeyProvider
from secretops.report import RunReport
from secretops.staging import check_shape, needs_person, person_instructions, stage_key
from tasks.common import inventory_at, one_prefect_client, wiring_for
from tasks.rotation import KEYS, rotate

PAUSE_KEY = "new-key"
PAUSE_POLL_SECONDS = 2  # how soon the run goes on after a person submits the form
PERSON_ATTEMPTS = 3  # a key refused in the form is asked for again, as a password prompt does

STEPS = [
    "1. Generate new key at provider", "2. Update secret", "3. Restart pods", "4. Verify",
    "5. Revoke old key at provider",
]


class KeyRefused(NotRetryable):
    """Every key a person gave in the form was refused; nothing was stored."""


class NewKey(RunInput):
    """The form shown in the Prefect UI when a person must create the key."""

    key: SecretStr = Field(description="The new key, exactly as the console showed it.")


@flow(name="rotate-api-key", flow_run_name="rotate-{secret}-{environment}", log_prints=False)
async def rotate_api_key(
    secret: SecretId,
    environment: Environment,
    reason: str = "scheduled rotation",
    dry_run: bool = False,
    inventory: str | None = None,
    person_timeout_seconds: Annotated[int, Field(ge=1)] = 3600,
) -> str | State[str]:
    """Rotate an API key in one environment, following the runbook; see the module doc."""
    with one_prefect_client():
        path = inventory_path(inventory)
        secret_id, env = key_secret(path, secret), Environment(environment).value
        report = RunReport(f"Rotate API key {secret_id} in {env}",
                           {"secret": secret_id, "environment": env, "reason": reason})
        key = f"rotate-{secret_id}-{env}"
        if dry_run:
            return await dry_run_plan(report, secret_id, env, path, STEPS, key)
        async with rotation_checked(report, secret_id, env, path, key, "rotated: the new key "
                                    "is current and verified, the old key is revoked"):
            if not await wait_for_person_if_needed(secret_id, env, path, person_timeout_seconds,
                                                   report):
                report.outcome = "cancelled: no key was provided in time; nothing changed"
                return Cancelled(message=report.outcome)
            rotate(KEYS, secret_id, env, path, report)
        return report.markdown()


async def wait_for_person_if_needed(
    secret: str, environment: str, inventory: str, timeout: int, report: RunReport,
    pause_key: str = PAUSE_KEY,
) -> bool:
    """For a provider without a key-creation API: pause with a form until a person pastes the
    new key, delete it from the run input at once, and stage it as pending. Returns False when
    nobody answered in time (nothing was changed). A run that pauses more than once (one
    form per environment) gives each pause its own ``pause_key``."""
    wiring, inv = wiring_for(inventory), inventory_at(inventory)
    provider = wiring.provider(secret)
    stores = wiring.stores(secret, environment)
    if not needs_person(provider, stores):
        return True
    person = person_instructions(inv, secret, environment)
    logger = get_run_logger()
    logger.info("waiting up to %s s for a person to provide the new %s key", timeout, secret)
    refusal = ""
    for attempt in range(1, PERSON_ATTEMPTS + 1):
        key = pause_key if attempt == 1 else f"{pause_key}-{attempt}"
        description = person.markdown(secret, environment)
        if refusal:
            description = (f"**The key given was refused: {refusal}.** Nothing was stored; "
                           f"paste the key again (attempt {attempt} of {PERSON_ATTEMPTS}).\n\n"
                           + description)
        try:
            answer = await apause_flow_run(
                wait_for_input=NewKey.with_initial_data(description=description),
                timeout=timeout, poll_interval=PAUSE_POLL_SECONDS, key=key,
            )
        except Exception as exc:  # FlowPauseTimeout, or a server that refused the pause
            report.failed("Generate new key at provider (waiting for a person)", exc)
            leave_pause("no key was provided in time")
            return False
        text = answer.key.get_secret_value()
        await adelete_flow_run_input(keyset_from_base_key(f"paused-{key}")["response"])
        if not text.strip():
            refusal = "no key was given (the field was empty or only white space)"
            logger.warning("the key given in the form was refused (%s); nothing was stored",
                           refusal)
            continue
        value = SecretValue(text)
        refusal = refusal_of(value, person.key_prefix, provider)
        if not refusal:
            for line in stage_key(stores, value, provider):
                logger.info("the key from the form is staged: %s", line)
            return True
        logger.warning("the key given in the form was refused (%s); nothing was stored",
                       refusal)
    raise KeyRefused(
        f"the {secret} key given in the form was refused {PERSON_ATTEMPTS} times (last: "
        f"{refusal}); nothing was changed. Create a key at {person.console_url} and rerun."
    )


def refusal_of(value: SecretValue, prefix: str | None, provider: KeyProvider) -> str:
    """Why a key given by a person cannot be the new key ("" when it can): its shape, then
    whether the provider accepts it (a key revoked already, or one of another account)."""
    try:
        check_shape(value, prefix)
    except SecretopsError as exc:
        return str(exc)
    if not provider.check_key(value):
        return "the provider refuses that key (revoked, expired or not of this organization)"
    return ""


def leave_pause(message: str) -> None:
    """Move the run out of its expired pause through Cancelling. Prefect's server answers any
    other state proposed after a pause's deadline with Failed ("never resumed"); Cancelling
    is let through, so the run can then end Cancelled, as Prefect's own cancellation does."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling(message=message))
