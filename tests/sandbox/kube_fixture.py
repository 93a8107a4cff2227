"""One Kubernetes sandbox world for the ``test_kube_*`` modules, started once per test process.

Real parts only: the KubeSandbox API server over TLS on 127.0.0.1, the OpenAI and Anthropic
emulators, a moto server for Secrets Manager and a real PostgreSQL, all on ephemeral ports.
The asyncio side (API server, controllers, service endpoints, provider emulators) runs on one
event loop in a background thread, as in the sandbox supervisor.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import uvicorn
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from moto.server import ThreadedMotoServer

from sandbox.anthropic_api import AnthropicState, anthropic_app
from sandbox.kube import AwsConfig, Identity, KubeSandbox, kubeconfig, make_server_cert, manifests
from sandbox.kubectl import kubectl_path
from sandbox.openai_api import OpenAIState, openai_app
from sandbox.postgres import PostgresInfo, PostgresSandbox

PROD, STAGING = "intelliprompt", "intelliprompt-staging"
TOKEN, DEV_TOKEN = "sandbox-admin-token", "sandbox-developer-token"
DEADLINE = 3
T = TypeVar("T")


@dataclass
class KubeWorld:
    """Everything a test needs to drive and inspect the sandbox's Kubernetes."""

    kube: KubeSandbox
    loop: asyncio.AbstractEventLoop
    server: str
    kubeconfig: Path
    audit_log: Path
    pg: PostgresInfo
    pg_passwords: dict[str, str]
    openai: OpenAIState
    anthropic: AnthropicState
    aws: AwsConfig
    services: dict[str, str]
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    kubectl_bin: str = field(default_factory=kubectl_path)

    def kubectl(self, *args: str, check: bool = True,
                timeout: float = 90) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def rollout_restart(self, namespace: str, deployment: str = "backend") -> None:
        """``kubectl rollout restart``. kubectl stamps the restart to the second and refuses a
        second one within the same second (the patch would change nothing); as an operator
        would, wait and ask again."""
        for _ in range(3):
            result = self.kubectl("rollout", "restart", f"deployment/{deployment}", "-n",
                                  namespace, check=False)
            if result.returncode == 0:
                return
            if "within the past second" not in result.stderr:
                break
            time.sleep(1)
        raise AssertionError(f"kubectl rollout restart deployment/{deployment} failed: "
                             f"{result.stderr}")

    def api(self, context: str = "sandbox") -> k8s.ApiClient:
        return k8s_config.new_client_from_config(str(self.kubeconfig), context=context)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def secretsmanager(self) -> Any:
        return boto3.client("secretsmanager", endpoint_url=self.aws.endpoint_url,
                            region_name=self.aws.region,
                            aws_access_key_id=self.aws.access_key_id,
                            aws_secret_access_key=self.aws.secret_access_key)

    def wait(self, what: Callable[[], bool], timeout: float = 20, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting: {message}")
            time.sleep(0.05)

    def rolled_out(self, namespace: str) -> bool:
        dep = self.kube.store.get("deployments.apps", namespace, "backend") or {}
        status, spec = dep.get("status", {}), dep.get("spec", {})
        return (status.get("observedGeneration") == dep.get("metadata", {}).get("generation")
                and status.get("updatedReplicas") == spec.get("replicas")
                == status.get("availableReplicas") == status.get("replicas"))


async def _serve(app: Any, **ssl: str) -> tuple[uvicorn.Server, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", **ssl)
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if ssl else "http"
    return server, f"{scheme}://127.0.0.1:{port}"


def _seed_external(world_dir: Path) -> dict[str, Any]:
    """PostgreSQL roles, provider keys and AWS secrets; returns what the cluster needs."""
    pg = PostgresSandbox(world_dir / "pg")
    info = pg.start()
    passwords = {"intelliprompt": "prod-db-password-0123456789",
                 "intelliprompt_staging": "staging-db-password-0123456789"}
    pg.seed({"intelliprompt": ("intelliprompt", passwords["intelliprompt"]),
             "intelliprompt_staging": ("intelliprompt_staging",
                                       passwords["intelliprompt_staging"])})
    atexit.register(pg.stop)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws = AwsConfig(endpoint_url=f"http://{host}:{port}")
    atexit.register(moto.stop)
    openai, anthropic = OpenAIState(), AnthropicState()
    keys = {}
    for env in ("production", "staging"):
        _, o_value = openai.mint_service_account_key("proj_intelliprompt", f"backend-{env}")
        _, a_value = anthropic.mint_key(f"backend-{env}")
        keys[env] = {"openai": o_value, "anthropic": a_value}
    sm = boto3.client("secretsmanager", endpoint_url=aws.endpoint_url, region_name=aws.region,
                      aws_access_key_id=aws.access_key_id,
                      aws_secret_access_key=aws.secret_access_key)
    sm.create_secret(Name="prod/intelliprompt/openai", SecretString=keys["production"]["openai"])
    sm.create_secret(Name="prod/intelliprompt/anthropic",
                     SecretString=keys["production"]["anthropic"])
    sm.create_secret(Name="prod/intelliprompt/db", SecretString=json.dumps(
        {"username": "intelliprompt", "password": passwords["intelliprompt"]}))
    return {"pg": info, "passwords": passwords, "aws": aws, "openai": openai,
            "anthropic": anthropic, "keys": keys}


def _start() -> KubeWorld:
    world_dir = Path(tempfile.mkdtemp(prefix="kube-world-"))
    seeded = _seed_external(world_dir)
    cert = make_server_cert(world_dir / "tls")
    tokens = {TOKEN: Identity("admin", ("system:masters", "devops")),
              DEV_TOKEN: Identity("alice@intelliprompt.dev", ("developers",))}
    kube = KubeSandbox(audit_log=world_dir / "audit.log", tokens=tokens, aws=seeded["aws"],
                       progress_deadline_seconds=DEADLINE, eso_refresh_seconds=300,
                       pod_start_delay=0.2)
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        _, openai_url = await _serve(openai_app(seeded["openai"]))
        _, anthropic_url = await _serve(anthropic_app(seeded["anthropic"]))
        _, server = await _serve(kube.app, ssl_certfile=str(cert.cert_file),
                                 ssl_keyfile=str(cert.key_file))
        services = {}
        for ns in (PROD, STAGING):
            _, services[ns] = await _serve(kube.service_app(ns))
        pg: PostgresInfo = seeded["pg"]
        keys = seeded["keys"]
        for obj in manifests.intelliprompt(refresh_interval="5m",
                                           api_keys=("openai", "anthropic")):
            kube.apply(obj)
        for ns, env, role in ((PROD, "production", "intelliprompt"),
                              (STAGING, "staging", "intelliprompt_staging")):
            kube.apply(manifests.api_keys(ns, {"openai": keys[env]["openai"],
                                               "anthropic": keys[env]["anthropic"]}))
            kube.apply(manifests.db_credentials(ns, role, seeded["passwords"][role]))
            kube.apply(manifests.backend_deployment(
                ns, db_host=pg.host, db_port=pg.port, db_name=role,
                keys=[manifests.ApiKeyEnv("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                                          openai_url),
                      manifests.ApiKeyEnv("anthropic", "ANTHROPIC_API_KEY",
                                          "ANTHROPIC_BASE_URL", anthropic_url)],
                progress_deadline_seconds=DEADLINE))
        await kube.start()
        ready.update(server=server, services=services)
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="kube-world", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(main(), loop).result(30)
    started.wait(30)
    config = world_dir / "kubeconfig"
    config.write_text(kubeconfig(ready["server"], cert.ca_pem,
                                 {"sandbox": TOKEN, "developer": DEV_TOKEN}, namespace=PROD))
    world = KubeWorld(kube, loop, ready["server"], config, world_dir / "audit.log",
                      seeded["pg"], seeded["passwords"], seeded["openai"], seeded["anthropic"],
                      seeded["aws"], ready["services"], seeded["keys"])
    atexit.register(lambda: asyncio.run_coroutine_threadsafe(kube.stop(), loop).result(10))
    world.wait(lambda: world.rolled_out(PROD) and world.rolled_out(STAGING), 30,
               "initial rollout")
    return world


_world: KubeWorld | None = None
_lock = threading.Lock()


def kube_world() -> KubeWorld:
    """The shared world, started on first use."""
    global _world
    with _lock:
        if _world is None:
            _world = _start()
        return _world
