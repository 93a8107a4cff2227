"""The simulated kubelet: runs every pod of the store, resolves its environment once at
start (so a later Secret change needs a restart), runs its application's start-up checks
(the backend's PostgreSQL login, and each key its environment holds, asked of that key's
emulator: :func:`sandbox.kube.backend.key_checks`), keeps its log and moves its status
(Running, then Ready or not), and removes terminating pods."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from sandbox.emulators import Application, KeyCheck
from sandbox.kube import backend
from sandbox.kube.errors import ApiError, bad_request
from sandbox.kube.jsondoc import clone
from sandbox.kube.resources import by_key
from sandbox.kube.store import Change, Store
from sandbox.kube.timefmt import now, parse, rfc3339, rfc3339_nano

PODS = "pods"
START_SECONDS = "sandbox.secretops.dev/start-seconds"
"""Pod annotation: how long this pod takes to start, instead of the kubelet's default (an
application with a heavier start-up, set in a Deployment's pod template)."""


@dataclass
class RunningPod:
    """A pod as the kubelet runs it: its resolved environment and its log."""

    namespace: str
    name: str
    container: str
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    log: list[tuple[datetime, str]] = field(default_factory=list)
    ready: bool = False
    started: bool = False
    task: asyncio.Task[None] | None = None

    def say(self, line: str) -> None:
        self.log.append((now(), line))


class MissingReference(Exception):
    """A Secret (or key) that the pod's environment refers to does not exist yet."""


