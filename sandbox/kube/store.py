"""The object store behind the API server: objects by resource, namespace and name, one
global resourceVersion, a bounded history of changes and the watchers that follow it.

Every write runs :func:`sandbox.kube.strategy.prepare` (defaults, Secret data, generation).
A stored object is never changed in place: a write stores a new one. So a change event
carries the stored object itself, which listeners and watchers only read (a watch copies it
before it shapes its answer); readers and writers get copies. Writes may come from any
thread; watchers and change listeners are always called on the event loop the store is bound
to.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.kube import strategy
from sandbox.kube.errors import ApiError, already_exists, conflict, invalid, not_found
from sandbox.kube.jsondoc import clone
from sandbox.kube.resources import Resource, by_key
from sandbox.kube.timefmt import rfc3339

_HISTORY = 20000


@dataclass(frozen=True)
class Change:
    """One ADDED / MODIFIED / DELETED event of one object (``obj``: read it, never change
    it)."""

    type: str
    key: str
    namespace: str
    name: str
    rv: int
    obj: dict[str, Any]


class Watcher:
    """A queue of changes of one resource (optionally one namespace) for a watch request."""

    def __init__(self, key: str, namespace: str | None) -> None:
        self.key = key
        self.namespace = namespace
        self.queue: asyncio.Queue[Change] = asyncio.Queue()
        self._last = 0

    def wants(self, change: Change) -> bool:
        return change.key == self.key and self.namespace in (None, change.namespace)

    def put(self, change: Change) -> None:
        """Queue a change once, in resourceVersion order."""
        if change.rv > self._last:
            self._last = change.rv
            self.queue.put_nowait(change)


def random_suffix(length: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(random.choice(alphabet) for _ in range(length))


class Store:
    """In-memory objects with Kubernetes write semantics."""

    def __init__(self, default_deadline: int = 600) -> None:
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        # owner uid -> (resource key, namespace, name) of the objects it owns: controllers
        # read a ReplicaSet's pods and the garbage collector a deleted object's dependents
        # without scanning every object
        self._owned: dict[str, set[tuple[str, str, str]]] = {}
        self._history: deque[Change] = deque(maxlen=_HISTORY)
        self._watchers: set[Watcher] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.default_deadline = default_deadline

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def on_change(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get(key, {}).get((namespace, name))
            return clone(obj) if obj is not None else None

    def list(self, key: str, namespace: str | None = None,
             where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Copies of the objects of ``key`` (in ``namespace``) that ``where`` accepts; the
        filter sees the stored objects, so only the matches are copied."""
        with self._lock:
            items = self._objects.get(key, {})
            return [clone(o) for (ns, _), o in sorted(items.items())
                    if (namespace is None or ns == namespace) and (where is None or where(o))]

    # ``builtins.list``: inside the class body ``list`` is the method above
    def owned(self, key: str, namespace: str,
              owner_uid: str) -> builtins.list[dict[str, Any]]:
        """Copies of the objects of ``key`` in ``namespace`` that list ``owner_uid`` among
        their ownerReferences, by name."""
        with self._lock:
            items = self._objects.get(key, {})
            return [clone(items[(ns, name)])
                    for k, ns, name in sorted(self._owned.get(owner_uid, ()))
                    if k == key and ns == namespace and (ns, name) in items]

    def _index(self, key: str, ns: str, name: str, obj: dict[str, Any] | None,
               add: bool) -> None:
        for ref in (obj or {}).get("metadata", {}).get("ownerReferences") or []:
            uid = ref.get("uid")
            if not uid:
                continue
            if add:
                self._owned.setdefault(uid, set()).add((key, ns, name))
            else:
                owned = self._owned.get(uid)
                if owned is not None:
                    owned.discard((key, ns, name))
                    if not owned:
                        del self._owned[uid]

    def require(self, key: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(key, namespace, name)
        if obj is None:
            r = by_key(key)
            raise not_found(r.plural, r.group, name)
        return obj

    def create(self, resource: Resource, obj: dict[str, Any],
               namespace: str = "", *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta.get("name")
        if not name:
            raise invalid(resource.kind, "", "metadata.name: Required value: name or "
                          "generateName is required")
        ns = (namespace or meta.get("namespace") or "default") if resource.namespaced else ""
        with self._lock:
            if resource.namespaced and self.get("namespaces", "", ns) is None:
                raise not_found("namespaces", "", ns)
            if (ns, name) in self._objects.get(resource.key, {}):
                raise already_exists(resource.plural, resource.group, name)
            stored = strategy.prepare(resource, obj, None,
                                      default_deadline=self.default_deadline)
            meta = stored["metadata"]
            if resource.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = rfc3339()
            for field in ("resourceVersion", "deletionTimestamp", "selfLink"):
                meta.pop(field, None)
            stored["apiVersion"] = resource.api_version()
            stored["kind"] = resource.kind
            self._commit("ADDED", resource, ns, name, stored, dry_run)
            return clone(stored)

    def update(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str = "",
        status_only: bool = False, check_version: bool = True, dry_run: bool = False,
    ) -> dict[str, Any]:
        """Store ``obj`` over the object of its name; the stored object (a copy)."""
        return clone(self._update(resource, obj, namespace, status_only, check_version,
                                  dry_run))

    def write_status(self, resource: Resource, obj: dict[str, Any]) -> None:
        """A controller's or the kubelet's write of ``obj``'s status, whatever its
        resourceVersion: nothing is answered, so nothing is copied back."""
        self._update(resource, obj, "", status_only=True, check_version=False, dry_run=False)

    def _update(
        self, resource: Resource, obj: dict[str, Any], namespace: str, status_only: bool,
        check_version: bool, dry_run: bool,
    ) -> dict[str, Any]:
        """The write of :meth:`update`; the object as stored now (not a copy: never change
        it)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        ns = (namespace or meta.get("namespace") or "default") if resource.namespaced else ""
        with self._lock:
            old = self._objects.get(resource.key, {}).get((ns, name))
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            wanted = meta.get("resourceVersion")
            if check_version and wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(resource.plural, resource.group, name)
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise conflict(resource.plural, resource.group, name)
            stored = strategy.prepare(resource, obj, old, status_only=status_only,
                                      default_deadline=self.default_deadline)
            smeta = stored["metadata"]
            for field in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds"):
                if field in old["metadata"]:
                    smeta[field] = old["metadata"][field]
            if resource.namespaced:
                smeta["namespace"] = ns
            smeta["name"] = name
            stored["apiVersion"] = resource.api_version()
            stored["kind"] = resource.kind
            if not strategy.uses_generation(resource):
                smeta.pop("generation", None)
            def unversioned(obj: dict[str, Any]) -> dict[str, Any]:
                return {**obj, "metadata": {k: v for k, v in obj["metadata"].items()
                                            if k != "resourceVersion"}}

            same = unversioned(old) == unversioned(stored)
            if same:
                return old
            self._commit("MODIFIED", resource, ns, name, stored, dry_run)
            return stored

    def mark_deleting(self, resource: Resource, namespace: str, name: str,
                      grace_seconds: int = 30, *, dry_run: bool = False) -> dict[str, Any]:
        """Graceful deletion: set ``deletionTimestamp``; the owner of the object removes it."""
        with self._lock:
            old = self._objects.get(resource.key, {}).get((namespace, name))
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            if old["metadata"].get("deletionTimestamp"):
                return clone(old)
            stored = clone(old)
            stored["metadata"]["deletionTimestamp"] = rfc3339()
            stored["metadata"]["deletionGracePeriodSeconds"] = grace_seconds
            self._commit("MODIFIED", resource, namespace, name, stored, dry_run)
            return clone(stored)

    def delete(self, resource: Resource, namespace: str, name: str, *,
               dry_run: bool = False) -> dict[str, Any]:
        """Remove the object now, then its dependents (ownerReferences) and, for a namespace,
        everything in it."""
        with self._lock:
            old = self._objects.get(resource.key, {}).get((namespace, name))
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            if dry_run:
                return clone(old)
            del self._objects[resource.key][(namespace, name)]
            self._index(resource.key, namespace, name, old, add=False)
            self._rv += 1
            gone = clone(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(Change("DELETED", resource.key, namespace, name, self._rv, gone))
            self._collect(old["metadata"]["uid"], namespace if resource.namespaced else name,
                          resource.key == "namespaces")
            return gone

    def _collect(self, uid: str, namespace: str, whole_namespace: bool) -> None:
        dependents = set(self._owned.get(uid, ()))
        if whole_namespace:
            dependents |= {(key, ns, name) for key, items in self._objects.items()
                           for ns, name in items if ns == namespace}
        for key, ns, name in sorted(dependents):
            try:
                self.delete(by_key(key), ns, name)
            except ApiError:
                continue

    def _commit(self, kind: str, resource: Resource, ns: str, name: str,
                stored: dict[str, Any], dry_run: bool = False) -> None:
        """Store ``stored`` as the object's next version and tell the watchers; a dry run
        (``?dryRun=All``) stores nothing."""
        if dry_run:
            return
        self._rv += 1
        stored["metadata"]["resourceVersion"] = str(self._rv)
        objects = self._objects.setdefault(resource.key, {})
        self._index(resource.key, ns, name, objects.get((ns, name)), add=False)
        self._index(resource.key, ns, name, stored, add=True)
        objects[(ns, name)] = stored
        self._emit(Change(kind, resource.key, ns, name, self._rv, stored))

    def _emit(self, change: Change) -> None:
        self._history.append(change)
        if self._loop is None or self._loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver(change)
        else:
            self._loop.call_soon_threadsafe(self._deliver, change)

    def _deliver(self, change: Change) -> None:
        for watcher in list(self._watchers):
            if watcher.wants(change):
                watcher.put(change)
        for listener in self._listeners:
            listener(change)

    def watch(self, key: str, namespace: str | None, since: int | None) -> Watcher:
        """A watcher of changes after resourceVersion ``since``; ``None`` means from now.

        Raises 410 Gone when ``since`` is older than the history kept. Call on the loop.
        """
        watcher = Watcher(key, namespace)
        with self._lock:
            if since is not None and since < self._rv:
                oldest = self._history[0].rv if self._history else self._rv + 1
                if since < oldest - 1 and len(self._history) == self._history.maxlen:
                    raise ApiError(410, "Expired",
                                   f"too old resource version: {since} ({oldest - 1})")
                newer = []
                for change in reversed(self._history):  # newest first: stop at ``since``
                    if change.rv <= since:
                        break
                    newer.append(change)
                for change in reversed(newer):
                    if watcher.wants(change):
                        watcher.put(change)
            self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
