"""The LLM providers' admin APIs (implements ``KeyProvider``) over ``httpx``.

- :class:`OpenAIProvider`: a new key is a new project service account (its key is shown once,
  in the create answer); keys are listed with their ``redacted_value``; revoking deletes the
  service account that owns the key (or the key, for a key a person owns).
- :class:`AnthropicProvider`: keys cannot be created through the API (a person makes them in
  the console); they are listed with their ``partial_key_hint`` and revoked by setting their
  status to ``inactive``.

Each call is tried up to ``ATTEMPTS`` times while the provider throttles (429), fails (5xx)
or cannot be reached, with jittered exponential backoff that honours ``Retry-After``
(:mod:`secretops.adapters.retry`); 400, 401, 403 and 404 are answered at once. A key creation
is repeated only when the provider cannot have acted on it (429 and 503 answers, a connection
never made): a creation that may have happened is not repeated, and a key it may have left
is an orphan that the rotation revokes by its name. Every failure then becomes
:class:`ProviderUnavailable` (429, 5xx, timeouts, connection errors: retry later) or
:class:`ProviderRefused` (400, 401, 403, 404: do not). Their messages name the provider, the
call, the HTTP status and the provider's error type, and never a key or a response body,
which can echo part of a key.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import httpx

from secretops.adapters.retry import backoff_seconds, is_transient_status, retry_after_seconds
from secretops.errors import NotRetryable, Retryable
from secretops.models import NewProviderKey, ProviderKey, SecretValue, keys_with_value

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
ANTHROPIC_VERSION = "2023-06-01"
_PAGE = 100
ATTEMPTS = 4
NOT_ACTED_ON = (429, 503)


class ProviderUnavailable(Retryable):
    """The provider is throttling, failing or unreachable: retry later."""


class ProviderRefused(NotRetryable):
    """The provider refused the request (bad credentials, missing object, bad input)."""


def _error_type(response: httpx.Response) -> str:
    """The provider's error type (``invalid_api_key``, ``rate_limit_error``...), or ``""``."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    found = error.get("code") or error.get("type") or ""
    return str(found) if isinstance(found, str) and len(found) <= 64 else ""


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


