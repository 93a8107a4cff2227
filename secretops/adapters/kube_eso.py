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
from typing import Any

from secretops.adapters.kube_api import MERGE_PATCH, Api, KubeRefused, parse_time
from secretops.errors import Retryable

GROUP = "external-secrets.io"
PLURAL = "externalsecrets"
VERSIONS = ("v1", "v1beta1")
POLL_SECONDS = 0.25


def _read(cluster: Api, namespace: str, name: str) -> tuple[str, dict[str, Any]]:
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


def _duration_seconds(value: Any) -> float | None:
    """A Go duration as ESO takes it (``1h``, ``5m``, ``30s``, ``1m30s``, ``0``)."""
    text = str(value).strip()
    if not text:
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number = 0.0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index:index + 2] == "ms" else char
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number, index = "", index + len(unit)
    if number:
        return float(number) if float(number) == 0 else None
    return total


def blocker(found: dict[str, Any]) -> str | None:
    """Why ESO will not sync this ExternalSecret again on request, or None. ESO ignores a
    changed ``force-sync`` annotation when ``refreshPolicy`` is ``CreatedOnce``, or when it
    is ``Periodic`` (the default) with a ``refreshInterval`` of 0, once it has synced."""
    spec = found.get("spec") or {}
    policy = spec.get("refreshPolicy") or "Periodic"
    if policy == "CreatedOnce":
        return "its refreshPolicy is CreatedOnce (ESO syncs it once, at creation)"
    if policy == "Periodic" and _duration_seconds(spec.get("refreshInterval", "1h")) == 0:
        return "its refreshInterval is 0 (ESO syncs it once and never again)"
    return None


def check_syncable(cluster: Api, namespace: str, name: str) -> None:
    """Raise ``KubeRefused`` when ESO would ignore a force-sync of this ExternalSecret."""
    _, found = _read(cluster, namespace, name)
    reason = blocker(found)
    if reason is not None:
        raise KubeRefused(
            f"ExternalSecret {namespace}/{name} cannot be force-synced: {reason}; set a "
            "refreshInterval above 0 with refreshPolicy Periodic (or refreshPolicy OnChange) "
            "before rotating", 409)


def force_sync(cluster: Api, namespace: str, name: str) -> str:
    """Set ``force-sync`` to the unix time (one more if it already holds that second);
    returns the ``refreshTime`` before. Waits into the next second first when the last
    refresh happened this second, since ``refreshTime`` has one-second steps. Refused at
    once (``KubeRefused``) when ESO would ignore it (:func:`blocker`)."""
    version, found = _read(cluster, namespace, name)
    reason = blocker(found)
    if reason is not None:
        raise KubeRefused(f"ExternalSecret {namespace}/{name} cannot be force-synced: {reason}",
                          409)
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


def wait_synced(cluster: Api, namespace: str, name: str, after: str, timeout: float) -> str:
    """Poll until Ready is ``SecretSynced`` with a ``refreshTime`` newer than ``after``;
    returns that refreshTime. Raises :class:`~secretops.errors.Retryable` on timeout: no call
    failed, the operator has not synced yet, and the step (which asks for a sync) runs again."""
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
            raise Retryable(
                f"ExternalSecret {namespace}/{name} did not sync within {timeout:g}s ({reason})"
            )
        time.sleep(POLL_SECONDS)
