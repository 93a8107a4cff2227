"""Where a failure is retried, and how often: one layer per failure, one budget.

Every failure is retried in exactly one place, never in two:

- **A call** to a system whose official client retries (the OpenAI and Anthropic clients,
  botocore, the Kubernetes adapter's requests): that client asks again while the system
  throttles (429), fails (5xx) or cannot be reached, up to :data:`CALL_ATTEMPTS` attempts in
  all, with jittered exponential backoff that honours the wait the server asks for. What
  outlasts them is :class:`~secretops.errors.Unavailable`, final for the step.
- **A step** (a runbook task) whose failure no call retried: a PostgreSQL connection refused
  or cut (psycopg does not retry), raised as :class:`~secretops.errors.Retryable`. Prefect
  runs the step again, up to ``tasks.common.RETRIES`` times with backoff, when
  :func:`is_retried_by_step` says so.

A refusal (400, 401, 403, 404, a refused login, a bad request) is retried nowhere. A 409 from
the Kubernetes API is not a failure to retry but a concurrent writer: the adapter reads the
object again and redoes its write (``secretops.adapters.kube``, ``WRITE_ATTEMPTS``).

:func:`is_transient` says whether a client's exception is worth another attempt at all, which
the adapters use to map each client's errors; :func:`backoff_seconds` and
:func:`retry_after_seconds` pace the calls that secretops retries itself.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from secretops.errors import NotRetryable, PendingConflict, Retryable, Unavailable

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


CALL_ATTEMPTS = 8
"""The attempts of one call, the first included, in every adapter whose client retries. At
the sandbox's 30 % error rate a call fails for good once in 15,000 (0.3 ** 8), so a rotation
of about 60 calls rides it out. A system down for good is given up on once the client's
waits add up: about 13 s for the Kubernetes API (0.1 s doubling), 24 to 32 s for OpenAI and
Anthropic (0.5 s doubling up to 8 s), 35 s on average and at most 71 s for AWS (botocore's
standard mode, up to 20 s a wait), or sooner when the server asks for shorter waits."""

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

    if isinstance(exc, Retryable | Unavailable):
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


def is_retried_by_step(exc: BaseException) -> bool:
    """Whether a runbook step that failed with ``exc`` is run again (Prefect's
    ``retry_condition_fn``, ``tasks.common``): only for a transient failure that no call
    retried, a :class:`~secretops.errors.Retryable`. An :class:`~secretops.errors.Unavailable`
    or a client's own exception was retried by its call already, and a refusal never is."""
    return isinstance(exc, Retryable)
