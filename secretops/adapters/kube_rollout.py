"""``kubectl rollout status`` and "which pods started after the restart, and what they logged".

:func:`rollout_state` is kubectl's ``DeploymentStatusViewer``, rule for rule;
:func:`wait_for_rollout` reads the Deployment once (or takes the restart's answer) and then
watches it
(``fieldSelector=metadata.name=...``) until the rule says done or failed, or the timeout passes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from secretops.adapters.kube_api import Api, KubeRefused, KubeUnavailable, parse_time
from secretops.models import PodLog, RolloutStatus

WATCH_BACKOFF = 0.1


def rollout_state(deployment: dict[str, Any]) -> RolloutStatus:
    """kubectl's verdict on one Deployment object."""
    name = deployment.get("metadata", {}).get("name", "")
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    replicas = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    counts = RolloutStatus(
        done=False,
        message="",
        observed_generation=observed,
        updated_replicas=updated,
        ready_replicas=ready,
        available_replicas=available,
        replicas=replicas,
    )
    if generation > observed:
        return replace(counts, message="Waiting for deployment spec update to be observed...")
    progressing = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None
    )
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        message = f'deployment "{name}" exceeded its progress deadline'
        return replace(counts, message=message, deadline_exceeded=True)
    wanted = spec.get("replicas")
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if wanted is not None and updated < int(wanted):
        message = f"{updated} out of {wanted} new replicas have been updated..."
        return replace(counts, message=waiting + message)
    if replicas > updated:
        message = f"{replicas - updated} old replicas are pending termination..."
        return replace(counts, message=waiting + message)
    if available < updated:
        message = f"{available} of {updated} updated replicas are available..."
        return replace(counts, message=waiting + message)
    return replace(counts, done=True, message=f'deployment "{name}" successfully rolled out')


def _finished(state: RolloutStatus) -> bool:
    return state.done or state.deadline_exceeded


def wait_for_rollout(
    cluster: Api, namespace: str, name: str, timeout: float,
    read: dict[str, Any] | None = None,
) -> RolloutStatus:
    """Return as soon as the rollout is done or has failed; the last state on timeout.
    ``read``: the Deployment as the API server just answered a write of it (the restart's
    patch), to watch from without reading it again."""
    target = f"{namespace}/{name}"
    deadline = time.monotonic() + timeout
    while True:
        deployment = read or cluster.get(
            "get deployment", target, cluster.request, "GET",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        )
        read = None
        if deployment is None:
            raise KubeRefused(f"Kubernetes deployment {target} not found", 404)
        state = rollout_state(deployment)
        remaining = deadline - time.monotonic()
        if _finished(state) or remaining <= 0:
            return _timed_out(state, timeout) if not _finished(state) else state
        try:
            for event in cluster.watch(
                "watch deployment",
                target,
                cluster.apps.list_namespaced_deployment,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=deployment["metadata"].get("resourceVersion"),
                timeout_seconds=max(1, int(remaining + 0.999)),
            ):
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                state = rollout_state(event["object"])
                if _finished(state):
                    return state
                if time.monotonic() >= deadline:
                    break
        except KubeUnavailable:
            time.sleep(WATCH_BACKOFF)  # an expired, dropped or throttled watch is redone
        if time.monotonic() >= deadline:
            return _timed_out(state, timeout)


def _timed_out(state: RolloutStatus, timeout: float) -> RolloutStatus:
    return replace(state, done=False, message=f"timed out after {timeout:g}s: {state.message}")


def label_selector(selector: dict[str, Any]) -> str:
    """A Deployment's ``spec.selector`` as a label-selector string."""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _started_at(pod: dict[str, Any]) -> datetime | None:
    status = pod.get("status") or {}
    running = [
        parse_time(((c.get("state") or {}).get("running") or {}).get("startedAt"))
        for c in status.get("containerStatuses") or []
    ]
    known = [moment for moment in running if moment is not None]
    return min(known) if known else parse_time(status.get("startTime"))


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pods_started_since(
    cluster: Api, namespace: str, deployment: str, since: datetime
) -> list[PodLog]:
    """Pods of the Deployment's selector that started at or after ``since``, with their logs
    (oldest first). ``since`` is compared to the second, as Kubernetes stamps times."""
    target = f"{namespace}/{deployment}"
    found = cluster.get(
        "get deployment", target, cluster.request, "GET",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
    )
    if found is None:
        raise KubeRefused(f"Kubernetes deployment {target} not found", 404)
    selector = label_selector((found.get("spec") or {}).get("selector") or {})
    pods = cluster.call(
        "list pods",
        target,
        cluster.request,
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        query={"labelSelector": selector},
    )
    floor = (since if since.tzinfo else since.replace(tzinfo=UTC)).replace(microsecond=0)
    logs: list[PodLog] = []
    for pod in pods.get("items") or []:
        started = _started_at(pod)
        if started is None or started < floor or pod["metadata"].get("deletionTimestamp"):
            continue
        name = pod["metadata"]["name"]
        text = cluster.pod_log(namespace, name) or ""
        logs.append(PodLog(pod=name, started_at=started, ready=_ready(pod), log=text))
    return sorted(logs, key=lambda p: (p.started_at or floor, p.pod))
