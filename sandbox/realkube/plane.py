"""The control plane's processes: etcd, kube-apiserver, kube-controller-manager and External
Secrets Operator, on loopback, each with its log under ``DIR/realkube/``.

Each is started, then waited for (etcd's and the API server's health endpoints); one that
exits or does not answer in time stops the whole plane, and the error names its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sandbox.realkube import binaries
from sandbox.realkube.pki import Files
from secretops.errors import SecretopsError

BOOT_TIMEOUT = 60.0
SERVICE_CIDR = "10.96.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = ",".join([
    "deployment-controller", "replicaset-controller", "namespace-controller",
    "serviceaccount-controller", "serviceaccount-token-controller",
    "garbage-collector-controller", "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller", "pod-garbage-collector-controller",
])


class ControlPlaneFailed(SecretopsError):
    """A process of the control plane exited or did not become healthy."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Plane:
    """The processes, by name, and where they listen."""

    root: Path
    files: Files
    cert_file: Path
    key_file: Path
    ca_file: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    etcd_port: int = 0
    api_port: int = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def log_of(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        binary = binaries.find(name)
        with self.log_of(name).open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(binary), *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.root, env={**os.environ, **(env or {})},
                start_new_session=True)

    def _wait(self, name: str, url: str, verify: str | bool = False,
              token: str | None = None) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        headers = {"authorization": f"Bearer {token}"} if token else {}
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise ControlPlaneFailed(f"{name} exited with code {proc.returncode} while "
                                         f"starting; see {self.log_of(name)}")
            try:
                if httpx.get(url, verify=verify, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ControlPlaneFailed(f"{name} did not become healthy within {BOOT_TIMEOUT:.0f} s; "
                                 f"see {self.log_of(name)}")

    def start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{self.etcd_port}"
        self._start("etcd", [
            "--data-dir", str(self.root / "etcd"), "--name", "sandbox",
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"sandbox=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3),
            "--log-level", "warn",
        ])
        self._wait("etcd", f"{url}/health")

    def start_apiserver(self, audit_log: Path, admin_token: str) -> None:
        self.api_port = self.api_port or free_port()
        self._start("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={self.cert_file}", f"--tls-private-key-file={self.key_file}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--token-auth-file={self.files.tokens}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={self.files.sa_pub}",
            f"--service-account-signing-key-file={self.files.sa_key}",
            "--service-account-max-token-expiration=48h",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--audit-policy-file={self.files.audit_policy}",
            f"--audit-log-path={audit_log}", "--audit-log-format=json",
            "--audit-log-mode=blocking", "--audit-log-maxsize=0",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false", "--v=1",
        ])
        self._wait("kube-apiserver", f"{self.server}/readyz", verify=str(self.ca_file),
                   token=admin_token)

    def start_controller_manager(self) -> None:
        self._start("kube-controller-manager", [
            f"--kubeconfig={self.files.kubeconfig_of('controller-manager')}",
            f"--controllers={CONTROLLERS}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.files.sa_key}",
            f"--root-ca-file={self.ca_file}",
            "--leader-elect=false", "--secure-port=0",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
            "--profiling=false", "--v=1",
        ])

    def start_external_secrets(self, aws_endpoint: str) -> None:
        self._start("external-secrets", [
            "--metrics-addr=0", "--concurrent=4", "--loglevel=info",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-push-secret-reconciler=false",
            "--zap-time-encoding=iso8601",
        ], env={
            "KUBECONFIG": str(self.files.kubeconfig_of("external-secrets")),
            "AWS_SECRETSMANAGER_ENDPOINT": aws_endpoint,
            "AWS_STS_ENDPOINT": aws_endpoint,
        })

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ControlPlaneFailed(f"{name} exited with code {proc.returncode}; see "
                                         f"{self.log_of(name)}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every process, the last started first; kill what does not stop in time."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
