"""IntelliPrompt's outside world, built and served by the sandbox supervisor.

The providers' emulators come from their registry (:mod:`sandbox.emulators`); the world
itself holds what they share: PostgreSQL, moto for AWS, Kubernetes, GitHub, the backend.

Order matters: the emulators' own processes (the CI's AWS account, :mod:`sandbox.iam`),
PostgreSQL and moto first (they take the longest), then every HTTP emulator on its own
socket, then the seed (roles, provider keys, AWS secrets, the emulators' own applications'
keys, the cluster's objects), then the cluster's controllers (the backend and the other
applications' pods check their credentials at start), and last the files that point at it
all: credentials, kubeconfig, the development ``.env``, ``inventory.yaml`` and, as the signal
that the sandbox is ready, ``sandbox.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from sandbox import aws as aws_sandbox
from sandbox import emulators
from sandbox.emulators import Emulator, Running
from sandbox.faults import FaultMiddleware, Faults, control_app
from sandbox.github_api import GitHubState, github_app
from sandbox.inventory import NAMESPACES, ROLES, sandbox_inventory
from sandbox.kube import AwsConfig, Identity, KubeSandbox, kubeconfig, make_server_cert, manifests
from sandbox.kube.backend import BACKEND
from sandbox.postgres import PostgresInfo, PostgresSandbox
from sandbox.realkube.cluster import RealCluster
from secretops.adapters.files import atomic_write

ADMIN_TOKEN_FILE = "credentials/kubernetes-token"
PROGRESS_DEADLINE_SECONDS = 8
PLANTED_READER = Identity("dev-laptop@intelliprompt.dev", ("developers",))


def _token() -> str:
    return secrets.token_urlsafe(32)


class World:
    def __init__(self, directory: Path, fault_specs: list[str],
                 kubernetes: str = "sandbox") -> None:
        self.dir = directory
        self.kind = kubernetes
        self.faults = Faults()
        for spec in fault_specs:
            self.faults.apply_spec(spec)
        self.postgres = PostgresSandbox(directory / "postgres")
        self.aws = aws_sandbox.AwsSandbox(account_id=aws_sandbox.ACCOUNT_ID)
        self.tokens = {"sandbox": _token(), "emergency-admin": _token(), "developer": _token()}
        self.github = GitHubState(_token(), f"ghp_{_token()}", revoke=self._partner_revoke)
        self.report_token = _token()
        self.kube: KubeSandbox | None = None
        self.real: RealCluster | None = None
        self.servers: list[uvicorn.Server] = []
        self.urls: dict[str, str] = {}
        self.pg: PostgresInfo | None = None
        self.begun = time.monotonic()
        self.emulators: list[tuple[Emulator, Running]] = [
            (emulator, emulator.start(self)) for emulator in emulators.registry().values()]

    async def serve(self, name: str, app: ASGIApp, knob: str | None = None) -> str:
        """Serve ``app`` (behind the fault knobs ``knob``): the emulators' :class:`Host`."""
        return await self._serve(name, FaultMiddleware(app, self.faults, knob) if knob else app)

    async def _serve(self, name: str, app: ASGIApp, ssl_certfile: str | None = None,
                     ssl_keyfile: str | None = None) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", access_log=False, ssl_certfile=ssl_certfile,
                                ssl_keyfile=ssl_keyfile)
        server = uvicorn.Server(config)
        asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        self.servers.append(server)
        port = server.servers[0].sockets[0].getsockname()[1]
        tls = ssl_certfile is not None
        self.urls[name] = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        return self.urls[name]

    def _partner_revoke(self, value: str) -> bool:
        """GitHub's partner program: the provider revokes a key pushed to a repository."""
        return any(running.revoke_leaked(value) for _, running in self.emulators)

    def _pg_admin(self) -> PostgresInfo:
        """The CREATEROLE, non-superuser admin login secretops is given (``self.pg`` is the
        cluster's superuser, kept for setup)."""
        assert self.postgres.admin is not None
        return self.postgres.admin

    def _phase(self, name: str) -> None:
        print(f"{time.monotonic() - self.begun:6.2f} s  {name}", flush=True)

    async def start(self) -> None:
        self.begun = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "credentials").mkdir(mode=0o700, exist_ok=True)
        for _, running in self.emulators:
            running.launch()  # their own processes: they boot while the rest does
        cert = await asyncio.to_thread(make_server_cert, self.dir / "tls")
        if self.kind == "real":
            self.real = RealCluster(self.dir, cert, developer=PLANTED_READER.username)
        # without a real control plane there is nothing to boot beside PostgreSQL and moto
        boot = asyncio.to_thread(self.real.boot) if self.real else asyncio.sleep(0)
        # every start is waited for, even when one fails: a PostgreSQL still starting while
        # the failure tears the world down would be left running
        # the emulators' processes are only needed by the seed: they finish booting while
        # the emulators start serving
        ready = [asyncio.ensure_future(running.ready()) for _, running in self.emulators]
        pg, *others = await asyncio.gather(
            asyncio.to_thread(self.postgres.start), asyncio.to_thread(self.aws.start), boot,
            return_exceptions=True)
        for outcome in (pg, *others):
            if isinstance(outcome, BaseException):
                await asyncio.wait(ready)
                raise outcome
        assert isinstance(pg, PostgresInfo)
        self.pg = pg
        self._phase("PostgreSQL and moto started" + (
            f", control plane {self.real.git_version} up" if self.real else ""))
        for _, running in self.emulators:
            await running.serve()
        await self._serve("github", github_app(self.github))
        await self._serve("aws", FaultMiddleware(self.aws.app, self.faults, "aws"))
        if self.real is not None:
            await self._start_real()
            services: KubeSandbox | RealCluster = self.real
        else:
            self.kube = services = self._cluster()
            await self._serve("kubernetes", self.kube.app, ssl_certfile=str(cert.cert_file),
                              ssl_keyfile=str(cert.key_file))
        for env, namespace in NAMESPACES.items():
            await self._serve(f"service-{env}", services.service_app(namespace))
        await self._serve("control", _control(self.faults))
        self._phase("emulators serving")
        for started in ready:
            phase = await started
            if phase:
                self._phase(phase)
        values = await self._seed()
        if self.real is not None:
            await asyncio.to_thread(self._seed_real, self.real, values)
        else:
            assert self.kube is not None
            for obj in self._cluster_objects(values):
                self.kube.apply(obj)
            await self.kube.start()
        self._phase("world seeded")
        self._write_files(values, cert.ca_pem)
        await asyncio.to_thread(self._wait_for_rollouts, 90.0 if self.real else 30.0)
        self._phase("backend and ci-runner rolled out in every namespace")
        await self._plant_cluster_read(cert.ca_file)
        self._write_info()

    async def _seed(self) -> dict[str, dict[str, str]]:
        """Database roles, the backend's provider keys (one per environment), AWS's
        production secrets and the emulators' own seeds; PostgreSQL, AWS and the emulators
        are seeded side by side. Returns each environment's values: the backend's keys by
        provider name, ``db_user`` and ``db_password``."""
        values: dict[str, dict[str, str]] = {env: {} for env in ROLES}
        for emulator, running in self._backend():
            for env, key in running.first_keys(list(ROLES)).items():
                values[env][emulator.name] = key
        roles = {}
        for env, role in ROLES.items():
            password = secrets.token_urlsafe(30)
            roles[role] = (role, password)
            values[env].update(db_user=role, db_password=password)
        production = values["production"]
        await asyncio.gather(
            *(running.seed() for _, running in self.emulators),
            asyncio.to_thread(self.postgres.seed, roles),
            asyncio.to_thread(aws_sandbox.seed, self.urls["aws"], aws_sandbox.SeedValues(
                {e.name: production[e.name] for e, _ in self._backend()},
                production["db_user"], production["db_password"])),
        )
        return values

    def _backend(self) -> list[tuple[Emulator, Running]]:
        """The emulators whose keys the backend holds."""
        return [(e, running) for e, running in self.emulators if e.backend is not None]

    def _cluster(self) -> KubeSandbox:
        """The API server and its controllers; External Secrets Operator reads AWS through
        the recording proxy with its own identity, as in production."""
        return KubeSandbox(
            audit_log=self.dir / "kube-audit.log",
            tokens={
                self.tokens["sandbox"]: Identity("secretops", ("devops", "system:masters")),
                self.tokens["emergency-admin"]: Identity("emergency-admin", ("system:masters",)),
                self.tokens["developer"]: PLANTED_READER,
            },
            aws=AwsConfig(endpoint_url=self.urls["aws"], region=aws_sandbox.REGION,
                          access_key_id=aws_sandbox.ESO_ACCESS_KEY_ID,
                          secret_access_key=aws_sandbox.SECRET_ACCESS_KEY),
            progress_deadline_seconds=PROGRESS_DEADLINE_SECONDS, faults=self.faults,
        )

    async def _start_real(self) -> None:
        """ESO (it needs moto's address), the kubelet on the running loop."""
        assert self.real is not None
        self.urls["kubernetes"] = self.real.server
        await asyncio.to_thread(self.real.start_external_secrets, self.urls["aws"])
        await self.real.start_kubelet()

    def _seed_real(self, real: RealCluster, values: dict[str, dict[str, str]]) -> None:
        """The same objects as the sandbox's world, but production's Secrets are left to the
        real ESO to create from AWS (with its owner reference); the flows get the token of
        the ServiceAccount that deployments/kubernetes binds."""
        production = NAMESPACES["production"]
        objects = [o for o in self._cluster_objects(values) if not (
            o["kind"] == "Secret" and o["metadata"]["namespace"] == production)]
        objects.insert(3, manifests.secret(production, "aws-credentials", {
            "access-key-id": aws_sandbox.ESO_ACCESS_KEY_ID,
            "secret-access-key": aws_sandbox.SECRET_ACCESS_KEY}, labels={}))
        real.apply_all(objects)
        self.tokens = {"sandbox": real.install_flow_identity(),
                       "emergency-admin": real.users["emergency-admin"].token,
                       "developer": real.users["developer"].token}

    def _cluster_objects(self, values: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
        assert self.pg is not None
        names = [e.name for e, _ in self._backend()]
        keys = [manifests.ApiKeyEnv(e.name, e.backend.variable, e.backend.url_variable,
                                    self.urls[e.name])
                for e, _ in self._backend() if e.backend is not None]
        objects = list(manifests.intelliprompt(refresh_interval="5m", api_keys=names))
        for env, namespace in NAMESPACES.items():
            env_values = values[env]
            objects.append(manifests.api_keys(namespace, {n: env_values[n] for n in names}))
            objects.append(manifests.db_credentials(namespace, env_values["db_user"],
                                                    env_values["db_password"]))
            objects.append(manifests.backend_deployment(
                namespace, db_host=self.pg.host, db_port=self.pg.port, db_name=ROLES[env],
                keys=keys, progress_deadline_seconds=PROGRESS_DEADLINE_SECONDS,
            ))
        for _, running in self.emulators:
            objects += running.cluster_objects(NAMESPACES, PROGRESS_DEADLINE_SECONDS)
        return objects

    def _write_files(self, values: dict[str, dict[str, str]], ca_pem: bytes) -> None:
        assert self.pg is not None
        credentials = {
            **{name: value for _, running in self.emulators
               for name, value in running.credentials().items()},
            "postgres-admin-password": self._pg_admin().admin_password,
            "postgres-superuser-password": self.pg.admin_password,
            "aws-access-key-id": aws_sandbox.ADMIN_ACCESS_KEY_ID,
            "aws-secret-access-key": aws_sandbox.SECRET_ACCESS_KEY,
            "github-webhook-secret": self.github.webhook_secret,
            "github-token": self.github.token,
            "alerts-report-token": self.report_token,
        }
        for name, value in credentials.items():
            atomic_write(self.dir / "credentials" / name, value)
        atomic_write(self.dir / "kubeconfig", kubeconfig(
            self.urls["kubernetes"], ca_pem, dict(self.tokens), namespace=NAMESPACES["production"],
            current="sandbox"))
        dev = values["development"]
        variables = {e.backend.variable: e.name for e, _ in self._backend()
                     if e.backend is not None}
        example = _dotenv(self.pg, dict.fromkeys(variables, ""), "", placeholder=True)
        atomic_write(self.dir / "dev" / ".env.example", example)
        atomic_write(self.dir / "dev" / ".env", _dotenv(self.pg, {
            variable: dev[name] for variable, name in variables.items()}, dev["db_password"]))
        atomic_write(self.dir / "dev" / "secrets" / "db_password.txt", dev["db_password"])
        inventory = sandbox_inventory({
            "aws": self.urls["aws"], "region": aws_sandbox.REGION, "pg_host": self.pg.host,
            "pg_port": self.pg.port, "pg_admin": self._pg_admin().admin_user,
        }, [(emulator.name, running.inventory()) for emulator, running in self.emulators])
        atomic_write(self.dir / "inventory.yaml",
                     "# IntelliPrompt's inventory, pointed at the sandbox in this folder.\n"
                     + yaml.safe_dump(inventory, sort_keys=False))

    async def _plant_cluster_read(self, ca_file: Path) -> None:
        """A developer reads production's api-keys: the policy-breaking RoleBinding allows it,
        and the audit log records it for the leak audit to find."""
        url = (f"{self.urls['kubernetes']}/api/v1/namespaces/{NAMESPACES['production']}"
               "/secrets/api-keys")
        headers = {"authorization": f"Bearer {self.tokens['developer']}",
                   "user-agent": "kubectl/v1.32.4 (darwin/arm64) kubernetes/59526cd"}
        async with httpx.AsyncClient(verify=str(ca_file)) as client:
            (await client.get(url, headers=headers)).raise_for_status()

    def _wait_for_rollouts(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._rolled_out(ns) for ns in NAMESPACES.values()):
                return
            time.sleep(0.05)
        raise RuntimeError("the backend and ci-runner Deployments did not become available")

    def _rolled_out(self, namespace: str) -> bool:
        deployments = [BACKEND.deployment, *(e.application.deployment for e, _ in self.emulators
                                             if e.application is not None)]
        return all(self._deployment_rolled_out(namespace, name) for name in deployments)

    def _deployment_rolled_out(self, namespace: str, name: str) -> bool:
        if self.real is not None:
            return self.real.rolled_out(namespace, name)
        assert self.kube is not None
        deployment = self.kube.store.get("deployments.apps", namespace, name) or {}
        status = deployment.get("status", {})
        wanted = deployment.get("spec", {}).get("replicas", 0)
        return bool(wanted) and status.get("availableReplicas") == wanted == status.get(
            "updatedReplicas")

    def _write_info(self) -> None:
        assert self.pg is not None
        info: dict[str, Any] = {
            "dir": str(self.dir),
            "kubeconfig": str(self.dir / "kubeconfig"),
            "kubernetes": {"server": self.urls["kubernetes"], "kind": self.kind,
                           "gitVersion": self.real.git_version if self.real else "sandbox",
                           "audit_log": str(self.dir / "kube-audit.log"),
                           "contexts": ["sandbox", "emergency-admin", "developer"]},
            "aws": {"endpoint_url": self.urls["aws"], "region": aws_sandbox.REGION},
            "postgres": {"host": self.pg.host, "port": self.pg.port,
                         "database": ROLES["production"],
                         "admin_user": self._pg_admin().admin_user,
                         "superuser": self.pg.admin_user, "log": str(self.pg.log_path)},
            "providers": {},
            "services": {env: self.urls[f"service-{env}"] for env in NAMESPACES},
            "github": self.urls["github"],
            "control": self.urls["control"],
            "inventory": str(self.dir / "inventory.yaml"),
            "dev": str(self.dir / "dev"),
            "pids": {"supervisor": os.getpid(), "postgres": self.pg.pid,
                     **{name: pid for _, running in self.emulators
                        for name, pid in running.pids().items()},
                     **(self.real.pids() if self.real else {})},
        }
        for _, running in self.emulators:
            for key, value in running.info().items():
                if isinstance(value, dict) and isinstance(info.get(key), dict):
                    info[key].update(value)
                else:
                    info[key] = value
        if self.real is not None:
            info["kubernetes"]["logs"] = self.real.logs()
        partial = self.dir / "sandbox.json.partial"
        partial.write_text(json.dumps(info, indent=2))
        partial.replace(self.dir / "sandbox.json")

    async def stop(self) -> None:
        if self.kube is not None:
            await self.kube.stop()
        if self.real is not None:
            await self.real.stop()
        for server in self.servers:
            server.should_exit = True
        await asyncio.sleep(0.2)
        await asyncio.gather(asyncio.to_thread(self.aws.stop),
                             *(running.stop() for _, running in self.emulators))
        await asyncio.to_thread(self.postgres.stop)


def _dotenv(pg: PostgresInfo, keys: dict[str, str], db_password: str,
            placeholder: bool = False) -> str:
    """The development ``.env``: the backend's keys (``keys``: by variable), then
    PostgreSQL's settings."""
    password = "${DB_PASSWORD}" if placeholder else db_password
    user, database = ROLES["development"], ROLES["development"]
    return "\n".join([
        "# IntelliPrompt, development. Never commit this file.",
        *(f"{variable}={value}" for variable, value in keys.items()),
        "",
        "# PostgreSQL (docker-compose.dev.yml also mounts secrets/db_password.txt)",
        f"DB_HOST={pg.host}",
        f"DB_PORT={pg.port}",
        f"DB_NAME={database}",
        f"DB_USER={user}",
        f"DB_PASSWORD={db_password}",
        f"DATABASE_URL=postgresql://{user}:{password}@{pg.host}:{pg.port}/{database}",
        "LOG_LEVEL=debug",
        "",
    ])


def _control(faults: Faults) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/healthz", healthz), Mount("/", control_app(faults))])
