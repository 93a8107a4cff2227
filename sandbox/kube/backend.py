"""What a backend pod does with its credentials: check the OpenAI key, the Anthropic key and
a PostgreSQL login, as the real application does at start and on each request.

Results carry a reason for the log, never a credential.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psycopg


@dataclass(frozen=True)
class Check:
    """The outcome of one check. ``transient`` failures are worth a retry."""

    ok: bool
    reason: str = ""
    transient: bool = False


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or "")
    return ""


async def check_provider(client: httpx.AsyncClient, provider: str, base_url: str,
                         key: str) -> Check:
    """``GET {base_url}/v1/models`` with the key, in the provider's own header."""
    if provider == "OpenAI":
        headers = {"Authorization": f"Bearer {key}"}
    else:
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    try:
        response = await client.get(base_url.rstrip("/") + "/v1/models", headers=headers)
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
