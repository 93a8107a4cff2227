"""The OpenAI emulator's records: projects, service accounts, their API keys, admin keys.

Shapes follow the official ``openai`` client's types (``ProjectAPIKey``,
``APIKeyCreateResponse``, ``ServiceAccountCreateResponse``, ``ProjectServiceAccount``): the
contract tests in ``tests/contract`` parse every answer with them, extra or missing fields
failing. A service account holds any number of keys; a key may expire (``expires_at``), may
be restricted to ``scopes`` (kept here: the API's key object does not show them) and may
have a monthly ``spend_limit``. An account that has left the project
(:meth:`OpenAIState.set_owner_project_access`) keeps its keys, listed with
``owner_project_access: inactive``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.providers import URL_SAFE, random_chars

DEFAULT_PROJECT = "proj_intelliprompt"
PREFIXES = ("sk-svcacct-", "sk-admin-", "sk-proj-", "sk-")
MAX_KEY_LIFETIME_SECONDS = 400 * 86400
READ_SCOPES = ("api.model.read", "api.all.read")
REQUEST_SCOPES = ("model.request", "api.all.write")
KEEP: Any = object()  # an update argument that was not given


def new_key_value(prefix: str) -> str:
    """A value shaped like OpenAI's: prefix, random text around ``T3BlbkFJ`` ("OpenAI")."""
    return f"{prefix}{random_chars(74, URL_SAFE)}T3BlbkFJ{random_chars(74, URL_SAFE)}"


def redacted_value(value: str, form: str = "dots") -> str:
    """The listing's form of a key: ``sk-svcacct-abc...wxyz`` (``dots``) or, as some
    listings show it, ``sk-svcac****************wxyz`` (``stars``)."""
    if form == "stars":
        return f"{value[:8]}{'*' * 16}{value[-4:]}"
    prefix = next((p for p in PREFIXES if value.startswith(p)), "")
    return f"{value[: len(prefix) + 3]}...{value[-4:]}"


def message_form(value: str) -> str:
    """The form of a wrong key in a 401 message: first 8 and last 4 characters only."""
    return f"{value[:8]}...{value[-4:]}" if len(value) >= 16 else "*" * len(value)


class Refused(Exception):
    """A request the API refuses: ``status``, the error's ``code`` and ``param``; the message
    is the API's, never holding a key."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def spend_limit_json(limit: int | None) -> dict[str, Any] | None:
    """A ``ProjectAPIKeySpendLimit`` for a monthly limit of ``limit`` US cents."""
    if limit is None:
        return None
    return {"currency": "USD", "interval": "month", "threshold_amount": limit,
            "enforcement": {"status": "inactive"}}


@dataclass
class ServiceAccount:
    id: str
    name: str
    project_id: str
    created_at: int
    role: str = "member"
    key_id: str | None = None  # the key it was created with
    in_project: bool = True  # False once it left the project (its keys stay, inactive)

    def to_json(self) -> dict[str, Any]:
        """A ``ProjectServiceAccount``."""
        return {"object": "organization.project.service_account", "id": self.id,
                "name": self.name, "role": self.role, "created_at": self.created_at}

    def owner_json(self) -> dict[str, Any]:
        """The key owner's form of the account (``OwnerServiceAccount``)."""
        return {"id": self.id, "name": self.name, "role": self.role,
                "created_at": self.created_at}


@dataclass
class OpenAIKey:
    """A project API key owned by a service account. ``value`` is never shown by the API
    after creation (and not by ``repr`` either)."""

    id: str
    value: str = field(repr=False)
    name: str
    project_id: str
    created_at: int
    service_account_id: str
    last_used_at: int | None = None
    expires_at: int | None = None
    scopes: tuple[str, ...] = ()
    spend_limit: int | None = None  # US cents a month

    @functools.cached_property
    def redacted_value(self) -> str:
        return redacted_value(self.value)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def can_read_models(self) -> bool:
        return not self.scopes or any(scope in READ_SCOPES for scope in self.scopes)

    def can_request_models(self) -> bool:
        return not self.scopes or any(scope in REQUEST_SCOPES for scope in self.scopes)


