"""Anthropic's Admin API on the official ``anthropic`` client (implements ``KeyProvider``).

Keys cannot be created through the API: a person makes them in the console. The API lists
them (with their ``partial_key_hint`` and ``expires_at``) and sets their status: ``inactive``
(it could be made active again) or ``archived`` (it never can). The client keeps these
calls under ``beta.organization.api_keys``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import anthropic
from anthropic import Anthropic, Timeout

from secretops.adapters.providers import (
    ATTEMPTS,
    CONNECT_SECONDS,
    PAGE,
    TIMEOUT_SECONDS,
    AdminClient,
    ProviderKeyGone,
    ProviderRefused,
    failure,
    timestamp,
)
from secretops.models import (
    Credential,
    KeyCheck,
    NewProviderKey,
    ProviderKey,
    SecretValue,
    as_credential,
)


def _key(item: Any) -> ProviderKey:
    """Our record of an SDK ``BetaAPIKey``."""
    creator = item.created_by
    scope = item.scope
    return ProviderKey(
        id=item.id,
        name=item.name,
        status=str(item.status),
        created_at=timestamp(item.created_at),
        expires_at=timestamp(item.expires_at),
        redacted_value=item.partial_key_hint,
        extra={
            "workspace_id": getattr(scope, "workspace_id", None),
            "created_by": creator.id if creator is not None else "",
        },
    )


class AnthropicProvider(AdminClient):
    """Anthropic's Admin API (an ``sk-ant-admin`` key): list keys and set their status;
    ``workspace_id`` limits the listing to one workspace."""

    provider = "Anthropic"
    errors = (anthropic.APIError,)

    def __init__(self, base_url: str, admin_key: SecretValue,
                 workspace_id: str | None = None) -> None:
        self._workspace = workspace_id
        self._base_url = base_url.rstrip("/")
        self._client = Anthropic(
            api_key=admin_key.reveal(), base_url=self._base_url, max_retries=ATTEMPTS - 1,
            timeout=Timeout(TIMEOUT_SECONDS, connect=CONNECT_SECONDS),
        )
        self._keys = self._client.beta.organization.api_keys

    def __repr__(self) -> str:
        return f"AnthropicProvider({self._base_url})"

    def close(self) -> None:
        self._client.close()

    @property
    def max_keys(self) -> int | None:
        return None

    @property
    def revocation_is_final(self) -> bool:
        return False

    @property
    def can_create_keys(self) -> bool:
        return False

    def create_key(self, name: str, environment: str | None = None,
                   lifetime: timedelta | None = None,
                   scopes: list[str] | None = None) -> NewProviderKey:
        raise ProviderRefused(
            "Anthropic keys cannot be created through the API: a person creates them in the console"
        )

    def list_keys(self) -> list[ProviderKey]:
        options: dict[str, Any] = {"limit": PAGE}
        if self._workspace:
            options["workspace_id"] = self._workspace
        with self.calling("list keys"):
            return [_key(item) for item in self._keys.list(**options)]

    def get_key(self, key_id: str) -> ProviderKey | None:
        """The key with this id; None when it does not exist."""
        try:
            with self.calling("get key"):
                return _key(self._keys.retrieve(key_id))
        except ProviderKeyGone:
            return None

    def check_key(self, value: SecretValue | Credential) -> KeyCheck:
        """Whether the provider accepts the key (``GET /v1/models``). Only 401 means refused.
        Anthropic's keys carry no scopes (a key is bound to a workspace, and every key may
        list models), so a 403 says the key was authenticated and nothing narrower: such a
        key works, for the application and for whoever holds a leaked copy."""
        try:
            # a copy sharing the connections (closing it would close them); the answer is all
            # that counts, so it is not parsed
            client = self._client.with_options(api_key=as_credential(value).secret.reveal())
            client.models.with_raw_response.list()
        except anthropic.AuthenticationError:
            return KeyCheck.REFUSED
        except anthropic.PermissionDeniedError:
            return KeyCheck.AUTHENTICATED
        except anthropic.APIError as exc:
            raise failure(self.provider, "check key", exc) from None
        return KeyCheck.WORKS

    def revoke_key(self, key_id: str, final: bool = False,
                   listed: ProviderKey | None = None) -> bool:
        """Set the key's status to ``inactive``, or with ``final`` to ``archived`` (a leaked
        key, or a rotated one once the provider is seen to refuse it). False when the key
        was not active any more."""
        current = listed
        if current is None:
            with self.calling("get key"):
                current = _key(self._keys.retrieve(key_id))
        wanted: Literal["archived", "inactive"] = "archived" if final else "inactive"
        if current.status not in ("active", "inactive") or current.status == wanted:
            return False
        with self.calling("archive key" if final else "deactivate key"):
            self._keys.update(key_id, status=wanted)
        return current.status == "active"
