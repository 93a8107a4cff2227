"""The rotate-api-key procedure for a batch of keys that share their consumers, as a fleet run
does it: the engine's driver (:func:`tasks.rotation.rotate_batch`) with the ``FLEET`` policy.
Every key is generated, checked, stored and verified on its own, but each consumer
Deployment is restarted (and its logs verified) once for the whole batch, not once per key;
a key that fails is rolled back while the others go on.

The steps run as plain calls inside the fleet's task: a fleet of 200 keys would otherwise
pay Prefect's per-task cost for nine task runs a key. Nothing here retries: each call a step
makes is retried by its client (``secretops.adapters.retry``), and a key whose step fails
anyway is rolled back and reported, for the next run to rotate.
"""

from __future__ import annotations

from secretops.models import RotationStatus
from secretops.report import RunReport
from secretops.staging import needs_person
from tasks.common import wiring_for
from tasks.rotation import KEYS, Policy, Rotation, Steps, rotate_batch


def rotate_batch_of_keys(secrets: list[str], environment: str,
                         inventory: str) -> dict[str, Rotation]:
    """Rotate the keys ``secrets`` (which share their consumers) in ``environment``; returns
    how each ended. A key a person creates is left for rotate-api-key, whose form asks for it;
    a rollback that fails leaves the keys it had not finished failed."""
    wiring = wiring_for(inventory)
    rotations: dict[str, Rotation] = {}
    automated = []
    for secret in secrets:
        if needs_person(wiring.provider(secret), wiring.stores(secret, environment)):
            rotations[secret] = Rotation(
                status=RotationStatus.needs_person,
                detail="needs a person: run rotate-api-key for it (the UI asks for the key)")
        else:
            automated.append(secret)
    steps = Steps(environment, inventory, RunReport(f"rotate keys in {environment}"),
                  plain=True)
    try:
        rotate_batch(KEYS, automated, steps, Policy.FLEET, rotations=rotations)
    except Exception as exc:
        for secret in automated:
            if rotations[secret].status is None:
                rotations[secret] = Rotation(
                    status=RotationStatus.failed,
                    detail=f"the rollback did not complete ({exc}); run rotate-api-key for it")
    return rotations