class Kubelet:
    """Runs pods; see the module docstring."""

    def __init__(self, store: Store, client: httpx.AsyncClient, start_delay: float = 0.3,
                 termination_delay: float = 0.2) -> None:
        self.store = store
        self.client = client
        self.start_delay = start_delay
        self.termination_delay = termination_delay
        self.pods: dict[tuple[str, str], RunningPod] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        store.on_change(self._on_change)

    async def start(self) -> None:
        self._running = True
        for pod in self.store.list(PODS):
            self._admit(pod)

    async def stop(self) -> None:
        self._running = False
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_change(self, change: Change) -> None:
        if change.key != PODS or not self._running:
            return
        key = (change.namespace, change.name)
        if change.type == "DELETED":
            running = self.pods.pop(key, None)
            if running and running.task:
                running.task.cancel()
        elif change.obj["metadata"].get("deletionTimestamp"):
            running = self.pods.get(key)
            if running and running.task:
                running.task.cancel()
                running.task = None
                running.ready = False
                running.say("Received SIGTERM, shutting down")
                self._spawn(self._terminate(change.namespace, change.name))
            elif running is None:
                self._spawn(self._terminate(change.namespace, change.name))
        elif key not in self.pods:
            self._admit(change.obj)

    def _admit(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
        running = RunningPod(meta["namespace"], meta["name"], containers[0]["name"],
                             dict(meta.get("labels") or {}))
        self.pods[(running.namespace, running.name)] = running
        if meta.get("deletionTimestamp"):
            self._spawn(self._terminate(running.namespace, running.name))
            return
        running.task = self._spawn(self._run(running))

    async def _terminate(self, namespace: str, name: str) -> None:
        await asyncio.sleep(self.termination_delay)
        with contextlib.suppress(ApiError):
            self.store.delete(by_key(PODS), namespace, name)

    def _resolve_env(self, pod: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        container = (pod["spec"].get("containers") or [{}])[0]
        ns = pod["metadata"]["namespace"]
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef") or source.get("configMapRef")
            if ref:
                env.update(self._source(ns, "secrets" if "secretRef" in source else "configmaps",
                                        ref["name"], None, bool(ref.get("optional"))))
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            value_from = var.get("valueFrom") or {}
            for kind, ref_name in (("secrets", "secretKeyRef"),
                                   ("configmaps", "configMapKeyRef")):
                ref = value_from.get(ref_name)
                if ref:
                    found = self._source(ns, kind, ref["name"], ref["key"],
                                         bool(ref.get("optional")))
                    if ref["key"] in found:
                        env[var["name"]] = found[ref["key"]]
        return env

    def _source(self, ns: str, kind: str, name: str, key: str | None,
                optional: bool) -> dict[str, str]:
        obj = self.store.get(kind, ns, name)
        if obj is None:
            if optional:
                return {}
            raise MissingReference(f'{kind[:-1]} "{name}" not found')
        if kind == "secrets":
            values = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        else:
            values = dict(obj.get("data") or {})
        if key is not None and key not in values and not optional:
            raise MissingReference(f"couldn't find key {key} in {kind[:-1].title()} {ns}/{name}")
        return values

    def _set_status(self, running: RunningPod, **changes: Any) -> None:
        pod = self.store.get(PODS, running.namespace, running.name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        status = clone(pod.get("status") or {})
        status.update(changes)
        pod["status"] = status
        self.store.write_status(by_key(PODS), pod)

    def _status(self, running: RunningPod, started_at: str, ready: bool) -> dict[str, Any]:
        flag = "True" if ready else "False"
        reason = {} if ready else {"reason": "ContainersNotReady",
                                   "message": f"containers with unready status: "
                                              f"[{running.container}]"}
        return {
            "phase": "Running", "startTime": started_at, "hostIP": "10.0.0.1",
            "podIP": f"10.244.0.{(abs(hash(running.name)) % 250) + 2}",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True",
                 "lastTransitionTime": started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started_at},
                {"type": "Ready", "status": flag, "lastTransitionTime": rfc3339(), **reason},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": rfc3339(),
                 **reason},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started_at},
            ],
            "containerStatuses": [{
                "name": running.container, "ready": ready, "restartCount": 0, "started": True,
                "image": "intelliprompt/backend:sandbox", "imageID": "",
                "containerID": f"containerd://{running.name}",
                "state": {"running": {"startedAt": started_at}},
            }],
        }

    async def _run(self, running: RunningPod) -> None:
        while True:
            pod = self.store.get(PODS, running.namespace, running.name)
            if pod is None:
                return
            try:
                running.env = self._resolve_env(pod)
                break
            except MissingReference as exc:
                self._set_status(running, phase="Pending", containerStatuses=[{
                    "name": running.container, "ready": False, "restartCount": 0,
                    "started": False, "image": "intelliprompt/backend:sandbox", "imageID": "",
                    "state": {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": str(exc)}}}])
                await asyncio.sleep(0.5)
        started_at = rfc3339()
        running.started = True
        self._set_status(running, **self._status(running, started_at, False))
        application, checks = backend.key_checks(running.env)
        running.say((application or backend.BACKEND).starting)
        await asyncio.sleep(self._start_seconds(pod))
        if application is not None and not await self._checks(running, application, checks):
            return
        running.ready = True
        self._set_status(running, **self._status(running, started_at, True))

    def _start_seconds(self, pod: dict[str, Any]) -> float:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        try:
            return max(0.0, float(annotations.get(START_SECONDS, self.start_delay)))
        except ValueError:
            return self.start_delay

    async def _checks(self, running: RunningPod, application: Application,
                      checks: list[KeyCheck]) -> bool:
        """The backend's PostgreSQL login (when it has one), then each key check, in the
        emulators' order; a refused credential is fatal."""
        env = running.env

        def retry(result: backend.Check, attempt: int) -> None:
            running.say(f"WARN: {result.reason}, retrying (attempt {attempt})")

        if application is backend.BACKEND and "DB_HOST" in env:
            user = env.get("DB_USER", "")
            running.say(f"Connecting to PostgreSQL as {user} at {env['DB_HOST']}:"
                        f"{env.get('DB_PORT', '5432')}/{env.get('DB_NAME', '')}")
            result = await backend.with_retries(lambda: backend.check_postgres(
                env["DB_HOST"], env.get("DB_PORT", "5432"), env.get("DB_NAME", ""), user,
                env.get("DB_PASSWORD", "")), retry)
            if not result.ok:
                running.say(f"FATAL: {result.reason}")
                return False
            running.say("PostgreSQL connection ok")
        for check in checks:
            probe = check.probe(env)
            if probe is None:
                continue
            result = await backend.with_retries(
                functools.partial(check.ask, self.client, probe), retry)
            if not result.ok:
                running.say(f"FATAL: {result.reason}")
                return False
            running.say(f"{check.label} ok")
        running.say(application.ready)
        return True

    def read_log(self, namespace: str, name: str, params: dict[str, str]) -> str:
        """The pod's log as ``GET .../pods/{name}/log`` returns it."""
        running = self.pods.get((namespace, name))
        container = params.get("container")
        if running is None or not running.started:
            raise bad_request(f'container "{container or "backend"}" in pod "{name}" is '
                              "waiting to start: ContainerCreating")
        if container and container != running.container:
            raise bad_request(f"container {container} is not valid for pod {name}")
        lines = list(running.log)
        if params.get("sinceTime"):
            since = parse(params["sinceTime"])
            lines = [entry for entry in lines if entry[0] >= since]
        if params.get("sinceSeconds"):
            cutoff = now().timestamp() - float(params["sinceSeconds"])
            lines = [entry for entry in lines if entry[0].timestamp() >= cutoff]
        if params.get("tailLines"):
            tail = int(params["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamps = params.get("timestamps") in ("true", "1")
        text = "".join(f"{rfc3339_nano(t) + ' ' if stamps else ''}{line}\n" for t, line in lines)
        if params.get("limitBytes"):
            text = text[: int(params["limitBytes"])]
        return text

    def ready_pods(self, namespace: str, labels: dict[str, str]) -> list[RunningPod]:
        """Ready pods of the namespace whose labels include ``labels``, by name."""
        found = [p for (ns, _), p in self.pods.items() if ns == namespace and p.ready
                 and all(p.labels.get(k) == v for k, v in labels.items())]
        return sorted(found, key=lambda p: p.name)
