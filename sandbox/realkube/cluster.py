"""The real Kubernetes world in one object, the counterpart of
:class:`sandbox.kube.KubeSandbox`: it boots the control plane (:mod:`sandbox.realkube.plane`),
installs External Secrets Operator's CRDs and starts the operator, starts the sandbox's
kubelet on the real API server, applies the seed objects, and gives the flows a
ServiceAccount token bound by the RBAC manifests in ``deployments/kubernetes``.

Its :attr:`~RealCluster.server`, the address users' kubeconfig names, is the fault proxy
(:mod:`sandbox.realkube.faultproxy`) in front of kube-apiserver, with the sandbox's
``kubernetes`` fault knobs; the control plane's components, ESO and the kubelet use
:attr:`~RealCluster.api_server`, kube-apiserver itself.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.types import ASGIApp

from sandbox import faults as sandbox_faults
from sandbox.faults import Faults
from sandbox.kube.service import ServiceEndpoint
from sandbox.kube.tls import ServerCert, kubeconfig, make_server_cert
from sandbox.realkube import api, binaries, pki
from sandbox.realkube.faultproxy import FaultProxy, listen
from sandbox.realkube.kubelet import RealKubelet
from sandbox.realkube.plane import ControlPlaneFailed, Plane
from secretops.adapters.files import atomic_write

MANIFESTS = Path(__file__).resolve().parents[2] / "deployments" / "kubernetes"
WORKER_MANIFESTS = ("namespace.yaml", "serviceaccounts.yaml", "worker-rbac.yaml",
                    "rbac-audit.yaml", "rbac-production.yaml", "rbac-staging.yaml")
FLOW_SERVICE_ACCOUNT = ("secretops", "secretops")
ESO_SERVICE_ACCOUNT = ("external-secrets", "external-secrets")
TOKEN_SECONDS = 48 * 3600
SERVE_V1BETA1 = "SECRETOPS_ESO_SERVE_V1BETA1"
"""Set to 1 to serve ESO's ``v1beta1`` beside ``v1`` (as ESO 0.16 and a Helm flag of later
releases do); by default only ``v1`` is served, as ESO serves it from 0.17 on."""


def _crds(serve_v1beta1: bool) -> list[dict[str, Any]]:
    crds = []
    for path in sorted(binaries.eso_crds_dir().glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names = {v["name"] for v in crd["spec"]["versions"]}
        for version in crd["spec"]["versions"]:
            if version["name"] == "v1beta1" and "v1" in names and not serve_v1beta1:
                version["served"] = False
        crds.append(crd)
    return crds


class RealCluster:
    """See the module docstring. ``boot`` runs in a thread (it waits on processes); the
    kubelet, the log endpoint and the fault proxy run on the caller's event loop. The proxy's
    knobs are ``faults``' ``kubernetes`` ones; without ``faults``, those of the registry the
    sandbox's control endpoint serves (:func:`sandbox.faults.served`)."""

    def __init__(self, directory: Path, cert: ServerCert, *, developer: str,
                 pod_start_delay: float = 0.3, faults: Faults | None = None) -> None:
        self.dir = directory
        self.root = directory / "realkube"
        self.cert = cert
        self.users = pki.identities(developer)
        self.plane: Plane | None = None
        self.kubelet: RealKubelet | None = None
        self.checks = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self.pod_start_delay = pod_start_delay
        self.git_version = ""
        self.flow_token = ""
        self._log_server: uvicorn.Server | None = None
        self.faults = faults
        self.proxy: FaultProxy | None = None
        self._proxy_socket: socket.socket | None = None
        self._services: dict[str, ServiceEndpoint] = {}
        self._clients: list[httpx.AsyncClient] = []

    @property
    def server(self) -> str:
        """The address secretops' clients use: the fault proxy (bound once booted)."""
        assert self._proxy_socket is not None
        return f"https://127.0.0.1:{self._proxy_socket.getsockname()[1]}"

    @property
    def api_server(self) -> str:
        """kube-apiserver itself, for the control plane's components and the sandbox's own
        machinery."""
        assert self.plane is not None
        return self.plane.server

    def _admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_server, verify=str(self.cert.ca_file), timeout=30,
                            headers={"authorization": f"Bearer {self.users['admin'].token}"})

    def _async_client(self, user: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=self.api_server, verify=str(self.cert.ca_file), timeout=httpx.Timeout(10.0),
            headers={"authorization": f"Bearer {self.users[user].token}"})
        self._clients.append(client)
        return client

    def boot(self) -> None:
        """etcd, the API server, the controller manager, ESO's CRDs and ESO itself. On any
        failure every process started is stopped and the error names the log to read."""
        binaries.find_all()
        binaries.eso_crds_dir()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        plane = self.plane = Plane(self.root, None, self.cert.cert_file,  # type: ignore[arg-type]
                                   self.cert.key_file, self.cert.ca_file)
        try:
            plane.start_etcd()
            plane.api_port = _reserve()
            plane.files = pki.write_files(self.root, plane.server, self.cert.ca_pem, self.users)
            plane.start_apiserver(self.dir / "kube-audit.log", self.users["admin"].token)
            plane.start_controller_manager()
            with self._admin() as client:
                self.git_version = client.get("/version").json()["gitVersion"]
                for crd in _crds(os.environ.get(SERVE_V1BETA1) == "1"):
                    api.apply(client, crd)
                self._wait_established(client)
            plane.check_alive()
            self._proxy_socket = listen()  # served from start_kubelet, on the event loop
        except BaseException:
            plane.stop()
            raise

    def start_external_secrets(self, aws_endpoint: str) -> None:
        """ESO's controller, as a real install runs it: ServiceAccount
        ``external-secrets/external-secrets`` (bound to cluster-admin here; its Helm chart
        grants a narrower ClusterRole), reading AWS Secrets Manager at ``aws_endpoint``
        through its documented custom-endpoint variables."""
        assert self.plane is not None
        namespace, account = ESO_SERVICE_ACCOUNT
        self.apply_all([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": account, "namespace": namespace}},
            _eso_binding(),
        ])
        token = self._token(namespace, account)
        atomic_write(self.plane.files.kubeconfig_of("external-secrets"), kubeconfig(
            self.api_server, self.cert.ca_pem, {"external-secrets": token}))
        self.plane.start_external_secrets(aws_endpoint)

    def _wait_established(self, client: httpx.Client, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        for name in ("externalsecrets.external-secrets.io", "secretstores.external-secrets.io"):
            while True:
                conditions = (client.get(path + name).json().get("status") or {}).get(
                    "conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True"
                       for c in conditions):
                    break
                if time.monotonic() > deadline:
                    assert self.plane is not None
                    raise ControlPlaneFailed(f"CRD {name} not established; see "
                                             f"{self.plane.log_of('kube-apiserver')}")
                time.sleep(0.1)

    async def start_kubelet(self) -> None:
        """The fault proxy, then the kubelet, its Node and its TLS log endpoint, on the
        running event loop."""
        assert self._proxy_socket is not None and self.proxy is None
        self.proxy = FaultProxy(self._proxy_socket, self.api_server,
                                cert_file=self.cert.cert_file, key_file=self.cert.key_file,
                                ca_file=self.cert.ca_file, faults=self.faults,
                                resolve=sandbox_faults.served)
        await self.proxy.start()
        self.kubelet = RealKubelet(self._async_client("kubelet"),
                                   self._async_client("scheduler"),
                                   self._async_client("admin"), self.checks,
                                   start_delay=self.pod_start_delay)
        tls = make_server_cert(self.root / "kubelet-tls")
        config = uvicorn.Config(self.kubelet.log_app(), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off", access_log=False,
                                ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file))
        self._log_server = uvicorn.Server(config)
        asyncio.get_running_loop().create_task(self._log_server.serve())
        while not self._log_server.started:
            await asyncio.sleep(0.01)
        port = self._log_server.servers[0].sockets[0].getsockname()[1]
        await self.kubelet.register(port)
        await self.kubelet.start()

    def service_app(self, namespace: str, selector: dict[str, str] | None = None) -> ASGIApp:
        assert self.kubelet is not None
        if namespace not in self._services:
            self._services[namespace] = ServiceEndpoint(
                self.kubelet, self.checks, namespace, selector or {"app": "backend"})
        return self._services[namespace]

    def apply_all(self, objects: list[dict[str, Any]]) -> None:
        with self._admin() as client:
            for obj in objects:
                api.apply(client, obj)

    def install_flow_identity(self) -> str:
        """Apply the worker's manifests from deployments/kubernetes and return a token of the
        flows' ServiceAccount (TokenRequest, 48 h)."""
        objects = []
        for name in WORKER_MANIFESTS:
            objects += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
        self.apply_all(objects)
        self.flow_token = self._token(*FLOW_SERVICE_ACCOUNT)
        return self.flow_token

    def _token(self, namespace: str, account: str) -> str:
        """A bound token of a ServiceAccount (TokenRequest, 48 h)."""
        with self._admin() as client:
            response = client.post(
                f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": TOKEN_SECONDS}})
            response.raise_for_status()
            return str(response.json()["status"]["token"])

    def rolled_out(self, namespace: str, name: str = "backend") -> bool:
        with self._admin() as client:
            response = client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        if response.status_code != 200:
            return False
        deployment = response.json()
        status, wanted = deployment.get("status", {}), deployment["spec"].get("replicas", 0)
        return bool(wanted) and status.get("availableReplicas") == wanted == status.get(
            "updatedReplicas") and status.get("replicas") == wanted

    def pids(self) -> dict[str, int]:
        return self.plane.pids() if self.plane else {}

    def logs(self) -> dict[str, str]:
        if self.plane is None:
            return {}
        return {name: str(self.plane.log_of(name)) for name in self.plane.procs}

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self._log_server is not None:
            self._log_server.should_exit = True
        if self.proxy is not None:
            await self.proxy.stop()
        elif self._proxy_socket is not None:
            self._proxy_socket.close()
        for client in self._clients:
            await client.aclose()
        await self.checks.aclose()
        if self.plane is not None:
            await asyncio.to_thread(self.plane.stop)


def _reserve() -> int:
    from sandbox.realkube.plane import free_port

    return free_port()


def _eso_binding() -> dict[str, Any]:
    """ESO's controller may do what its Helm chart's ClusterRole allows; here, cluster-admin
    (the sandbox's ESO is trusted machinery, not what the access audit looks at)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "external-secrets-controller"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": ESO_SERVICE_ACCOUNT[1],
                          "namespace": ESO_SERVICE_ACCOUNT[0]}]}
