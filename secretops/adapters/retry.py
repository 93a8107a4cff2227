"""Which failures are worth a retry, and how long to wait before one.

:func:`is_transient` is the flows' Prefect ``retry_condition_fn`` test: a throttled, busy or
unreachable system is retried with backoff; a refused credential, a missing object or a bad
request is not, because repeating it cannot change the answer.

:func:`backoff_seconds` and :func:`retry_after_seconds` pace an adapter's own retries of one
call: exponential backoff with full jitter (so parallel runs that failed together do not
retry together), never shorter than the wait the server asked for, never longer than
``MAX_WAIT_SECONDS``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from secretops.errors import NotRetryable, PendingConflict, Retryable

if TYPE_CHECKING:
    import psycopg
    from botocore.exceptions import ClientError

_TRANSIENT_AWS_CODES = frozenset(
    {
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
    }
)


BASE_SECONDS = 0.25
MAX_WAIT_SECONDS = 10.0


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a throttled or busy server asked for: ``retry-after-ms`` (OpenAI), else
    ``Retry-After`` in seconds or as an HTTP date; None when it asked for nothing readable."""
    millis = headers.get("retry-after-ms")
    try:
        if millis:
            return max(0.0, float(millis) / 1000)
        after = headers.get("retry-after")
        if not after:
            return None
        if after.strip().isdigit():
            return float(after)
        moment = parsedate_to_datetime(after)
    except (ValueError, TypeError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def backoff_seconds(attempt: int, asked: float | None = None) -> float:
    """How long to wait after failed attempt number ``attempt`` (1, 2, ...): a random time up
    to ``BASE_SECONDS * 2 ** (attempt - 1)``, at least ``asked`` (a server's Retry-After), at
    most ``MAX_WAIT_SECONDS``."""
    jittered = random.uniform(0, BASE_SECONDS * 2 ** (attempt - 1))
    return min(MAX_WAIT_SECONDS, max(jittered, asked or 0.0))


def is_transient_status(status: int) -> bool:
    """HTTP statuses that a later identical request may not get: 408, 409, 429 and 5xx."""
    return status in (408, 409, 429) or 500 <= status <= 599


def _aws_transient(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code.startswith("Throttl") or code in _TRANSIENT_AWS_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and status >= 500


def _pg_refused(exc: psycopg.OperationalError) -> bool:
    """A refused login (SQLSTATE class 28) or a missing database (3D) is not transient."""
    state = exc.sqlstate or ""
    if state.startswith(("28", "3D")):
        return True
    text = str(exc)
    refusals = ("authentication failed", "not permitted to log in", "does not exist")
    return any(refusal in text for refusal in refusals)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a transient failure that a retry with backoff may fix. The client
    libraries are imported here, not with this module: the adapters import it for
    :func:`is_transient_status`, and an adapter must not load every other one's library."""
    import httpx
    import psycopg
    from botocore.exceptions import ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, Retryable):
        return True
    if isinstance(exc, NotRetryable | PendingConflict):
        return False
    if isinstance(exc, ApiException):
        return is_transient_status(int(exc.status or 0))
    if isinstance(exc, ClientError):
        return _aws_transient(exc)
    if isinstance(exc, BotoConnectionError | ReadTimeoutError):
        return True
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return is_transient_status(exc.response.status_code)
    if isinstance(exc, psycopg.OperationalError):
        return not _pg_refused(exc)
    return isinstance(exc, Urllib3Error | ConnectionError | TimeoutError)


def retry_condition(task: object, task_run: object, state: object) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failed state holds a transient error."""
    result = getattr(state, "result", None)
    if result is None:
        return False
    try:
        exc = result(raise_on_failure=False)
    except Exception as error:  # a state whose result cannot be loaded: judge the load error
        return is_transient(error)
    return isinstance(exc, BaseException) and is_transient(exc)
