"""The sandbox's kubelet on a real API server: it registers Node ``sandbox-node``, binds the
pods no scheduler has placed to it (as ``system:kube-scheduler``), runs the pods bound to it
with the sandbox's own kubelet logic (:class:`sandbox.kube.pods.Kubelet`: the environment
read once at start, the backend's start-up checks, the log), reports their status through
``pods/status``, deletes them once they terminate, and serves their logs over TLS on the
Node's kubelet endpoint, so ``kubectl logs`` goes through the API server to it.

The pods, Secrets and ConfigMaps it reads come from list + watch mirrors of the API server
(:class:`~sandbox.realkube.api.Informer`); its writes go to the API server, in order per pod,
as the Node's own identity (so the Node authorizer and NodeRestriction judge them). A real
kubelet may only get the Secrets its pods name; this one mirrors them all with the sandbox's
admin identity instead (those reads are not audited: the access audit looks at people and the
flows' ServiceAccount).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sandbox.kube.errors import ApiError
from sandbox.kube.pods import Kubelet
from sandbox.kube.resources import Resource
from sandbox.kube.store import Change
from sandbox.realkube.api import Informer
from sandbox.realkube.pki import NODE_NAME

log = logging.getLogger("sandbox.realkube.kubelet")
MERGE = {"content-type": "application/merge-patch+json"}


class MirrorStore:
    """The part of the sandbox's object store that its kubelet uses, backed by the real API
    server: reads from the mirrors, writes as API requests."""

    def __init__(self, client: httpx.AsyncClient, reader: httpx.AsyncClient) -> None:
        self.client = client
        self.informers = {
            "pods": Informer(client, "pods", f"spec.nodeName={NODE_NAME}"),
            "secrets": Informer(reader, "secrets"),
            "configmaps": Informer(reader, "configmaps"),
        }
        self._listeners: list[Callable[[Change], None]] = []
        self.informers["pods"].listeners.append(self._relay)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for name in ("secrets", "configmaps", "pods"):
            self.informers[name].start()
            await asyncio.wait_for(self.informers[name].synced.wait(), 30)

    async def stop(self) -> None:
        for informer in self.informers.values():
            await informer.stop()
        for task in list(self._tasks):
            task.cancel()

    def on_change(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def _relay(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)

    def list(self, key: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.informers[key].objects.values()]

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.informers[key].get(namespace, name)
        return copy.deepcopy(found) if found is not None else None

    def _send(self, namespace: str, name: str, method: str, path: str, **kwargs: Any) -> None:
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())

        async def send() -> None:
            async with lock:
                for attempt in range(5):
                    try:
                        response = await self.client.request(method, path, **kwargs)
                    except httpx.HTTPError:
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    if response.status_code < 500 and response.status_code != 429:
                        if response.status_code >= 400 and response.status_code != 404:
                            log.warning("%s %s: %s", method, path, response.status_code)
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def write_status(self, resource: Resource, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        mirrored = self.informers["pods"].objects.get((meta["namespace"], meta["name"]))
        if mirrored is not None:
            mirrored["status"] = copy.deepcopy(pod["status"])
        self._send(meta["namespace"], meta["name"], "PATCH",
                   f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                   content=json.dumps({"status": pod["status"]}), headers=MERGE)

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        self._send(namespace, name, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}",
                   params={"gracePeriodSeconds": "0"})


class RealKubelet(Kubelet):
    """:class:`~sandbox.kube.pods.Kubelet` on a :class:`MirrorStore`, with the Node, the
    binder and the log endpoint."""

    def __init__(self, node_client: httpx.AsyncClient, scheduler_client: httpx.AsyncClient,
                 reader: httpx.AsyncClient, checks_client: httpx.AsyncClient,
                 start_delay: float = 0.3) -> None:
        self.mirror = MirrorStore(node_client, reader)
        super().__init__(self.mirror, checks_client, start_delay=start_delay)  # type: ignore[arg-type]
        self.node_client = node_client
        self.unbound = Informer(scheduler_client, "pods", "spec.nodeName=")
        self.unbound.listeners.append(self._bind)
        self.scheduler = scheduler_client

    async def register(self, log_port: int) -> None:
        """Create this Node (or find it) and report it Ready at its kubelet endpoint."""
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux"}}}
        response = await self.node_client.post("/api/v1/nodes", json=node)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"registering the Node: {response.status_code} {response.text}")
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "250"}
        status = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the sandbox's kubelet is posting ready status"}],
            "nodeInfo": {"kubeletVersion": "sandbox", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "sandbox://1",
                         "kernelVersion": "", "osImage": "secretops sandbox",
                         "machineID": "", "systemUUID": "", "bootID": "",
                         "kubeProxyVersion": ""},
        }
        response = await self.node_client.patch(f"/api/v1/nodes/{NODE_NAME}/status",
                                                content=json.dumps({"status": status}),
                                                headers=MERGE)
        response.raise_for_status()

    async def start(self) -> None:
        await self.mirror.start()
        self.unbound.start()
        await super().start()

    async def stop(self) -> None:
        await self.unbound.stop()
        await super().stop()
        await self.mirror.stop()

    def _bind(self, change: Change) -> None:
        meta = change.obj["metadata"]
        if change.type == "DELETED" or meta.get("deletionTimestamp") \
                or change.obj.get("spec", {}).get("nodeName"):
            return
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME}}

        async def bind() -> None:
            response = await self.scheduler.post(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
                json=binding)
            if response.status_code not in (201, 404, 409):
                log.warning("binding %s/%s: %s", meta["namespace"], meta["name"],
                            response.status_code)

        self._spawn(bind())

    def log_app(self) -> Starlette:
        """``GET /containerLogs/{namespace}/{pod}/{container}``, as a kubelet serves it."""

        async def logs(request: Request) -> PlainTextResponse:
            params = dict(request.query_params)
            params["container"] = request.path_params["container"]
            try:
                text = self.read_log(request.path_params["namespace"],
                                     request.path_params["pod"], params)
            except ApiError as exc:
                return PlainTextResponse(exc.message, status_code=exc.code)
            return PlainTextResponse(text)

        return Starlette(routes=[
            Route("/containerLogs/{namespace}/{pod}/{container}", logs),
            Route("/healthz", lambda _: PlainTextResponse("ok")),
        ])
