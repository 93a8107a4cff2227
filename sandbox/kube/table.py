"""Server-side printing: the ``meta.k8s.io/v1`` ``Table`` that ``kubectl get`` asks for, with
the columns the real server prints for the resources kubectl users look at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.kube.timefmt import age

Row = Callable[[dict[str, Any]], list[Any]]


def _col(name: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "name" if name == "Name" else "",
            "description": name, "priority": priority}


def _pod_status(pod: dict[str, Any]) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        waiting = cs.get("state", {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "Waiting"))
    return str(pod.get("status", {}).get("phase", "Pending"))


def _pod(pod: dict[str, Any]) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    return [f"{ready}/{total}", _pod_status(pod), restarts]


def _deployment(obj: dict[str, Any]) -> list[Any]:
    status, spec = obj.get("status", {}), obj.get("spec", {})
    return [f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0)]


def _replicaset(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    return [obj.get("spec", {}).get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0)]


def _binding(obj: dict[str, Any]) -> list[Any]:
    ref = obj.get("roleRef", {})
    return [f"{ref.get('kind', '')}/{ref.get('name', '')}"]


def _external_secret(obj: dict[str, Any]) -> list[Any]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    store = spec.get("secretStoreRef", {})
    return [store.get("kind", "SecretStore"), store.get("name", ""),
            spec.get("refreshInterval", "1h"), ready.get("reason", ""),
            ready.get("status", "")]


_COLUMNS: dict[str, tuple[list[dict[str, Any]], Row]] = {
    "pods": ([_col("Ready"), _col("Status"), _col("Restarts", "integer")], _pod),
    "deployments.apps": (
        [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer")],
        _deployment),
    "replicasets.apps": (
        [_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer")],
        _replicaset),
    "secrets": ([_col("Type"), _col("Data", "integer")],
                lambda o: [o.get("type", "Opaque"), len(o.get("data") or {})]),
    "namespaces": ([_col("Status")], lambda o: [o.get("status", {}).get("phase", "Active")]),
    "rolebindings.rbac.authorization.k8s.io": ([_col("Role")], _binding),
    "clusterrolebindings.rbac.authorization.k8s.io": ([_col("Role")], _binding),
    "externalsecrets.external-secrets.io": (
        [_col("StoreType"), _col("Store"), _col("Refresh Interval"), _col("Status"),
         _col("Ready")], _external_secret),
    "serviceaccounts": ([_col("Secrets", "integer")],
                        lambda o: [len(o.get("secrets") or [])]),
}


def table(key: str, items: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    """A ``Table`` of ``items`` with NAME, the resource's own columns and AGE."""
    columns, row = _COLUMNS.get(key, ([], lambda o: []))
    rows = []
    for obj in items:
        meta = obj["metadata"]
        rows.append({
            "cells": [meta["name"], *row(obj), age(meta.get("creationTimestamp"))],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": meta},
        })
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [_col("Name"), *columns, _col("Age")],
        "rows": rows,
    }
