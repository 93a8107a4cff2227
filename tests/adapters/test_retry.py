"""Which failures the flows retry."""

from __future__ import annotations

import httpx
import psycopg
from botocore.exceptions import ClientError, EndpointConnectionError
from kubernetes.client.exceptions import ApiException

from secretops.adapters.retry import is_transient
from secretops.errors import NotRetryable, PendingConflict, Retryable, VerificationFailed


def _aws(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetSecretValue")  # type: ignore[arg-type]


def test_our_errors() -> None:
    assert is_transient(Retryable("x"))
    assert not is_transient(NotRetryable("x"))
    assert not is_transient(PendingConflict("x"))
    assert not is_transient(VerificationFailed("x"))


def test_kubernetes_statuses() -> None:
    for status in (409, 429, 500, 503):
        assert is_transient(ApiException(status=status))
    for status in (400, 401, 403, 404, 422):
        assert not is_transient(ApiException(status=status))


def test_aws_codes() -> None:
    assert is_transient(_aws("ThrottlingException"))
    assert is_transient(_aws("Throttling"))
    assert is_transient(_aws("InternalServiceError", 500))
    assert is_transient(_aws("ServiceUnavailable", 503))
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert not is_transient(_aws("ResourceNotFoundException"))
    assert not is_transient(_aws("AccessDeniedException"))


def test_http_and_postgres() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/v1/models")
    assert is_transient(httpx.ConnectTimeout("slow", request=request))
    assert is_transient(httpx.ConnectError("refused", request=request))
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert not is_transient(
        psycopg.OperationalError('FATAL:  password authentication failed for user "x"')
    )
    assert not is_transient(ValueError("bad input"))
