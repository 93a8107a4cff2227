"""What a backend pod does with its credentials: check the OpenAI key, the Anthropic key and
a PostgreSQL login, as the real application does at start and on each request; and what a
CI runner pod does with its AWS access key: ``sts:GetCallerIdentity`` signed with it.

Results carry a reason for the log, never a credential.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

AWS_REFUSALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
                "AccessDenied", "AccessDeniedException", "ExpiredToken",
                "InvalidAccessKeyId", "AuthFailure"}
_botocore_lock = threading.Lock()
_botocore: list[object] = []


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


def _sts_client(endpoint_url: str, region: str, key_id: str, secret: str) -> object:
    """A botocore STS client; clients are made one at a time, from one botocore session
    (making them is not thread-safe), and retry nothing (:func:`with_retries` does)."""
    import botocore.session
    from botocore.config import Config

    with _botocore_lock:
        if not _botocore:
            _botocore.append(botocore.session.get_session())
        session = _botocore[0]
        assert isinstance(session, botocore.session.Session)
        return session.create_client(
            "sts", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=3,
                          read_timeout=10))


def _caller_identity(endpoint_url: str, region: str, key_id: str, secret: str) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sts: Any = _sts_client(endpoint_url, region, key_id, secret)
        sts.get_caller_identity()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in AWS_REFUSALS or status in (401, 403):
            return Check(False, f"AWS access key refused ({status} {code})")
        return Check(False, f"AWS STS error ({status} {code})", status in (0, 429) or
                     status >= 500 or "Throttl" in code)
    except BotoCoreError as exc:
        return Check(False, f"AWS STS unreachable ({type(exc).__name__})", True)
    return Check(True)


async def check_aws_key(endpoint_url: str, region: str, key_id: str, secret: str) -> Check:
    """``sts:GetCallerIdentity`` at ``endpoint_url`` signed with the key (in a thread)."""
    return await asyncio.to_thread(_caller_identity, endpoint_url, region, key_id, secret)


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
