"""A Service of one namespace: each request goes to the next ready backend pod (round
robin), which answers with its start-up credentials: a new PostgreSQL connection and each
key's check by its emulator (:func:`sandbox.kube.backend.key_checks`). A load generator sees
every request that a rotation breaks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from sandbox.kube import backend
from sandbox.kube.pods import Kubelet, RunningPod


async def answer(pod: RunningPod, client: httpx.AsyncClient) -> backend.Check:
    """What ``pod`` answers to one request: the first failing check, or ok."""
    env = pod.env
    checks: list[Awaitable[backend.Check]] = []
    if "DB_HOST" in env:
        checks.append(backend.check_postgres(
            env["DB_HOST"], env.get("DB_PORT", "5432"), env.get("DB_NAME", ""),
            env.get("DB_USER", ""), env.get("DB_PASSWORD", "")))
    _, key_checks = backend.key_checks(env)
    for check in key_checks:
        probe = check.probe(env)
        if probe is not None:
            checks.append(check.ask(client, probe))
    for result in await asyncio.gather(*checks):
        if not result.ok:
            return result
    return backend.Check(True)


class ServiceEndpoint:
    """ASGI app for the Service of ``namespace`` selecting pods with ``selector`` labels."""

    def __init__(self, kubelet: Kubelet, client: httpx.AsyncClient, namespace: str,
                 selector: dict[str, str]) -> None:
        self.kubelet = kubelet
        self.client = client
        self.namespace = namespace
        self.selector = selector
        self._turn = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> JSONResponse:
        pods = self.kubelet.ready_pods(self.namespace, self.selector)
        if not pods:
            return JSONResponse({"pod": None, "error": "no ready backend pod"}, status_code=503)
        pod = pods[next(self._turn) % len(pods)]
        result = await answer(pod, self.client)
        if result.ok:
            return JSONResponse({"pod": pod.name, "ok": True})
        return JSONResponse({"pod": pod.name, "error": result.reason}, status_code=503)
