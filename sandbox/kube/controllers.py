"""The Deployment and ReplicaSet controllers: a work queue fed by store changes, acting on
the store directly (no HTTP), like kube-controller-manager."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sandbox.kube import rollout
from sandbox.kube.errors import ApiError
from sandbox.kube.jsondoc import clone
from sandbox.kube.resources import by_key
from sandbox.kube.store import Change, Store

DEPLOYMENTS, REPLICASETS, PODS = "deployments.apps", "replicasets.apps", "pods"
_log = logging.getLogger(__name__)


def owner_of(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref["name"])
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


class Controllers:
    """Reconciles Deployments and ReplicaSets whenever they or their pods change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dirty: set[tuple[str, str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        store.on_change(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.key == DEPLOYMENTS:
            self.enqueue(DEPLOYMENTS, change.namespace, change.name)
        elif change.key == REPLICASETS:
            self.enqueue(REPLICASETS, change.namespace, change.name)
            owner = owner_of(change.obj, "Deployment")
            if owner:
                self.enqueue(DEPLOYMENTS, change.namespace, owner)
        elif change.key == PODS:
            owner = owner_of(change.obj, "ReplicaSet")
            if owner:
                self.enqueue(REPLICASETS, change.namespace, owner)

    def enqueue(self, key: str, namespace: str, name: str) -> None:
        self._dirty.add((key, namespace, name))
        self._wake.set()

    async def start(self) -> None:
        for key in (DEPLOYMENTS, REPLICASETS):
            for obj in self.store.list(key):
                self.enqueue(key, obj["metadata"]["namespace"], obj["metadata"]["name"])
        self._task = asyncio.create_task(self._run(), name="kube-controllers")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                batch = sorted(self._dirty, key=lambda k: k[0] != REPLICASETS)
                self._dirty.clear()
                for key, namespace, name in batch:
                    try:
                        if key == DEPLOYMENTS:
                            self._sync_deployment(namespace, name)
                        else:
                            self._sync_replicaset(namespace, name)
                    except ApiError as exc:
                        _log.debug("requeue %s %s/%s: %s", key, namespace, name, exc.message)
                        self.enqueue(key, namespace, name)
                await asyncio.sleep(0)

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        rs = self.store.get(REPLICASETS, namespace, name)
        if rs is None:
            return
        pods = self.store.owned(PODS, namespace, rs["metadata"]["uid"])
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        diff = rollout.spec_replicas(rs) - len(active)
        pod_resource = by_key(PODS)
        if diff > 0:
            for _ in range(diff):
                active.append(self.store.create(pod_resource, self._new_pod(rs), namespace))
        elif diff < 0:
            victims = sorted(active, key=lambda p: (is_ready(p),
                                                    _neg(p["metadata"]["creationTimestamp"])))
            for pod in victims[:-diff]:
                self.store.mark_deleting(pod_resource, namespace, pod["metadata"]["name"],
                                         int(pod["spec"].get("terminationGracePeriodSeconds", 30)))
                active.remove(pod)
        ready = sum(1 for p in active if is_ready(p))
        status = {
            "replicas": len(active), "fullyLabeledReplicas": len(active),
            "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if status != rs.get("status"):
            rs["status"] = status
            self.store.write_status(by_key(REPLICASETS), rs)

    def _new_pod(self, rs: dict[str, Any]) -> dict[str, Any]:
        template = clone(rs["spec"]["template"])
        meta = template.get("metadata", {})
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": rs["metadata"]["name"] + "-",
                         "namespace": rs["metadata"]["namespace"],
                         "labels": meta.get("labels", {}),
                         "annotations": meta.get("annotations", {}),
                         "ownerReferences": [_owner_ref(rs)]},
            "spec": template.get("spec", {}),
        }

    def _sync_deployment(self, namespace: str, name: str) -> None:
        deployment = self.store.get(DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["spec"].get("paused"):
            return
        all_rs = self.store.owned(REPLICASETS, namespace, deployment["metadata"]["uid"])
        template_hash = rollout.template_hash(deployment["spec"]["template"])
        new_rs = next((rs for rs in all_rs if rs["metadata"].get("labels", {}).get(
            "pod-template-hash") == template_hash), None)
        old_rs = [rs for rs in all_rs if rs is not new_rs]
        created = False
        recreate = deployment["spec"].get("strategy", {}).get("type") == "Recreate"
        if recreate and any(rollout.spec_replicas(rs) or rollout.status_of(rs, "replicas")
                            for rs in old_rs):
            for rs in old_rs:
                self._scale(rs, 0, deployment)
        elif new_rs is None:
            template = clone(deployment["spec"]["template"])
            new_rs = self._create_rs(deployment, template, template_hash, all_rs, old_rs)
            all_rs.append(new_rs)
            created = True
        else:
            wanted = rollout.new_rs_replicas(deployment, all_rs, new_rs)
            new_rs = self._scale(new_rs, wanted, deployment)
            all_rs = [*old_rs, new_rs]
        if new_rs is not None and not recreate:
            targets = rollout.old_scale_down(deployment, all_rs, new_rs, old_rs)
            for rs in old_rs:
                self._scale(rs, targets[rs["metadata"]["name"]], deployment)
        self._cleanup(deployment, old_rs)
        self._write_status(deployment, all_rs, new_rs, created)

    def _create_rs(self, deployment: dict[str, Any], template: dict[str, Any],
                   template_hash: str, all_rs: list[dict[str, Any]],
                   old_rs: list[dict[str, Any]]) -> dict[str, Any]:
        revision = 1 + max((int(rs["metadata"].get("annotations", {}).get(
            rollout.REVISION, 0)) for rs in old_rs), default=0)
        template.setdefault("metadata", {}).setdefault("labels", {})[
            "pod-template-hash"] = template_hash
        selector = clone(deployment["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
        spec = deployment["spec"]
        surge, _ = rollout.surge_and_unavailable(deployment)
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{deployment['metadata']['name']}-{template_hash}",
                "namespace": deployment["metadata"]["namespace"],
                "labels": template["metadata"]["labels"],
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
                    "deployment.kubernetes.io/max-replicas": str(spec["replicas"] + surge),
                    rollout.REVISION: str(revision)},
                "ownerReferences": [_owner_ref(deployment)],
            },
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }
        rs["spec"]["replicas"] = rollout.new_rs_replicas(deployment, all_rs, None)
        created = self.store.create(by_key(REPLICASETS), rs)
        deployment["metadata"].setdefault("annotations", {})[rollout.REVISION] = str(revision)
        fresh = self.store.update(by_key(DEPLOYMENTS), deployment, check_version=False)
        deployment["metadata"] = fresh["metadata"]
        return created

    def _scale(self, rs: dict[str, Any], replicas: int,
               deployment: dict[str, Any]) -> dict[str, Any]:
        if rollout.spec_replicas(rs) == replicas:
            return rs
        rs["spec"]["replicas"] = replicas
        rs["metadata"].setdefault("annotations", {})[
            "deployment.kubernetes.io/desired-replicas"] = str(deployment["spec"]["replicas"])
        return self.store.update(by_key(REPLICASETS), rs, check_version=False)

    def _cleanup(self, deployment: dict[str, Any], old_rs: list[dict[str, Any]]) -> None:
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in old_rs if rollout.spec_replicas(rs) == 0
                and rollout.status_of(rs, "replicas") == 0]
        idle.sort(key=lambda r: int(r["metadata"].get("annotations", {}).get(
            rollout.REVISION, 0)))
        for rs in idle[:max(0, len(idle) - limit)]:
            self.store.delete(by_key(REPLICASETS), rs["metadata"]["namespace"],
                              rs["metadata"]["name"])

    def _write_status(self, deployment: dict[str, Any], all_rs: list[dict[str, Any]],
                      new_rs: dict[str, Any] | None, created: bool) -> None:
        fresh = [self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
                 for rs in all_rs]
        current = [rs for rs in fresh if rs is not None]
        new_now = next((rs for rs in current if new_rs and rs["metadata"]["name"]
                        == new_rs["metadata"]["name"]), None)
        status = rollout.deployment_status(deployment, current, new_now, created)
        if status != deployment.get("status"):
            deployment["status"] = status
            self.store.write_status(by_key(DEPLOYMENTS), deployment)
        deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
        delay = rollout.seconds_to_deadline(status, deadline)
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        if key in self._timers:
            self._timers.pop(key).cancel()
        if delay is not None:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(delay, self.enqueue, DEPLOYMENTS, *key)


def _neg(stamp: str) -> str:
    """Sort key that puts newer creation timestamps first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in stamp)
