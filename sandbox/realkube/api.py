"""A small client of the real API server for the sandbox's own machinery: server-side apply
of the seed objects, and list-then-watch mirrors (informers) that the sandbox's kubelet reads.

The paths come from the sandbox's resource table (:mod:`sandbox.kube.resources`), which names
every kind the world holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx

from sandbox.kube.resources import Resource, by_key, by_kind
from sandbox.kube.store import Change

log = logging.getLogger("sandbox.realkube")
FIELD_MANAGER = "secretops-sandbox"


def collection_path(resource: Resource, namespace: str = "") -> str:
    version = resource.versions[0]
    base = f"/api/{version}" if not resource.group else f"/apis/{resource.group}/{version}"
    if resource.namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{resource.plural}"
    return f"{base}/{resource.plural}"


_EXTRA = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): Resource(
        "apiextensions.k8s.io", ("v1",), "CustomResourceDefinition",
        "customresourcedefinitions", False),
    ("v1", "Node"): Resource("", ("v1",), "Node", "nodes", False),
}


def object_path(obj: dict[str, Any]) -> str:
    resource = _EXTRA.get((obj["apiVersion"], obj["kind"])) or by_kind(obj["apiVersion"],
                                                                         obj["kind"])
    meta = obj["metadata"]
    return f"{collection_path(resource, meta.get('namespace', ''))}/{meta['name']}"


def apply(client: httpx.Client, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply of ``obj`` (create or update), as ``kubectl apply --server-side``."""
    response = client.patch(
        object_path(obj), params={"fieldManager": FIELD_MANAGER, "force": "true"},
        content=json.dumps(obj), headers={"content-type": "application/apply-patch+yaml"})
    if response.status_code >= 400:
        raise RuntimeError(f"apply {obj['kind']} {obj['metadata'].get('name')}: "
                           f"{response.status_code} {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


class Informer:
    """Every object of one resource (optionally filtered by a field selector), kept current
    by list + watch; ``listeners`` hear each change as a :class:`Change`."""

    def __init__(self, client: httpx.AsyncClient, key: str, field_selector: str = "") -> None:
        self.client = client
        self.resource = by_key(key)
        self.key = key
        self.field_selector = field_selector
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.listeners: list[Callable[[Change], None]] = []
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rv = "0"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        change = Change(kind, self.key, key[0], key[1], int(meta.get("resourceVersion") or 0),
                        obj)
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a listener's bug must not stop the mirror
                log.exception("listener failed on %s %s/%s", kind, *key)

    async def _list(self) -> None:
        params = {"fieldSelector": self.field_selector} if self.field_selector else {}
        response = await self.client.get(collection_path(self.resource), params=params)
        response.raise_for_status()
        body = response.json()
        seen = set()
        for item in body.get("items") or []:
            item.setdefault("apiVersion", self.resource.api_version())
            item.setdefault("kind", self.resource.kind)
            meta = item["metadata"]
            seen.add((meta.get("namespace", ""), meta["name"]))
            self._emit("ADDED" if (meta.get("namespace", ""), meta["name"]) not in self.objects
                       else "MODIFIED", item)
        for key in [k for k in self.objects if k not in seen]:
            self._emit("DELETED", self.objects[key])
        self._rv = body["metadata"].get("resourceVersion") or "0"
        self.synced.set()

    async def _watch(self) -> None:
        params = {"watch": "1", "resourceVersion": self._rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        async with self.client.stream("GET", collection_path(self.resource), params=params,
                                      timeout=httpx.Timeout(10.0, read=None)) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    self._rv = "0"  # too old: list again
                    return
                self._rv = (obj.get("metadata") or {}).get("resourceVersion") or self._rv
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._emit(event["type"], obj)

    async def _loop(self) -> None:
        while True:
            try:
                if self._rv == "0" or not self.synced.is_set():
                    await self._list()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server restarting, a dropped watch
                log.warning("watch of %s ended (%s); listing again", self.key,
                            type(exc).__name__)
                self._rv = "0"
                await asyncio.sleep(0.5)
