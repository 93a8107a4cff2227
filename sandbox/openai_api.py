"""The OpenAI API, as much of it as a key rotation touches, per the public API reference.

- ``GET /v1/models`` with ``Authorization: Bearer <key>``: 200 for an active project key (and
  its ``last_used_at`` moves), 401 ``invalid_api_key`` naming only a redacted form otherwise.
- The Admin API (an ``sk-admin-`` key): a project's service accounts (list, create with a
  new key shown once, get, delete with its key) and API keys (list with ``redacted_value``
  and cursor paging, get, delete).

:class:`OpenAIState` is the provider's database; :func:`openai_app` serves it.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.providers import URL_SAFE, bearer_token, page, random_chars

DEFAULT_PROJECT = "proj_intelliprompt"
MODELS = ("gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small")
_PREFIXES = ("sk-svcacct-", "sk-admin-", "sk-proj-", "sk-")
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def new_key_value(prefix: str) -> str:
    """A value shaped like OpenAI's: prefix, random text around ``T3BlbkFJ`` ("OpenAI")."""
    return f"{prefix}{random_chars(74, URL_SAFE)}T3BlbkFJ{random_chars(74, URL_SAFE)}"


def redacted_value(value: str) -> str:
    """The listing's form of a key: ``sk-svcacct-abc...wxyz``."""
    prefix = next((p for p in _PREFIXES if value.startswith(p)), "")
    return f"{value[: len(prefix) + 3]}...{value[-4:]}"


def message_form(value: str) -> str:
    """The form of a wrong key in a 401 message: first 8 and last 4 characters only."""
    return f"{value[:8]}...{value[-4:]}" if len(value) >= 16 else "*" * len(value)


@dataclass
class ServiceAccount:
    id: str
    name: str
    project_id: str
    created_at: int
    role: str = "member"
    key_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "organization.project.service_account",
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
        }


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

    @functools.cached_property
    def redacted_value(self) -> str:
        return redacted_value(self.value)


class OpenAIState:
    """OpenAI's records: projects, their service accounts and keys, and admin keys."""

    def __init__(self, projects: tuple[str, ...] = (DEFAULT_PROJECT,)) -> None:
        self._lock = threading.Lock()
        self.projects: set[str] = set(projects)
        self._admin_keys: set[str] = set()
        self.service_accounts: dict[str, ServiceAccount] = {}
        self.keys: dict[str, OpenAIKey] = {}
        self._by_value: dict[str, str] = {}  # key value -> key id: every request looks one up

    def create_admin_key(self) -> str:
        value = new_key_value("sk-admin-")
        with self._lock:
            self._admin_keys.add(value)
        return value

    def is_admin(self, value: str) -> bool:
        with self._lock:
            return value in self._admin_keys

    def create_service_account(self, project_id: str, name: str) -> tuple[ServiceAccount, str]:
        """A new service account with its key; returns the account and the key value."""
        stamp = int(time.time())
        account = ServiceAccount(f"svc_acct_{random_chars(24)}", name, project_id, stamp)
        key = OpenAIKey(
            id=f"key_{random_chars(16)}",
            value=new_key_value("sk-svcacct-"),
            name="Secret Key",
            project_id=project_id,
            created_at=stamp,
            service_account_id=account.id,
        )
        account.key_id = key.id
        with self._lock:
            self.projects.add(project_id)
            self.service_accounts[account.id] = account
            self.keys[key.id] = key
            self._by_value[key.value] = key.id
        return account, key.value

    def mint_service_account_key(self, project_id: str, name: str) -> tuple[str, str]:
        """Seed a key as the admin API would: returns ``(key_id, value)``."""
        account, value = self.create_service_account(project_id, name)
        assert account.key_id is not None
        return account.key_id, value

    def use_key(self, value: str) -> OpenAIKey | None:
        """The active key with this value, marked as used now; None if there is none."""
        with self._lock:
            key = self.keys.get(self._by_value.get(value, ""))
            if key is not None:
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
        with self._lock:
            key = self.keys.pop(key_id, None)
            if key is not None:
                self._by_value.pop(key.value, None)
            if key is not None and key.service_account_id in self.service_accounts:
                self.service_accounts[key.service_account_id].key_id = None
            return key

    def delete_service_account(self, account_id: str) -> ServiceAccount | None:
        with self._lock:
            account = self.service_accounts.pop(account_id, None)
            if account is not None and account.key_id is not None:
                key = self.keys.pop(account.key_id, None)
                if key is not None:
                    self._by_value.pop(key.value, None)
            return account

    def key_json(self, key: OpenAIKey) -> dict[str, Any]:
        with self._lock:
            account = self.service_accounts.get(key.service_account_id)
        owner = account.to_json() if account else {"id": key.service_account_id}
        return {
            "object": "organization.project.api_key",
            "redacted_value": key.redacted_value,
            "name": key.name,
            "created_at": key.created_at,
            "last_used_at": key.last_used_at,
            "id": key.id,
            "owner": {"type": "service_account", "service_account": owner},
        }


