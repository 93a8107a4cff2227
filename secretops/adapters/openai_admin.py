"""OpenAI's Admin API on the official ``openai`` client (implements ``KeyProvider``).

A new key is minted on the environment's service account
(``POST /organization/projects/{project}/service_accounts/{account}/api_keys``) with an
expiry, so a key outlives a stopped scheduler by days, not forever. Where no account is set
for the environment, or the organization refuses keys per account, the key is the one a new
service account named after it is created with (no expiry can be set at creation then; it is
set right after). Revoking deletes the key; a service account secretops made for one key
goes with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
import openai
from openai import OpenAI, Timeout

from secretops.adapters.providers import (
    ATTEMPTS,
    CONNECT_SECONDS,
    PAGE,
    TIMEOUT_SECONDS,
    AdminClient,
    ProviderKeyGone,
    ProviderRefused,
    ProviderUnavailable,
    error_type,
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

# names of the service accounts secretops makes, one per key, where keys per account are refused
OWN_ACCOUNT_PREFIX = "secretops-"
# error codes with which an organization refuses keys minted on an existing service account
PER_ACCOUNT_REFUSED = ("per_account_keys_disabled", "unsupported_operation")


def _key(item: Any) -> ProviderKey:
    """Our record of an SDK ``ProjectAPIKey``."""
    owner = item.owner
    account = owner.service_account if owner is not None else None
    extra = {"owner_type": str(owner.type or "") if owner is not None else "",
             "key_name": item.name}
    if account is not None:
        extra["service_account_id"] = account.id
        extra["service_account_name"] = account.name
    return ProviderKey(
        id=item.id,
        # a key minted on an account carries its own name; the key of an account made for
        # it (or seeded with it) is known by the account's name
        name=(item.name if account is None or item.name.startswith(OWN_ACCOUNT_PREFIX)
              else account.name),
        status="active",
        created_at=timestamp(item.created_at),
        last_used_at=timestamp(item.last_used_at),
        expires_at=timestamp(getattr(item, "expires_at", None)),
        redacted_value=item.redacted_value,
        extra=extra,
    )


class OpenAIProvider(AdminClient):
    """One OpenAI project, through the Admin API (an ``sk-admin-`` key).

    ``service_accounts`` maps an environment to the service account its keys are minted
    on."""

    provider = "OpenAI"
    errors = (openai.APIError,)

    def __init__(
        self,
        base_url: str,
        admin_key: SecretValue,
        project_id: str,
        service_accounts: Mapping[str, str] | None = None,
        scopes: Sequence[str] | None = None,
    ) -> None:
        self._project = project_id
        self._scopes = list(scopes) if scopes is not None else None
        self._accounts = dict(service_accounts or {})
        self._base_url = base_url.rstrip("/") + "/v1"
        timeout = Timeout(TIMEOUT_SECONDS, connect=CONNECT_SECONDS)
        self._client = OpenAI(
            admin_api_key=admin_key.reveal(), api_key="", base_url=self._base_url,
            max_retries=ATTEMPTS - 1, timeout=timeout,
        )
        self._projects = self._client.admin.organization.projects
        # creations are not repeated by the client: one that failed may have happened
        self._creating = self._client.with_options(max_retries=0).admin.organization.projects

    def __repr__(self) -> str:
        return f"OpenAIProvider({self._base_url}, project={self._project})"

    def close(self) -> None:
        self._client.close()

    @property
    def max_keys(self) -> int | None:
        return None

    @property
    def revocation_is_final(self) -> bool:
        return True

    @property
    def can_create_keys(self) -> bool:
        return True

    def create_key(self, name: str, environment: str | None = None,
                   lifetime: timedelta | None = None,
                   scopes: Sequence[str] | None = None) -> NewProviderKey:
        """A new key named ``name``, minted on ``environment``'s service account, expiring
        after ``lifetime`` (never, without one), limited to ``scopes`` (all the account's
        permissions, without them; by default the scopes it was built with)."""
        scopes = self._scopes if scopes is None else scopes
        account = self._accounts.get(environment or "")
        if account is not None:
            try:
                return self._mint(account, name, lifetime, scopes)
            except _PerAccountRefused:
                pass
        return self._new_account(name, lifetime, scopes)

    def _mint(self, account: str, name: str, lifetime: timedelta | None,
              scopes: Sequence[str] | None) -> NewProviderKey:
        options: dict[str, Any] = {"name": name}
        if lifetime is not None:
            options["expires_in_seconds"] = int(lifetime.total_seconds())
        if scopes is not None:
            options["scopes"] = list(scopes)
        creating = self._creating.service_accounts.api_keys
        try:
            created = creating.create(account, project_id=self._project, **options)
        except openai.APIStatusError as exc:
            if error_type(exc.body) in PER_ACCOUNT_REFUSED:
                raise _PerAccountRefused from None
            raise self._failure("create service account key", exc, creating=True) from None
        except openai.APIError as exc:
            raise self._failure("create service account key", exc, creating=True) from None
        key = ProviderKey(
            id=created.id, name=created.name, status="active",
            created_at=timestamp(created.created_at),
            expires_at=timestamp(created.expires_at),
            extra={"service_account_id": account, "owner_type": "service_account"},
        )
        return NewProviderKey(key=key, value=SecretValue(created.value))

    def _new_account(self, name: str, lifetime: timedelta | None,
                     scopes: Sequence[str] | None) -> NewProviderKey:
        creating = self._creating.service_accounts
        with self.calling("create service account", creating=True):
            created = creating.create(self._project, name=name)
        api_key = created.api_key
        if api_key is None or not api_key.value:
            raise ProviderUnavailable("OpenAI create service account answered without a key")
        value = SecretValue(api_key.value)
        expires = timestamp(api_key.expires_at)
        if lifetime is not None or scopes is not None:
            options: dict[str, Any] = {}
            if lifetime is not None:
                options["expires_in_seconds"] = int(lifetime.total_seconds())
            if scopes is not None:
                options["scopes"] = list(scopes)
            with self.calling("set key expiry"):
                updated = self._projects.api_keys.update(
                    api_key.id, project_id=self._project, **options)
            expires = timestamp(updated.expires_at)
        key = ProviderKey(
            id=api_key.id, name=created.name, status="active",
            created_at=timestamp(api_key.created_at), expires_at=expires,
            extra={"service_account_id": created.id, "owner_type": "service_account"},
        )
        return NewProviderKey(key=key, value=value)

    def _failure(self, call: str, exc: Exception, creating: bool = False) -> Exception:
        return failure(self.provider, call, exc, creating)

    def list_keys(self) -> list[ProviderKey]:
        """Every enabled key of the project, those of owners who left it too (without
        ``owner_project_access=any`` the listing applies membership-based visibility)."""
        with self.calling("list keys"):
            page = self._projects.api_keys.list(self._project, limit=PAGE,
                                                owner_project_access="any")
            return [_key(item) for item in page]

    def get_key(self, key_id: str) -> ProviderKey | None:
        """The key with this id; None when it no longer exists."""
        try:
            with self.calling("get key"):
                return _key(self._projects.api_keys.retrieve(key_id, project_id=self._project))
        except ProviderKeyGone:
            return None

    def check_key(self, value: SecretValue | Credential) -> KeyCheck:
        """Whether the provider accepts the key: ``GET /v1/models``, and where that is refused
        for want of a scope (a restricted key: 403, or a 401 that names missing scopes), a
        chat completion request with an empty body, which a key allowed to request models
        gets a 400 for (nothing is generated or charged). Only a refusal of the key itself is
        ``REFUSED``: a restricted key works, for the application and for whoever holds a
        leaked copy."""
        # a copy sharing the connections (closing it would close them)
        client = self._client.with_options(api_key=as_credential(value).secret.reveal())
        try:
            client.models.with_raw_response.list()  # the answer is all that counts: unparsed
            return KeyCheck.WORKS
        except openai.APIStatusError as exc:
            if not _wants_scope(exc):
                return self._refused_or_raise(exc)
        except openai.APIError as exc:
            raise self._failure("check key", exc) from None
        try:
            # the client has no call that sends a request it knows to be incomplete
            client.post("/chat/completions", body={}, cast_to=httpx.Response)
        except openai.BadRequestError:
            return KeyCheck.SCOPED  # past the key and its scopes, refused for the empty body
        except openai.APIStatusError as exc:
            if not _wants_scope(exc):
                return self._refused_or_raise(exc)
            return KeyCheck.AUTHENTICATED
        except openai.APIError as exc:
            raise self._failure("check key", exc) from None
        return KeyCheck.SCOPED

    def _refused_or_raise(self, exc: openai.APIStatusError) -> KeyCheck:
        if isinstance(exc, openai.AuthenticationError):
            return KeyCheck.REFUSED
        raise self._failure("check key", exc) from None

    def revoke_key(self, key_id: str, final: bool = False,
                   listed: ProviderKey | None = None) -> bool:
        """Delete the key (a deletion is always final), and the service account secretops
        made for it alone, if it was made so. False when the key is already gone."""
        key = listed if listed is not None else self.get_key(key_id)
        if key is None:
            return False
        account = key.extra.get("service_account_id")
        own = str(key.extra.get("service_account_name", "")).startswith(OWN_ACCOUNT_PREFIX)
        try:
            if account and own and account not in self._accounts.values():
                with self.calling("delete service account"):
                    self._projects.service_accounts.delete(account, project_id=self._project)
            else:
                with self.calling("delete key"):
                    self._projects.api_keys.delete(key_id, project_id=self._project)
        except ProviderKeyGone:
            return False
        return True


def _wants_scope(exc: openai.APIStatusError) -> bool:
    """A refusal for want of a scope: the key was authenticated (OpenAI answers 403, and for
    some restricted keys 401, "You have insufficient permissions ... Missing scopes: ...")."""
    return (isinstance(exc, openai.PermissionDeniedError) or exc.code == "insufficient_permissions"
            or "Missing scopes" in exc.message)


class _PerAccountRefused(Exception):
    """The organization does not allow keys minted on an existing service account."""


__all__ = ["OpenAIProvider", "ProviderRefused"]
