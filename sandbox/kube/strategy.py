"""What the API server does to an object on every write: defaults, normalisation of Secret
data, the status subresource split and ``metadata.generation``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sandbox.kube.errors import bad_request
from sandbox.kube.jsondoc import clone
from sandbox.kube.resources import Resource

_GENERATION = {"deployments.apps", "replicasets.apps"}


def uses_generation(resource: Resource) -> bool:
    return resource.key in _GENERATION or resource.custom


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    data = dict(obj.get("data") or {})
    for key, value in data.items():
        if not isinstance(value, str):
            raise bad_request(f"Secret in version \"v1\" cannot be handled: data.{key} not a "
                              "base64 string")
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise bad_request(
                f"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data "
                f"in data.{key}"
            ) from exc
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data
    else:
        obj.pop("data", None)


def _deployment(obj: dict[str, Any], deadline: int) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", deadline)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy["type"] = "RollingUpdate"
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    _pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")


def _initial_status(resource: Resource) -> dict[str, Any] | None:
    if resource.key == "pods":
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if resource.key == "namespaces":
        return {"phase": "Active"}
    if "status" in resource.subresources:
        return {}
    return None


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def prepare(
    resource: Resource,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    *,
    status_only: bool = False,
    default_deadline: int = 600,
) -> dict[str, Any]:
    """The object to store for a write of ``new`` over ``old`` (``None`` on create).

    A write of the main resource keeps the old status; a write of ``/status`` keeps
    everything but the status. ``metadata.generation`` moves when the spec changes.
    """
    if status_only and old is not None:
        kept = clone(old)
        kept["status"] = clone(new.get("status", {}))
        return kept
    obj = clone(new)
    if resource.key == "secrets":
        _secret(obj)
    elif resource.key == "deployments.apps":
        _deployment(obj, default_deadline)
    elif resource.key == "pods":
        _pod_spec(obj.setdefault("spec", {}))
    elif resource.key == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    initial = _initial_status(resource)
    if initial is not None:
        if old is None:
            status = obj.get("status") if resource.key == "pods" and obj.get("status") else initial
            obj["status"] = status
        else:
            obj["status"] = clone(old.get("status", initial))
    if uses_generation(resource):
        meta = obj["metadata"]
        if old is None:
            meta["generation"] = 1
        else:
            generation = int(old["metadata"].get("generation", 1))
            changed = _spec_part(obj) != _spec_part(old)
            meta["generation"] = generation + 1 if changed else generation
    return obj