def _error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _listing(items: list[dict[str, Any]], has_more: bool) -> JSONResponse:
    return JSONResponse(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": has_more,
        }
    )


def _limit(request: Request) -> int:
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise HTTPException(400, "limit must be an integer between 1 and 100")
    return limit


def openai_app(state: OpenAIState) -> Starlette:
    """The OpenAI API over ``state``."""

    def auth(request: Request, admin: bool) -> Response | None:
        """None when the caller may go on, else the real API's 401/403 answer."""
        token = bearer_token(request.headers)
        if token is None:
            return _error(401, _NO_KEY)
        if state.is_admin(token):
            if admin:
                return None
            return _error(
                403,
                "You have insufficient permissions for this operation. "
                "Missing scopes: api.model.read.",
                code="insufficient_permissions",
            )
        if state.use_key(token) is None:
            return _error(
                401,
                f"Incorrect API key provided: {message_form(token)}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if admin:
            return _error(
                403,
                "You have insufficient permissions for this operation. Missing "
                "scopes: api.management.read. Admin endpoints need an Admin API key.",
                code="insufficient_permissions",
            )
        return None

    def project(request: Request) -> str:
        project_id = str(request.path_params["project_id"])
        if project_id not in state.projects:
            raise HTTPException(404, f"No such project: '{project_id}'.")
        return project_id

    async def models(request: Request) -> Response:
        refused = auth(request, admin=False)
        if refused is not None:
            return refused
        data = [
            {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"}
            for model in MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def service_accounts(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        project_id = project(request)
        if request.method == "GET":
            accounts, more = page(
                state.project_accounts(project_id),
                lambda a: a.id,
                _limit(request),
                after=request.query_params.get("after"),
            )
            return _listing([account.to_json() for account in accounts], more)
        try:
            body = await request.json()
        except ValueError:
            body = None
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return _error(400, "Missing required parameter: 'name'.")
        account, value = state.create_service_account(project_id, name.strip())
        key = state.keys[str(account.key_id)]
        created = account.to_json() | {
            "api_key": {
                "object": "organization.project.service_account.api_key",
                "value": value,
                "name": key.name,
                "created_at": key.created_at,
                "id": key.id,
            }
        }
        return JSONResponse(created, status_code=201)

    async def service_account(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        project_id = project(request)
        account_id = str(request.path_params["account_id"])
        account = state.service_accounts.get(account_id)
        if account is None or account.project_id != project_id:
            return _error(404, f"No such service account: '{account_id}'.")
        if request.method == "DELETE":
            state.delete_service_account(account_id)
            return JSONResponse(
                {
                    "object": "organization.project.service_account.deleted",
                    "id": account_id,
                    "deleted": True,
                }
            )
        return JSONResponse(account.to_json())

    async def api_keys(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        keys, more = page(
            state.project_keys(project(request)),
            lambda key: key.id,
            _limit(request),
            after=request.query_params.get("after"),
        )
        return _listing([state.key_json(key) for key in keys], more)

    async def api_key(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        project_id = project(request)
        key_id = str(request.path_params["key_id"])
        key = state.keys.get(key_id)
        if key is None or key.project_id != project_id:
            return _error(404, f"No such API key: '{key_id}'.")
        if request.method == "DELETE":
            state.delete_key(key_id)
            return JSONResponse(
                {"object": "organization.project.api_key.deleted", "id": key_id, "deleted": True}
            )
        return JSONResponse(state.key_json(key))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
            return _error(404, f"Invalid URL ({request.method} {request.url.path})")
        return _error(exc.status_code, exc.detail)

    base = "/v1/organization/projects/{project_id}"
    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route(f"{base}/service_accounts", service_accounts, methods=["GET", "POST"]),
            Route(
                f"{base}/service_accounts/{{account_id}}",
                service_account,
                methods=["GET", "DELETE"],
            ),
            Route(f"{base}/api_keys", api_keys, methods=["GET"]),
            Route(f"{base}/api_keys/{{key_id}}", api_key, methods=["GET", "DELETE"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
