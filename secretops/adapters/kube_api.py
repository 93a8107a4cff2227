"""What every part of the Kubernetes adapter shares: its two errors and how an API answer
becomes one, the merge-patch content type, the API's time stamps, and :class:`Api`, what the
adapter's parts (rollouts, External Secrets, access) use of ``KubeCluster``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from secretops.adapters.retry import is_transient_status
from secretops.errors import NotRetryable, Unavailable

MERGE_PATCH = "application/merge-patch+json"


class Api(Protocol):
    """The requests of one cluster, as ``secretops.adapters.kube.KubeCluster`` makes them."""

    eso_version: str | None

    @property
    def apps(self) -> Any: ...

    @property
    def custom(self) -> Any: ...

    @property
    def rbac(self) -> Any: ...

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str | None = None,
                _preload_content: bool = False, _request_timeout: Any = None) -> Any: ...

    def call(self, call: str, target: str, method: Callable[..., Any], *args: Any,
             **kw: Any) -> Any: ...

    def get(self, call: str, target: str, method: Callable[..., Any], *args: Any,
            **kw: Any) -> dict[str, Any] | None: ...

    def watch(self, call: str, target: str, method: Callable[..., Any], *args: Any,
              **kw: Any) -> Iterator[dict[str, Any]]: ...

    def pod_log(self, namespace: str, pod: str) -> str | None: ...


class KubeUnavailable(Unavailable):
    """The API server is busy, conflicting or unreachable (a 409: a concurrent writer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeRefused(NotRetryable):
    """The API server refused the request."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _reason(exc: ApiException) -> str:
    """The ``reason`` of the API's Status answer (``Conflict``, ``NotFound``), if any."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason or "")
    return str(body.get("reason") or exc.reason or "") if isinstance(body, dict) else ""


def kube_error(call: str, target: str, exc: Exception) -> Exception:
    """Our error for a failed API call."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = f"Kubernetes {call} {target} failed: HTTP {status} {_reason(exc)}".strip()
        if is_transient_status(status):
            return KubeUnavailable(message, status)
        return KubeRefused(message, status)
    return KubeUnavailable(f"Kubernetes {call} {target} failed: {type(exc).__name__}")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