class _HttpProvider(ABC):
    """Shared plumbing: one ``httpx.Client``, error mapping, key lookup by hint."""

    provider = ""

    def __init__(self, base_url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http.base_url})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _admin_headers(self) -> dict[str, str]:
        """Headers that authenticate an Admin API call."""

    @abstractmethod
    def _key_headers(self, value: SecretValue) -> dict[str, str]:
        """Headers that authenticate an ordinary API call with key ``value``."""

    def _send(
        self,
        call: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One request, tried again (see the module doc) while the provider throttles, fails
        or cannot be reached; the last answer (or error) is the caller's. A non-idempotent
        request (by default a POST) is repeated only when it cannot have been acted on."""
        repeatable = method != "POST" if idempotent is None else idempotent
        attempt = 1
        while True:
            asked: float | None = None
            try:
                response = self._http.request(
                    method, path, headers=headers, params=params, json=body
                )
            except httpx.HTTPError as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= ATTEMPTS or not (repeatable or unsent):
                    message = f"{self.provider} {call} failed: {type(exc).__name__}"
                    raise ProviderUnavailable(message) from None
            else:
                status = response.status_code
                again = is_transient_status(status) and (repeatable or status in NOT_ACTED_ON)
                if attempt >= ATTEMPTS or not again:
                    return response
                asked = retry_after_seconds(response.headers)
            time.sleep(backoff_seconds(attempt, asked))
            attempt += 1

    def _failure(self, call: str, response: httpx.Response) -> Exception:
        kind = _error_type(response)
        message = f"{self.provider} {call} failed: HTTP {response.status_code}"
        message += f" ({kind})" if kind else ""
        if is_transient_status(response.status_code):
            return ProviderUnavailable(message)
        return ProviderRefused(message)

    def _admin(
        self,
        call: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        response = self._send(
            call,
            method,
            path,
            self._admin_headers(),
            params=params,
            body=body,
            idempotent=idempotent,
        )
        if response.status_code >= 300:
            raise self._failure(call, response)
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(f"{self.provider} {call} answered with no JSON") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{self.provider} {call} answered with no JSON object")
        return data

    def check_key(self, value: SecretValue) -> bool:
        response = self._send("check key", "GET", "/v1/models", self._key_headers(value))
        if response.status_code == 200:
            return True
        if response.status_code in (401, 403):
            return False
        raise self._failure("check key", response)

    @abstractmethod
    def list_keys(self) -> list[ProviderKey]:
        """Every key the admin key can see."""

    def find_key(self, value: SecretValue) -> ProviderKey | None:
        found = keys_with_value(self.list_keys(), value)
        if len(found) > 1:
            ids = ", ".join(key.id for key in found)
            raise ProviderRefused(f"{self.provider}: several keys fit the value's hint: {ids}")
        return found[0] if found else None


class OpenAIProvider(_HttpProvider):
    """One OpenAI project, through the Admin API (``sk-admin-`` key)."""

    provider = "OpenAI"

    def __init__(
        self,
        base_url: str,
        admin_key: SecretValue,
        project_id: str,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(base_url, timeout)
        self._admin_key = admin_key
        self._project = f"/v1/organization/projects/{project_id}"

    @property
    def can_create_keys(self) -> bool:
        return True

    def _admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._admin_key.reveal()}"}

    def _key_headers(self, value: SecretValue) -> dict[str, str]:
        return {"Authorization": f"Bearer {value.reveal()}"}

    def create_key(self, name: str) -> NewProviderKey:
        """A new service account named ``name``; its key is the new credential."""
        created = self._admin(
            "create service account",
            "POST",
            f"{self._project}/service_accounts",
            body={"name": name},
        )
        api_key = created.get("api_key") or {}
        if not api_key.get("value"):
            raise ProviderUnavailable("OpenAI create service account answered without a key")
        key = ProviderKey(
            id=str(api_key["id"]),
            name=str(created.get("name", name)),
            status="active",
            created_at=_timestamp(api_key.get("created_at")),
            extra={"service_account_id": str(created["id"]), "owner_type": "service_account"},
        )
        return NewProviderKey(key=key, value=SecretValue(str(api_key["value"])))

    def _pages(self, path: str, call: str) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": _PAGE}
            if after:
                params["after"] = after
            listing = self._admin(call, "GET", path, params=params)
            items = listing.get("data") or []
            yield from items
            if not listing.get("has_more") or not items:
                return
            after = str(listing.get("last_id") or items[-1]["id"])

    @staticmethod
    def _key(item: Mapping[str, Any]) -> ProviderKey:
        owner = item.get("owner") or {}
        owner_type = str(owner.get("type", ""))
        account = owner.get(owner_type) or {}
        extra = {"owner_type": owner_type, "key_name": str(item.get("name", ""))}
        if owner_type == "service_account" and account.get("id"):
            extra["service_account_id"] = str(account["id"])
        return ProviderKey(
            id=str(item["id"]),
            name=str(account.get("name") or item.get("name", "")),
            status="active",
            created_at=_timestamp(item.get("created_at")),
            last_used_at=_timestamp(item.get("last_used_at")),
            redacted_value=item.get("redacted_value"),
            extra=extra,
        )

    def list_keys(self) -> list[ProviderKey]:
        return [self._key(item) for item in self._pages(f"{self._project}/api_keys", "list keys")]

    def revoke_key(self, key_id: str) -> bool:
        """Delete the service account that owns the key (a person's key: the key itself).
        False when the key is already gone."""
        response = self._send(
            "get key", "GET", f"{self._project}/api_keys/{key_id}", self._admin_headers()
        )
        if response.status_code == 404:
            return False
        if response.status_code >= 300:
            raise self._failure("get key", response)
        key = self._key(response.json())
        account = key.extra.get("service_account_id")
        if account:
            path, call = f"{self._project}/service_accounts/{account}", "delete service account"
        else:
            path, call = f"{self._project}/api_keys/{key_id}", "delete key"
        deleted = self._send(call, "DELETE", path, self._admin_headers())
        if deleted.status_code == 404:
            return False
        if deleted.status_code >= 300:
            raise self._failure(call, deleted)
        return True


class AnthropicProvider(_HttpProvider):
    """Anthropic's Admin API (``sk-ant-admin`` key): list keys and set their status."""

    provider = "Anthropic"

    def __init__(
        self,
        base_url: str,
        admin_key: SecretValue,
        workspace_id: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(base_url, timeout)
        self._admin_key = admin_key
        self._workspace = workspace_id

    @property
    def can_create_keys(self) -> bool:
        return False

    def _admin_headers(self) -> dict[str, str]:
        return {"x-api-key": self._admin_key.reveal(), "anthropic-version": ANTHROPIC_VERSION}

    def _key_headers(self, value: SecretValue) -> dict[str, str]:
        return {"x-api-key": value.reveal(), "anthropic-version": ANTHROPIC_VERSION}

    def create_key(self, name: str) -> NewProviderKey:
        raise ProviderRefused(
            "Anthropic keys cannot be created through the API: a person creates them in the console"
        )

    @staticmethod
    def _key(item: Mapping[str, Any]) -> ProviderKey:
        creator = item.get("created_by") or {}
        return ProviderKey(
            id=str(item["id"]),
            name=str(item.get("name", "")),
            status=str(item.get("status", "")),
            created_at=_timestamp(item.get("created_at")),
            redacted_value=item.get("partial_key_hint"),
            extra={
                "workspace_id": item.get("workspace_id"),
                "created_by": str(creator.get("id", "")),
            },
        )

    def list_keys(self) -> list[ProviderKey]:
        keys: list[ProviderKey] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": _PAGE}
            if after:
                params["after_id"] = after
            if self._workspace:
                params["workspace_id"] = self._workspace
            listing = self._admin("list keys", "GET", "/v1/organizations/api_keys", params=params)
            items = listing.get("data") or []
            keys.extend(self._key(item) for item in items)
            if not listing.get("has_more") or not items:
                return keys
            after = str(listing.get("last_id") or items[-1]["id"])

    def revoke_key(self, key_id: str) -> bool:
        """Set the key's status to ``inactive``; False when it was not active any more."""
        path = f"/v1/organizations/api_keys/{key_id}"
        current = self._key(self._admin("get key", "GET", path))
        if current.status != "active":
            return False
        self._admin("deactivate key", "POST", path, body={"status": "inactive"}, idempotent=True)
        return True
