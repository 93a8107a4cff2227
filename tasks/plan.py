"""A read-only look at what a rotation would do: the plan of a dry run."""

from __future__ import annotations

from secretops.models import Stage
from tasks.common import inventory_at, runbook_step, wiring_for


@runbook_step("Plan (dry run: nothing is changed)", retries=2)
def plan_rotation(secret: str, environment: str, inventory: str, steps: list[str]) -> list[str]:
    """Read every store and the consumers; say what each step would do."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    lines = []
    for store in wiring.stores(secret, environment):
        stages = []
        for stage in (Stage.current, Stage.pending, Stage.previous):
            version = store.version(stage)
            if version is not None:
                stages.append(f"{stage.name} {version.version_id} ({version.fingerprint})")
        lines.append(f"store {store.name}: {', '.join(stages) or 'empty'}")
    namespace = inv.namespace(environment)
    for consumer in inv.consumers_of(secret):
        where = f"deployment/{consumer.deployment} in {namespace}" if namespace else "none"
        lines.append(f"consumer {consumer.deployment}: {where}, verified by "
                     f"'{consumer.verify_log}'")
    lines += [f"would run: {step}" for step in steps]
    return lines
