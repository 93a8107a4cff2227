"""What a pod does with its credentials at start (and the backend on each request): the
checks the kubelet runs before a pod is ready. A PostgreSQL login is the backend's own
(:func:`check_postgres`); a provider's key is checked by the provider's emulator
(:class:`sandbox.emulators.KeyCheck`), the LLM APIs' through :func:`check_models`.
:func:`key_checks` says which checks a pod's environment calls for.

Results carry a reason for the log, never a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
import psycopg

from sandbox import emulators
from sandbox.emulators import Application, Check, KeyCheck

__all__ = ["BACKEND", "Check", "check_models", "check_postgres", "key_checks", "with_retries"]

BACKEND = Application(deployment="backend", starting="Starting IntelliPrompt backend",
                      ready="API initialized")
"""IntelliPrompt's backend: it holds the keys of every emulator with a ``backend`` key, and a
PostgreSQL login."""


def key_checks(env: Mapping[str, str]) -> tuple[Application | None, list[KeyCheck]]:
    """The application a pod with ``env`` runs and the key checks it makes at start: the
    backend (a PostgreSQL login, or a key of a backend emulator) with those keys' checks, or
    an emulator's own application with its check, or neither (no checks)."""
    registered = emulators.registry().values()
    backend = [e.check for e in registered if e.backend is not None and e.check.holds(env)]
    if backend or "DB_HOST" in env:
        return BACKEND, backend
    for emulator in registered:
        if emulator.application is not None and emulator.check.holds(env):
            return emulator.application, [emulator.check]
    return None, []


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or "")
    return ""


async def check_models(client: httpx.AsyncClient, provider: str, base_url: str,
                       headers: Mapping[str, str]) -> Check:
    """``GET {base_url}/v1/models`` with the key in ``headers`` (the provider's own
    header); ``provider`` names it in the reason."""
    try:
        response = await client.get(base_url.rstrip("/") + "/v1/models", headers=dict(headers))
    except httpx.HTTPError as exc:
        return Check(False, f"{provider} API unreachable ({type(exc).__name__})", True)
    if response.status_code == 200:
        return Check(True)
    code = _error_code(response)
    detail = f"{response.status_code} {code}".strip()
    if response.status_code in (401, 403):
        return Check(False, f"{provider} API key refused ({detail})")
    transient = response.status_code == 429 or response.status_code >= 500
    return Check(False, f"{provider} API error ({detail})", transient)


async def check_postgres(host: str, port: str, dbname: str, user: str, password: str) -> Check:
    """A new connection and ``SELECT 1``."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            host=host, port=int(port or 5432), dbname=dbname, user=user, password=password,
            connect_timeout=3)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "does not exist" in text \
                or "no password supplied" in text:
            return Check(False, f'PostgreSQL login failed for user "{user}"')
        return Check(False, "PostgreSQL unreachable", True)
    try:
        async with conn:
            await conn.execute("SELECT 1")
    except psycopg.Error:
        return Check(False, "PostgreSQL query failed", True)
    return Check(True)


async def with_retries(attempt: Callable[[], Awaitable[Check]],
                       on_retry: Callable[[Check, int], None], tries: int = 4,
                       delay: float = 0.2) -> Check:
    """Run ``attempt`` until it passes, fails for good, or ``tries`` transient failures have
    passed; ``on_retry`` hears of each transient failure before the next try."""
    result = await attempt()
    for n in range(1, tries):
        if result.ok or not result.transient:
            return result
        on_retry(result, n)
        await asyncio.sleep(delay * (2 ** (n - 1)))
        result = await attempt()
    return result
