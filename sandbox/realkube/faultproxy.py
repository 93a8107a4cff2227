"""The fault proxy: a TLS reverse proxy in front of the real kube-apiserver, wrapped by the
sandbox's :class:`~sandbox.faults.FaultMiddleware` with the ``kubernetes`` knobs, so that a
409 storm, an error rate, latency or an outage reach secretops' clients as they do on the
sandbox's own API server.

Only the kubeconfig written for users (the one the inventory names) points here; the control
plane's components, ESO and the sandbox's kubelet talk to kube-apiserver directly. Every
request is forwarded as it came (method, path, query string, headers with the caller's bearer
token and impersonation headers, body), so the API server authenticates, authorizes and
audits the caller, never the proxy, which has no credentials of its own. Answers are streamed
back as they arrive (a watch, ``kubectl logs``), undecoded. A request the knobs fail never
reaches the API server, so its audit log does not record it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.faults import FaultMiddleware, Faults, kube_status

EMULATOR = "kubernetes"
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"proxy-connection",
})


def _forwardable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-cased names) without the hop-by-hop ones, those ``Connection``
    names included."""
    named = {name.strip().lower() for key, value in headers if key.lower() == b"connection"
             for name in value.split(b",")}
    return [(key.lower(), value) for key, value in headers
            if key.lower() not in HOP_BY_HOP and key.lower() not in named]


class ApiProxy:
    """The ASGI app that forwards every HTTP request to ``upstream`` (kube-apiserver)."""

    def __init__(self, upstream: str, ca_file: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.client = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(ca_file)), trust_env=False,
            timeout=httpx.Timeout(10.0, read=None),  # a watch may be quiet for minutes
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websocket upgrades (exec, attach, port-forward)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = _forwardable(list(scope["headers"]))
        client = scope.get("client")
        if client:
            forwarded = [v for k, v in headers if k == b"x-forwarded-for"]
            headers = [(k, v) for k, v in headers if k != b"x-forwarded-for"]
            headers.append((b"x-forwarded-for",
                            b", ".join([*forwarded, str(client[0]).encode()])))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request = httpx.Request(scope["method"], self.upstream + target.decode("latin-1"),
                                headers=headers, content=bytes(body))
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _answer(send, 502, f"the API server did not answer the proxy: "
                          f"{type(exc).__name__}")
            return
        try:
            await _relay(response, receive, send)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


async def _answer(send: Send, status: int, message: str) -> None:
    body = kube_status(status, message=message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _relay(response: httpx.Response, receive: Receive, send: Send) -> None:
    """Send ``response`` on, chunk by chunk as it arrives; stop reading it as soon as the
    caller goes away (a watch closed by its client)."""

    async def pump() -> None:
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": _forwardable(list(response.headers.raw))})
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def gone() -> None:
        message: Message = {}
        while message.get("type") != "http.disconnect":
            message = await receive()

    relay, watch = asyncio.ensure_future(pump()), asyncio.ensure_future(gone())
    try:
        await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay, watch):
            task.cancel()
        for task in (relay, watch):
            # the API server closing a stream midway (it stops) ends the caller's too
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


class LateFaults:
    """:class:`FaultMiddleware` with the registry ``resolve`` gives at each request (the one
    the sandbox's control endpoint serves, made after the proxy starts); none yet, no faults."""

    def __init__(self, app: ASGIApp, resolve: Callable[[], Faults | None]) -> None:
        self.app, self.resolve = app, resolve
        self._wrapped: tuple[Faults, FaultMiddleware] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.resolve()
        if faults is None:
            await self.app(scope, receive, send)
            return
        if self._wrapped is None or self._wrapped[0] is not faults:
            self._wrapped = (faults, FaultMiddleware(self.app, faults, EMULATOR))
        await self._wrapped[1](scope, receive, send)


def listen() -> socket.socket:
    """A bound, listening loopback socket on an ephemeral port (held until served)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class FaultProxy:
    """The proxy served on ``sock`` with TLS (``cert_file``, ``key_file``), forwarding to
    ``upstream`` (verified with ``ca_file``), its faults from ``faults`` or ``resolve``."""

    def __init__(self, sock: socket.socket, upstream: str, *, cert_file: Path, key_file: Path,
                 ca_file: Path, faults: Faults | None = None,
                 resolve: Callable[[], Faults | None] = lambda: None) -> None:
        self.sock = sock
        self.proxy = ApiProxy(upstream, ca_file)
        app: ASGIApp = (FaultMiddleware(self.proxy, faults, EMULATOR) if faults is not None
                        else LateFaults(self.proxy, resolve))
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False,
            ssl_certfile=str(cert_file), ssl_keyfile=str(key_file),
            server_header=False, date_header=False, timeout_graceful_shutdown=1))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    async def start(self) -> None:
        asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.proxy.aclose()
