"""The REST verbs on resources: get, list, watch, create, update, patch, delete, and the
``status``, ``scale`` and ``log`` subresources. The writes take ``dry_run`` (``?dryRun=All``):
everything is checked and the answer is what would be stored, but nothing is."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox.kube.errors import ApiError, bad_request, conflict, not_found
from sandbox.kube.jsondoc import clone
from sandbox.kube.patch import (
    PatchError,
    PatchTestFailed,
    json_patch,
    merge_patch,
    strategic_merge,
)
from sandbox.kube.resources import Resource
from sandbox.kube.selectors import SelectorError, field_matcher, label_matcher, selector_string
from sandbox.kube.store import Change, Store
from sandbox.kube.table import table

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


class LogSource(Protocol):
    """Where pod logs come from (the simulated kubelet)."""

    def read_log(self, namespace: str, name: str, params: dict[str, str]) -> str: ...


@dataclass(frozen=True)
class Target:
    """What a resource request path names."""

    resource: Resource
    version: str
    namespace: str
    name: str
    subresource: str


def unsupported_media(resource: Resource) -> ApiError:
    accepted = ["application/json-patch+json", "application/merge-patch+json",
                "application/apply-patch+yaml"]
    if not resource.custom:
        accepted.insert(2, "application/strategic-merge-patch+json")
    return ApiError(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def present(obj: dict[str, Any], target: Target) -> dict[str, Any]:
    """The object as the requested version shows it."""
    obj["apiVersion"] = target.resource.api_version(target.version)
    return obj


def _matcher(params: dict[str, str]) -> Any:
    try:
        labels = label_matcher(params.get("labelSelector"))
        fields = field_matcher(params.get("fieldSelector"))
    except SelectorError as exc:
        raise bad_request(str(exc)) from exc
    return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj)


class ResourceApi:
    """The verbs, over a :class:`Store`."""

    def __init__(self, store: Store, logs: LogSource) -> None:
        self.store = store
        self.logs = logs

    def _ns(self, target: Target) -> str:
        return target.namespace if target.resource.namespaced else ""

    def get(self, target: Target, params: dict[str, str], as_table: bool) -> dict[str, Any]:
        if target.subresource == "scale":
            return self._scale(self._require(target))
        obj = present(self._require(target), target)
        if as_table:
            return table(target.resource.key, [obj], self.store.resource_version)
        return obj

    def _require(self, target: Target) -> dict[str, Any]:
        return self.store.require(target.resource.key, self._ns(target), target.name)

    def list(self, target: Target, params: dict[str, str], as_table: bool) -> dict[str, Any]:
        match = _matcher(params)
        namespace = target.namespace if target.resource.namespaced and target.namespace else None
        rv = self.store.resource_version
        items = [present(o, target) for o in self.store.list(target.resource.key, namespace,
                                                             match)]
        if as_table:
            return table(target.resource.key, items, rv)
        return {"kind": f"{target.resource.kind}List",
                "apiVersion": target.resource.api_version(target.version),
                "metadata": {"resourceVersion": rv}, "items": items}

    def log(self, target: Target, params: dict[str, str]) -> str:
        if target.resource.key != "pods":
            raise not_found(target.resource.plural, target.resource.group, target.name)
        self._require(target)
        return self.logs.read_log(target.namespace, target.name, params)

    def create(self, target: Target, body: Any, dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        if body.get("kind") and body["kind"] != target.resource.kind:
            raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not "
                              f"match the expected API version ({target.resource.api_version()})")
        meta = body.setdefault("metadata", {})
        if target.resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != target.namespace:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = target.namespace
        return present(self.store.create(target.resource, body, target.namespace,
                                         dry_run=dry_run), target)

    def update(self, target: Target, body: Any, dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        if target.subresource == "scale":
            return self._set_scale(target, body, dry_run)
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != target.name:
            raise bad_request("the name of the object does not match the name on the URL")
        meta["name"] = target.name
        stored = self.store.update(target.resource, body, namespace=self._ns(target),
                                   status_only=target.subresource == "status", dry_run=dry_run)
        return present(stored, target)

    def patch(self, target: Target, content_type: str, raw: bytes,
              dry_run: bool = False) -> dict[str, Any]:
        kind = PATCH_TYPES.get(content_type.split(";")[0].strip())
        if kind is None or (kind == "strategic" and target.resource.custom):
            raise unsupported_media(target.resource)
        try:
            patch = json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        current = self._require(target)
        base = self._scale(current) if target.subresource == "scale" else current
        try:
            if kind == "json":
                patched = json_patch(base, patch)
            elif kind == "merge":
                patched = merge_patch(base, patch)
            else:
                patched = strategic_merge(base, patch)
        except PatchTestFailed as exc:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error "
                           "in our request", {}) from exc
        except PatchError as exc:
            raise ApiError(exc.code, "Invalid" if exc.code == 422 else "BadRequest",
                           str(exc)) from exc
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        return self.update(target, patched, dry_run)

    def delete(self, target: Target, body: Any, dry_run: bool = False) -> dict[str, Any]:
        options = body if isinstance(body, dict) else {}
        dry_run = dry_run or "All" in (options.get("dryRun") or [])  # DeleteOptions.dryRun
        current = self._require(target)
        wanted = (options.get("preconditions") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(target.resource.plural, target.resource.group, target.name)
        grace = options.get("gracePeriodSeconds")
        if target.resource.key == "pods" and grace != 0:
            pod = self.store.mark_deleting(target.resource, target.namespace, target.name,
                                           int(grace) if grace is not None else 30,
                                           dry_run=dry_run)
            return present(pod, target)
        gone = self.store.delete(target.resource, self._ns(target), target.name,
                                 dry_run=dry_run)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": target.name, "kind": target.resource.plural,
                            "uid": gone["metadata"]["uid"]}}

    def delete_collection(self, target: Target, params: dict[str, str],
                          dry_run: bool = False) -> dict[str, Any]:
        listing = self.list(target, params, as_table=False)
        for obj in listing["items"]:
            one = Target(target.resource, target.version, obj["metadata"].get("namespace", ""),
                         obj["metadata"]["name"], "")
            self.delete(one, {"gracePeriodSeconds": 0}, dry_run)
        return listing

    def _scale(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": selector_string(obj.get("spec", {}).get("selector", {}))},
        }

    def _set_scale(self, target: Target, scale: dict[str, Any],
                   dry_run: bool = False) -> dict[str, Any]:
        current = self._require(target)
        current["spec"]["replicas"] = int(scale.get("spec", {}).get("replicas", 0))
        wanted = scale.get("metadata", {}).get("resourceVersion")
        if wanted:
            current["metadata"]["resourceVersion"] = wanted
        stored = self.store.update(target.resource, current, namespace=self._ns(target),
                                   dry_run=dry_run)
        return self._scale(stored)

    async def watch(self, target: Target, params: dict[str, str]) -> AsyncIterator[bytes]:
        """The event stream of a watch, one JSON object per line, ending at
        ``timeoutSeconds`` (default: a random 30 to 60 minutes, like the real server)."""
        match = _matcher(params)
        namespace = target.namespace if target.resource.namespaced and target.namespace else None
        since_text = params.get("resourceVersion", "")
        timeout = float(params.get("timeoutSeconds") or random.uniform(1800, 3600))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        inside: dict[tuple[str, str], bool] = {}
        try:
            if since_text in ("", "0"):
                watcher = self.store.watch(target.resource.key, namespace, None)
                initial = [o for o in self.store.list(target.resource.key, namespace)
                           if match(o)]
            else:
                watcher = self.store.watch(target.resource.key, namespace, int(since_text))
                initial = []
        except ApiError as exc:
            yield _line("ERROR", exc.status())
            return
        try:
            for obj in initial:
                inside[(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = True
                yield _line("ADDED", present(obj, target))
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    return
                event = _filtered(change, match, inside)
                if event is not None:
                    yield _line(event, present(clone(change.obj), target))
        finally:
            self.store.unwatch(watcher)


def _filtered(change: Change, match: Any, inside: dict[tuple[str, str], bool]) -> str | None:
    """The event type a selective watch sends for ``change``: objects entering the selection
    are ADDED, leaving it DELETED."""
    key = (change.namespace, change.name)
    was = inside.get(key)
    now = change.type != "DELETED" and bool(match(change.obj))
    inside[key] = now
    if change.type == "DELETED":
        return "DELETED" if was or (was is None and match(change.obj)) else None
    if now:
        return "MODIFIED" if was or (was is None and change.type == "MODIFIED") else "ADDED"
    return "DELETED" if was else None


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()
