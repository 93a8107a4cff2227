"""External Secrets Operator: ask for a sync now and wait until it has happened.

ESO syncs an ExternalSecret again when its metadata changes, so a sync is requested by
setting the ``force-sync`` annotation to the current unix time (as ESO's documentation
does with ``kubectl annotate``). It is done when the Ready condition says ``SecretSynced``
with a ``refreshTime`` newer than the one seen before the request. The resource is looked
up as ``external-secrets.io/v1`` first, then ``v1beta1`` (older installations).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secretops.adapters.kube import KubeCluster

GROUP = "external-secrets.io"
PLURAL = "externalsecrets"
VERSIONS = ("v1", "v1beta1")
POLL_SECONDS = 0.25


def _read(cluster: KubeCluster, namespace: str, name: str) -> tuple[str, dict[str, Any]]:
    from secretops.adapters.kube import KubeRefused

    target = f"{namespace}/{name}"
    versions = [cluster.eso_version] if cluster.eso_version else list(VERSIONS)
    for version in versions:
        found = cluster.get(
            "get externalsecret",
            target,
            cluster.custom.get_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            PLURAL,
            name,
        )
        if found is not None:
            cluster.eso_version = version
            return version, found
    raise KubeRefused(f"Kubernetes externalsecret {target} not found", 404)


def force_sync(cluster: KubeCluster, namespace: str, name: str) -> str:
    """Set ``force-sync`` to the unix time (one more if it already holds that second);
    returns the ``refreshTime`` before. Waits into the next second first when the last
    refresh happened this second, since ``refreshTime`` has one-second steps."""
    from secretops.adapters.kube import MERGE_PATCH, parse_time

    version, found = _read(cluster, namespace, name)
    before = str((found.get("status") or {}).get("refreshTime") or "")
    last = parse_time(before)
    if last is not None and last >= datetime.now(UTC).replace(microsecond=0):
        time.sleep(1.05 - datetime.now(UTC).microsecond / 1e6)
    annotations = (found.get("metadata") or {}).get("annotations") or {}
    stamp = int(time.time())
    if str(stamp) == annotations.get("force-sync"):
        stamp += 1
    patch = {"metadata": {"annotations": {"force-sync": str(stamp)}}}
    cluster.call(
        "annotate externalsecret",
        f"{namespace}/{name}",
        cluster.custom.patch_namespaced_custom_object,
        GROUP,
        version,
        namespace,
        PLURAL,
        name,
        patch,
        _content_type=MERGE_PATCH,
    )
    return before


def wait_synced(cluster: KubeCluster, namespace: str, name: str, after: str, timeout: float) -> str:
    """Poll until Ready is ``SecretSynced`` with a ``refreshTime`` newer than ``after``;
    returns that refreshTime. Raises ``KubeUnavailable`` (retryable) on timeout."""
    from secretops.adapters.kube import KubeUnavailable, parse_time

    deadline = time.monotonic() + timeout
    threshold = parse_time(after)
    reason = "no status yet"
    while True:
        _, found = _read(cluster, namespace, name)
        status = found.get("status") or {}
        refreshed = parse_time(status.get("refreshTime"))
        conditions = status.get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is not None:
            reason = f"Ready={ready.get('status')} reason {ready.get('reason')}"
            newer = refreshed is not None and (threshold is None or refreshed > threshold)
            synced = ready.get("status") == "True" and ready.get("reason") == "SecretSynced"
            if synced and newer:
                return str(status.get("refreshTime"))
        if time.monotonic() >= deadline:
            raise KubeUnavailable(
                f"ExternalSecret {namespace}/{name} did not sync within {timeout:g}s ({reason})"
            )
        time.sleep(POLL_SECONDS)
