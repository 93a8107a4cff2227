"""A Kubernetes world for the adapter tests: the sandbox's API server and controllers
(Deployments, ReplicaSets, kubelet, External Secrets Operator) served over TLS by uvicorn
in a background thread, with a kubeconfig the official client and kubectl both use."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from sandbox.faults import Faults
from sandbox.kube import AwsConfig, Identity, KubeSandbox, kubeconfig, make_server_cert

ADMIN = "kube-admin-token-for-tests"
DEVELOPER = "kube-developer-token-for-tests"


@dataclass(frozen=True)
class KubeWorld:
    sandbox: KubeSandbox
    kubeconfig: Path
    server: str
    audit_log: Path
    faults: Faults


@contextmanager
def kube_world(directory: Path, aws: AwsConfig | None) -> Iterator[KubeWorld]:
    cert = make_server_cert(directory / "tls")
    audit = directory / "audit.log"
    tokens = {
        ADMIN: Identity("secretops-admin", ("system:masters", "system:authenticated")),
        DEVELOPER: Identity("dev-alice", ("developers", "system:authenticated")),
    }
    faults = Faults(seed=7)
    kube = KubeSandbox(
        audit_log=audit,
        tokens=tokens,
        aws=aws,
        progress_deadline_seconds=4,
        pod_start_delay=0.1,
        faults=faults,
    )
    config = uvicorn.Config(
        kube.app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
        ssl_certfile=str(cert.cert_file),
        ssl_keyfile=str(cert.key_file),
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        await kube.start()
        try:
            await server.serve()
        finally:
            await kube.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Kubernetes sandbox did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    path = directory / "kubeconfig"
    path.write_text(kubeconfig(url, cert.ca_pem, {"sandbox": ADMIN, "developer": DEVELOPER}))
    path.chmod(0o600)
    try:
        yield KubeWorld(kube, path, url, audit, faults)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
