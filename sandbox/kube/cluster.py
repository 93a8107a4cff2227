"""The Kubernetes sandbox in one object: the API server app, the controllers (Deployments,
ReplicaSets, the kubelet with the backend pods, External Secrets Operator) and the service
endpoints. Everything runs on the event loop that calls :meth:`KubeSandbox.start`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp

from sandbox.faults import FaultMiddleware, Faults
from sandbox.kube.apiserver import ApiServer
from sandbox.kube.audit import AuditLog
from sandbox.kube.config import AwsConfig, Identity
from sandbox.kube.controllers import Controllers
from sandbox.kube.eso import ExternalSecretsOperator
from sandbox.kube.pods import Kubelet
from sandbox.kube.resources import by_kind
from sandbox.kube.service import ServiceEndpoint
from sandbox.kube.store import Store


class KubeSandbox:
    """A Kubernetes API server with the controllers that matter to IntelliPrompt.

    ``app`` is the API server (serve it over TLS: kubectl sends bearer tokens only over
    HTTPS; see :mod:`sandbox.kube.tls`). ``tokens`` maps bearer tokens to identities and may
    be changed while running. ``faults`` (the sandbox's :class:`~sandbox.faults.Faults`)
    applies the ``kubernetes`` knobs to API requests.
    """

    def __init__(
        self, *, audit_log: Path, tokens: dict[str, Identity], aws: AwsConfig | None,
        progress_deadline_seconds: int = 8, eso_refresh_seconds: int = 300,
        faults: Faults | None = None, pod_start_delay: float = 0.3,
    ) -> None:
        self.store = Store(default_deadline=progress_deadline_seconds)
        self.audit = AuditLog(audit_log)
        self.tokens = tokens
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self.kubelet = Kubelet(self.store, self.client, start_delay=pod_start_delay)
        self.controllers = Controllers(self.store)
        self.eso = ExternalSecretsOperator(self.store, aws, float(eso_refresh_seconds))
        api = ApiServer(self.store, self.kubelet, tokens, self.audit)
        self.app: ASGIApp = FaultMiddleware(api, faults, "kubernetes") if faults else api
        self._services: dict[str, ServiceEndpoint] = {}

    def service_app(self, namespace: str, selector: dict[str, str] | None = None) -> ASGIApp:
        """The Service of ``namespace`` (pods labelled ``app=backend`` by default)."""
        if namespace not in self._services:
            self._services[namespace] = ServiceEndpoint(
                self.kubelet, self.client, namespace, selector or {"app": "backend"})
        return self._services[namespace]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``, or replace the existing object of that name (no HTTP, no audit).
        Safe from any thread."""
        resource = by_kind(obj["apiVersion"], obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace", "") if resource.namespaced else ""
        if self.store.get(resource.key, namespace, obj["metadata"]["name"]) is None:
            return self.store.create(resource, obj, namespace)
        return self.store.update(resource, obj, namespace=namespace, check_version=False)

    async def start(self) -> None:
        """Start the controllers on the running event loop."""
        self.store.bind_loop(asyncio.get_running_loop())
        await self.kubelet.start()
        await self.controllers.start()
        await self.eso.start()

    async def stop(self) -> None:
        await self.eso.stop()
        await self.controllers.stop()
        await self.kubelet.stop()
        await self.client.aclose()
