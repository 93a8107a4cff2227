"""The Deployment controller's arithmetic, as in kube-controller-manager: pod-template-hash,
maxSurge / maxUnavailable, how far the new ReplicaSet may scale up and the old ones down,
and the status and conditions of a Deployment."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from sandbox.kube.timefmt import now, parse, rfc3339

_SAFE = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: dict[str, Any]) -> str:
    """``pod-template-hash``: FNV-32a of the template, encoded like ``rand.SafeEncodeString``."""
    return _fnv_safe(json.dumps(template, sort_keys=True, separators=(",", ":")).encode())


@functools.lru_cache(maxsize=4096)
def _fnv_safe(data: bytes) -> str:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[b % len(_SAFE)] for b in str(value).encode())


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def surge_and_unavailable(deployment: dict[str, Any]) -> tuple[int, int]:
    """``maxSurge`` (rounded up) and ``maxUnavailable`` (rounded down); both 0 means 1
    unavailable, as the real controller does."""
    spec = deployment["spec"]
    replicas = int(spec.get("replicas", 1))
    rolling = spec.get("strategy", {}).get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def spec_replicas(rs: dict[str, Any]) -> int:
    return int(rs.get("spec", {}).get("replicas", 0))


def status_of(rs: dict[str, Any], field: str) -> int:
    return int(rs.get("status", {}).get(field, 0))


def new_rs_replicas(deployment: dict[str, Any], all_rs: list[dict[str, Any]],
                    new_rs: dict[str, Any] | None) -> int:
    """How many replicas the new ReplicaSet should have now (``NewRSNewReplicas``)."""
    replicas = int(deployment["spec"].get("replicas", 1))
    current_new = spec_replicas(new_rs) if new_rs else 0
    if deployment["spec"].get("strategy", {}).get("type") == "Recreate":
        return replicas
    if current_new > replicas:
        return replicas
    surge, _ = surge_and_unavailable(deployment)
    current = sum(spec_replicas(rs) for rs in all_rs)
    if current >= replicas + surge:
        return current_new
    return current_new + min(replicas + surge - current, replicas - current_new)


def old_scale_down(deployment: dict[str, Any], all_rs: list[dict[str, Any]],
                   new_rs: dict[str, Any], old_rs: list[dict[str, Any]]) -> dict[str, int]:
    """New ``spec.replicas`` for old ReplicaSets (``reconcileOldReplicaSets``): first drop
    their unhealthy replicas, then healthy ones while availability stays above the minimum."""
    replicas = int(deployment["spec"].get("replicas", 1))
    _, unavailable = surge_and_unavailable(deployment)
    min_available = replicas - unavailable
    all_pods = sum(spec_replicas(rs) for rs in all_rs)
    new_unavailable = spec_replicas(new_rs) - status_of(new_rs, "availableReplicas")
    budget = all_pods - min_available - new_unavailable
    targets = {rs["metadata"]["name"]: spec_replicas(rs) for rs in old_rs}
    if budget <= 0 or not any(targets.values()):
        return targets
    oldest_first = sorted(old_rs, key=lambda r: r["metadata"]["creationTimestamp"])
    for rs in oldest_first:
        name = rs["metadata"]["name"]
        unhealthy = targets[name] - status_of(rs, "availableReplicas")
        cut = min(max(unhealthy, 0), budget)
        targets[name] -= cut
        budget -= cut
    available = sum(status_of(rs, "availableReplicas") for rs in all_rs)
    to_remove = available - min_available
    for rs in oldest_first:
        name = rs["metadata"]["name"]
        if to_remove <= 0:
            break
        cut = min(targets[name], to_remove)
        targets[name] -= cut
        to_remove -= cut
    return targets


def _condition(kind: str, status: str, reason: str, message: str,
               previous: dict[str, Any] | None, touch: bool = True) -> dict[str, Any]:
    stamp = rfc3339()
    same_status = previous is not None and previous.get("status") == status
    return {
        "type": kind, "status": status,
        "lastUpdateTime": stamp if touch or previous is None else previous["lastUpdateTime"],
        "lastTransitionTime": previous["lastTransitionTime"] if same_status and previous
        else stamp,
        "reason": reason, "message": message,
    }


def _find(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def deployment_status(deployment: dict[str, Any], all_rs: list[dict[str, Any]],
                      new_rs: dict[str, Any] | None, created_new: bool) -> dict[str, Any]:
    """The Deployment's status after this sync, conditions included (``syncRolloutStatus``)."""
    spec, old = deployment["spec"], deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    total = sum(status_of(rs, "replicas") for rs in all_rs)
    available = sum(status_of(rs, "availableReplicas") for rs in all_rs)
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": total,
        "updatedReplicas": status_of(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_of(rs, "readyReplicas") for rs in all_rs),
        "availableReplicas": available,
    }
    if total - available > 0:
        status["unavailableReplicas"] = total - available
    conditions = [dict(c) for c in old.get("conditions") or []]
    _, max_unavailable = surge_and_unavailable(deployment)
    avail_prev = _find(conditions, "Available")
    if available >= replicas - max_unavailable:
        avail = _condition("Available", "True", "MinimumReplicasAvailable",
                           "Deployment has minimum availability.", avail_prev, False)
    else:
        avail = _condition("Available", "False", "MinimumReplicasUnavailable",
                           "Deployment does not have minimum availability.", avail_prev, False)
    if avail_prev is None or avail_prev["status"] != avail["status"]:
        avail["lastUpdateTime"] = rfc3339()
    progressing = _find(conditions, "Progressing")
    rs_name = new_rs["metadata"]["name"] if new_rs else ""
    complete = (status["updatedReplicas"] == replicas and total == replicas
                and available == replicas)
    if created_new:
        progressing = _condition("Progressing", "True", "NewReplicaSetCreated",
                                 f'Created new replica set "{rs_name}"', progressing)
    elif complete and new_rs:
        if not progressing or progressing.get("reason") != "NewReplicaSetAvailable":
            progressing = _condition("Progressing", "True", "NewReplicaSetAvailable",
                                     f'ReplicaSet "{rs_name}" has successfully progressed.',
                                     progressing)
    elif new_rs and _progressed(old, status):
        progressing = _condition("Progressing", "True", "ReplicaSetUpdated",
                                 f'ReplicaSet "{rs_name}" is progressing.', progressing)
    elif (new_rs and _timed_out(progressing, int(spec.get("progressDeadlineSeconds", 600)))
          and progressing and progressing.get("reason") != "ProgressDeadlineExceeded"):
        progressing = _condition("Progressing", "False", "ProgressDeadlineExceeded",
                                 f'ReplicaSet "{rs_name}" has timed out progressing.',
                                 progressing)
    status["conditions"] = [c for c in (avail, progressing) if c is not None]
    return status


def _progressed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_old = int(new["replicas"]) - int(new["updatedReplicas"])
    return bool(int(new["updatedReplicas"]) > int(old.get("updatedReplicas", 0))
                or new_old < old_old
                or int(new["readyReplicas"]) > int(old.get("readyReplicas", 0))
                or int(new["availableReplicas"]) > int(old.get("availableReplicas", 0)))


def _timed_out(progressing: dict[str, Any] | None, deadline: int) -> bool:
    if progressing is None or progressing.get("reason") == "NewReplicaSetAvailable":
        return False
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return True
    elapsed = (now() - parse(str(progressing["lastUpdateTime"]))).total_seconds()
    return elapsed > deadline


def seconds_to_deadline(status: dict[str, Any], deadline: int) -> float | None:
    """When to look again for a stuck rollout, or None when there is nothing to wait for."""
    progressing = _find(status.get("conditions") or [], "Progressing")
    if progressing is None or progressing.get("reason") in (
            "NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
        return None
    elapsed = (now() - parse(progressing["lastUpdateTime"])).total_seconds()
    return max(0.05, deadline - elapsed + 0.05)