class OpenAIState:
    """OpenAI's records: projects, their service accounts and keys, and admin keys.

    ``per_account_keys`` False refuses keys minted on an existing account (an organization
    that does not allow them); ``redaction`` says which form listings show."""

    def __init__(self, projects: tuple[str, ...] = (DEFAULT_PROJECT,)) -> None:
        self._lock = threading.Lock()
        self.projects: set[str] = set(projects)
        self._admin_keys: dict[str, bool] = {}  # value -> may write
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.keys: dict[str, OpenAIKey] = {}
        self._by_value: dict[str, str] = {}  # key value -> key id: every request looks one up
        self.per_account_keys = True
        self.max_key_lifetime_seconds = MAX_KEY_LIFETIME_SECONDS
        self.redaction: Callable[[], str] = lambda: "dots"

    def create_admin_key(self, read_only: bool = False) -> str:
        value = new_key_value("sk-admin-")
        with self._lock:
            self._admin_keys[value] = not read_only
        return value

    def is_admin(self, value: str) -> bool:
        with self._lock:
            return value in self._admin_keys

    def admin_may_write(self, value: str) -> bool:
        with self._lock:
            return self._admin_keys.get(value, False)

    def _check_expiry(self, seconds: int | None) -> None:
        if seconds is not None and not 0 < seconds <= self.max_key_lifetime_seconds:
            raise Refused(400, f"expires_in_seconds must be between 1 and "
                          f"{self.max_key_lifetime_seconds} (the organization's maximum key "
                          "lifetime).", "invalid_expiration", "expires_in_seconds")

    def _add_key(self, project_id: str, account_id: str, name: str, stamp: int,
                 expires_in_seconds: int | None, scopes: Sequence[str],
                 spend_limit: int | None = None) -> OpenAIKey:
        expires = stamp + expires_in_seconds if expires_in_seconds is not None else None
        key = OpenAIKey(id=f"key_{random_chars(16)}", value=new_key_value("sk-svcacct-"),
                        name=name, project_id=project_id, created_at=stamp,
                        service_account_id=account_id, expires_at=expires, scopes=tuple(scopes),
                        spend_limit=spend_limit)
        self.keys[key.id] = key
        self._by_value[key.value] = key.id
        return key

    def create_service_account(self, project_id: str, name: str, *,
                               expires_in_seconds: int | None = None,
                               scopes: Sequence[str] = (), spend_limit: int | None = None,
                               with_key: bool = True) -> tuple[ServiceAccount, str]:
        """A new service account with its key; returns the account and the key value.
        Without ``with_key`` (``create_service_account_only``) the account has role ``none``
        and no key, and the value returned is empty."""
        if not with_key and expires_in_seconds is not None:
            raise Refused(400, "expires_in_seconds cannot be set when "
                          "create_service_account_only is true.", None, "expires_in_seconds")
        self._check_expiry(expires_in_seconds)
        stamp = int(time.time())
        account = ServiceAccount(f"svc_acct_{random_chars(24)}", name, project_id, stamp,
                                 role="member" if with_key else "none")
        with self._lock:
            self.projects.add(project_id)
            self.service_accounts[account.id] = account
            if not with_key:
                return account, ""
            key = self._add_key(project_id, account.id, "Secret Key", stamp, expires_in_seconds,
                                scopes, spend_limit)
            account.key_id = key.id
        return account, key.value

    def mint_service_account_key(self, project_id: str, name: str,
                                 expires_in_seconds: int | None = None,
                                 scopes: Sequence[str] = ()) -> tuple[str, str]:
        """Seed a key as the admin API would, on a new service account named ``name``:
        returns ``(key_id, value)``."""
        account, value = self.create_service_account(
            project_id, name, expires_in_seconds=expires_in_seconds, scopes=scopes)
        assert account.key_id is not None
        return account.key_id, value

    def create_account_key(self, project_id: str, account_id: str, name: str,
                           expires_in_seconds: int | None = None,
                           scopes: Sequence[str] = (),
                           spend_limit: int | None = None) -> OpenAIKey:
        """A new key of an existing service account (``POST .../api_keys`` of the account)."""
        if not self.per_account_keys:
            raise Refused(400, "This organization does not allow API keys to be created for "
                          "existing service accounts.", "per_account_keys_disabled")
        self._check_expiry(expires_in_seconds)
        with self._lock:
            account = self.service_accounts.get(account_id)
            if account is None or account.project_id != project_id:
                raise Refused(404, f"No such service account: '{account_id}'.")
            return self._add_key(project_id, account_id, name, int(time.time()),
                                 expires_in_seconds, scopes, spend_limit)

    def update_service_account(self, account_id: str, name: str | None = None,
                               role: str | None = None) -> ServiceAccount:
        with self._lock:
            account = self.service_accounts[account_id]
            if name is not None:
                account.name = name
            if role is not None:
                account.role = role
            return account

    def set_owner_project_access(self, account_id: str, active: bool) -> None:
        """Mark the service account as having left the project (``active`` False) or being
        back in it. Its keys stay; listings show them as ``owner_project_access: inactive``,
        and only with ``owner_project_access=inactive`` or ``any``."""
        with self._lock:
            self.service_accounts[account_id].in_project = active

    def update_key(self, key_id: str, expires_in_seconds: int | None = None,
                   scopes: Sequence[str] | None = None,
                   spend_limit: int | None = KEEP) -> OpenAIKey:
        """Change a key's expiry (counted from now), scopes or spend limit (None removes
        it). An expired key cannot be updated."""
        with self._lock:
            key = self.keys[key_id]
            if key.expired():
                raise Refused(400, "Expired API keys cannot be updated.", "key_expired")
            self._check_expiry(expires_in_seconds)
            if expires_in_seconds is not None:
                key.expires_at = int(time.time()) + expires_in_seconds
            if scopes is not None:
                key.scopes = tuple(scopes)
            if spend_limit is not KEEP:
                key.spend_limit = spend_limit
            return key

    def use_key(self, value: str) -> OpenAIKey | None:
        """The active key with this value, marked as used now; None if there is none (or it
        expired)."""
        with self._lock:
            key = self.keys.get(self._by_value.get(value, ""))
            if key is None or key.expired():
                return None
            key.last_used_at = int(time.time())
            return key

    def key_for_value(self, value: str) -> OpenAIKey | None:
        with self._lock:
            return self.keys.get(self._by_value.get(value, ""))

    def project_keys(self, project_id: str) -> list[OpenAIKey]:
        with self._lock:
            keys = [key for key in self.keys.values() if key.project_id == project_id]
        return sorted(keys, key=lambda key: (key.created_at, key.id))

    def project_accounts(self, project_id: str) -> list[ServiceAccount]:
        with self._lock:
            accounts = [a for a in self.service_accounts.values() if a.project_id == project_id]
        return sorted(accounts, key=lambda account: (account.created_at, account.id))

    def delete_key(self, key_id: str) -> OpenAIKey | None:
        """Delete one key; its service account and other keys stay."""
        with self._lock:
            key = self.keys.pop(key_id, None)
            if key is not None:
                self._by_value.pop(key.value, None)
                account = self.service_accounts.get(key.service_account_id)
                if account is not None and account.key_id == key_id:
                    account.key_id = None
            return key

    def delete_service_account(self, account_id: str) -> ServiceAccount | None:
        """Delete the account with every key it holds."""
        with self._lock:
            account = self.service_accounts.pop(account_id, None)
            if account is not None:
                for key in [k for k in self.keys.values() if k.service_account_id == account_id]:
                    self.keys.pop(key.id)
                    self._by_value.pop(key.value, None)
            return account

    def owner_project_access(self, key: OpenAIKey) -> str:
        """``active`` while the key's service account is in the project, else ``inactive``."""
        with self._lock:
            account = self.service_accounts.get(key.service_account_id)
            return "active" if account is not None and account.in_project else "inactive"

    def key_json(self, key: OpenAIKey) -> dict[str, Any]:
        """A ``ProjectAPIKey``."""
        with self._lock:
            account = self.service_accounts.get(key.service_account_id)
        owner = account.owner_json() if account else {
            "id": key.service_account_id, "name": "", "role": "none", "created_at": 0}
        form = self.redaction()
        return {
            "object": "organization.project.api_key",
            "redacted_value": key.redacted_value if form == "dots"
            else redacted_value(key.value, form),
            "name": key.name,
            "created_at": key.created_at,
            "last_used_at": key.last_used_at,
            "expires_at": key.expires_at,
            "id": key.id,
            "owner": {"type": "service_account", "service_account": owner, "user": None},
            "owner_project_access": self.owner_project_access(key),
            "spend_limit": spend_limit_json(key.spend_limit),
        }

    def created_key_json(self, key: OpenAIKey) -> dict[str, Any]:
        """An ``APIKeyCreateResponse``: the only answer that shows the value."""
        return {"object": "organization.project.service_account.api_key", "value": key.value,
                "name": key.name, "created_at": key.created_at, "id": key.id,
                "expires_at": key.expires_at, "spend_limit": spend_limit_json(key.spend_limit)}
