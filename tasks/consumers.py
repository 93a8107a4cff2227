"""Runbook steps on the consumers of a secret: sync the ExternalSecret, restart the pods,
verify the logs. Shared by every rotation and by the leak response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from secretops.errors import VerificationFailed
from secretops.models import Stage
from tasks.common import inventory_at, runbook_step, wiring_for

CLOCK_SKEW = timedelta(seconds=1)


@runbook_step("Check the ExternalSecrets can be synced", retries=1)
def check_external_secrets(secret: str, environment: str, inventory: str) -> list[str]:
    """Before anything changes: External Secrets Operator ignores a force-sync of an
    ExternalSecret with ``refreshInterval: 0`` or ``refreshPolicy: CreatedOnce``, so a
    rotation through one would wait out its timeout; refuse at once, saying why."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    evidence = []
    for spec in inv.stores(secret, environment):
        external = getattr(spec, "external_secret", None)
        if not external or namespace is None:
            continue
        wiring.cluster().check_external_secret_syncable(namespace, external)
        evidence.append(f"ExternalSecret {namespace}/{external} can be force-synced")
    return evidence or ["no ExternalSecret in this environment"]


@runbook_step("Sync the ExternalSecret from AWS Secrets Manager")
def sync_external_secret(secret: str, environment: str, inventory: str) -> list[str]:
    """Force External Secrets Operator to copy the new AWSCURRENT into the Kubernetes Secret
    and wait for ``SecretSynced``; then check the Secret holds the current value."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    evidence = []
    for spec, store in zip(inv.stores(secret, environment), wiring.stores(secret, environment),
                           strict=True):
        external = getattr(spec, "external_secret", None)
        if not external or namespace is None:
            continue
        cluster = wiring.cluster()
        before = cluster.force_sync_external_secret(namespace, external)
        after = cluster.wait_external_secret_synced(namespace, external, before, timeout=60)
        current = store.read(Stage.current)
        target = inv.external_secret_target(environment, external)
        held = cluster.secret_fingerprints(namespace, target) or {}
        if current is None or current.secret.fingerprint() not in held.values():
            raise VerificationFailed(
                f"ExternalSecret {namespace}/{external} synced at {after} but Secret {target} "
                f"does not hold the current version of {store.name}"
            )
        evidence.append(f"ExternalSecret {namespace}/{external} synced (refreshTime {after}); "
                        f"Secret {target} holds version {current.secret.fingerprint()}")
    return evidence or ["no ExternalSecret in this environment"]


@runbook_step("Restart pods")
def restart_pods(secret: str, environment: str, inventory: str) -> list[str]:
    """``kubectl rollout restart`` of every consumer, then ``kubectl rollout status``."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    if namespace is None:
        return [f"{environment} has no cluster consumers: applications read the files at start"]
    cluster = wiring.cluster()
    evidence = []
    for consumer in inv.consumers_of(secret):
        stamp = cluster.restart_deployment(namespace, consumer.deployment)
        status = cluster.wait_for_rollout(namespace, consumer.deployment,
                                          timeout=consumer.rollout_timeout_seconds)
        if not status.done:
            raise VerificationFailed(
                f"rollout of deployment/{consumer.deployment} in {namespace} did not complete: "
                f"{status.message}"
            )
        evidence.append(f"deployment/{consumer.deployment} restarted at {stamp}; {status.message}")
    return evidence


@runbook_step("Verify")
def verify_logs(secret: str, environment: str, inventory: str, since: datetime) -> list[str]:
    """Every pod started after the restart logged the consumer's ready line (``API
    initialized``), and as many pods as the Deployment wants are ready."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    if namespace is None:
        return [f"{environment} has no cluster consumers"]
    cluster = wiring.cluster()
    evidence = []
    for consumer in inv.consumers_of(secret):
        pods = cluster.pods_started_since(namespace, consumer.deployment, since - CLOCK_SKEW)
        good = [p for p in pods if consumer.verify_log in p.log]
        bad = [p.pod for p in pods if consumer.verify_log not in p.log]
        if not good or bad:
            raise VerificationFailed(
                f"deployment/{consumer.deployment} in {namespace}: {len(good)} new pod(s) logged "
                f"'{consumer.verify_log}', {len(bad)} did not ({', '.join(bad) or 'none started'})"
            )
        evidence.append(
            f"{len(good)} pod(s) of deployment/{consumer.deployment} started after "
            f"{since:%H:%M:%S} logged '{consumer.verify_log}': {', '.join(p.pod for p in good)}"
        )
    return evidence


def now() -> datetime:
    return datetime.now(UTC)
