"""The Anthropic API and console, as much as a key rotation touches, per the public reference.

- ``GET /v1/models`` with ``x-api-key`` (or a bearer token) and ``anthropic-version``: 200
  for an active key, 401 ``authentication_error`` for an unknown, inactive, expired or
  archived one.
- The Admin API (an ``sk-ant-admin01-`` key): list keys (cursor paging with ``before_id`` /
  ``after_id`` / ``limit``, filters ``status`` and ``workspace_id``), get one, and update its
  ``status`` or ``name``; an archived key never changes again, an expired one can only be
  archived. The API cannot create keys: only a person in the console can. Keys are the
  official client's ``BetaAPIKey`` (``scope``, ``principal``, ``expires_at``; a key past its
  expiry reads ``expired``) and errors its ``BetaErrorResponse`` (with a ``request_id``).
- The console (a separate app, :func:`console_app`): ``POST /keys`` mints a key and shows it
  once, and ``GET /`` is a small page with a form that does the same from a browser.

:class:`AnthropicState` is the provider's database; it also keeps when each key was last
used, which the real console shows and an access audit may want.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox.providers import URL_SAFE, bearer_token, now, page, random_chars

KEY_PREFIX = "sk-ant-api03-"
ADMIN_PREFIX = "sk-ant-admin01-"
STATUSES = ("active", "inactive", "archived")  # the ones an update may set
LISTED_STATUSES = (*STATUSES, "expired")
CONSOLE_USER = {"id": "user_01SandboxConsolePerson0", "type": "user"}
# the organization's default workspace, where a key made without one belongs
DEFAULT_WORKSPACE = "wrkspc_01SandboxDefaultWorkspace0"
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")


def new_key_value(prefix: str = KEY_PREFIX) -> str:
    """A value shaped like Anthropic's: prefix, 95 URL-safe characters, ``AA``."""
    return f"{prefix}{random_chars(95, URL_SAFE)}AA"


def partial_key_hint(value: str) -> str:
    """The hint the Admin API shows: ``sk-ant-api03-R2D...igAA``."""
    return f"{value[: len(KEY_PREFIX) + 3]}...{value[-4:]}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AnthropicKey:
    """An API key. ``value`` is shown once, at creation, and never by ``repr``.
    ``workspace_id`` None is the organization scope, which only a key bound to a
    ``principal`` (``{"type": "user_actor", "user_id": ...}`` or
    ``{"type": "service_account_actor", "service_account_id": ...}``) may have."""

    id: str
    value: str = field(repr=False)
    name: str
    workspace_id: str | None
    created_at: datetime
    created_by: dict[str, str] | None
    status: str = "active"
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    principal: dict[str, str] | None = None

    @property
    def current_status(self) -> str:
        """The status the API shows: a key past its ``expires_at`` is ``expired`` (unless it
        was archived)."""
        if (self.status != "archived" and self.expires_at is not None
                and now() >= self.expires_at):
            return "expired"
        return self.status

    def to_json(self) -> dict[str, Any]:
        """A ``BetaAPIKey``."""
        scope = ({"type": "workspace", "workspace_id": self.workspace_id} if self.workspace_id
                 else {"type": "organization"})
        return {
            "id": self.id,
            "type": "api_key",
            "name": self.name,
            "created_at": _stamp(self.created_at),
            "created_by": dict(self.created_by) if self.created_by else None,
            "expires_at": _stamp(self.expires_at) if self.expires_at else None,
            "partial_key_hint": partial_key_hint(self.value),
            "principal": dict(self.principal) if self.principal else None,
            "scope": scope,
            "status": self.current_status,
        }


class AnthropicState:
    """Anthropic's records: API keys (newest first in listings) and admin keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._admin_keys: set[str] = set()
        self.keys: dict[str, AnthropicKey] = {}

    def create_admin_key(self) -> str:
        value = new_key_value(ADMIN_PREFIX)
        with self._lock:
            self._admin_keys.add(value)
        return value

    def is_admin(self, value: str) -> bool:
        with self._lock:
            return value in self._admin_keys

    def mint_key(
        self,
        name: str,
        workspace_id: str | None = None,
        created_by: dict[str, str] | None = None,
        expires_in: timedelta | None = None,
        principal: dict[str, str] | None = None,
    ) -> tuple[str, str]:
        """A new active key, as the console makes it (expiring after ``expires_in``, if
        given; a negative one makes a key that has already expired): returns
        ``(key_id, value)``. Without ``workspace_id`` the key is in the default workspace,
        or with a ``principal`` in the organization scope."""
        if workspace_id is None and principal is None:
            workspace_id = DEFAULT_WORKSPACE
        created = now()
        key = AnthropicKey(
            id=f"apikey_01{random_chars(22)}",
            value=new_key_value(),
            name=name,
            workspace_id=workspace_id,
            created_at=created,
            created_by=dict(created_by or CONSOLE_USER),
            expires_at=created + expires_in if expires_in is not None else None,
            principal=dict(principal) if principal else None,
        )
        with self._lock:
            self.keys[key.id] = key
        return key.id, key.value

    def use_key(self, value: str) -> AnthropicKey | None:
        """The active key with this value, marked as used now; None otherwise."""
        with self._lock:
            for key in self.keys.values():
                if key.value == value and key.current_status == "active":
                    key.last_used_at = now()
                    return key
        return None

    def get(self, key_id: str) -> AnthropicKey | None:
        with self._lock:
            return self.keys.get(key_id)

    def listing(self, status: str | None, workspace_id: str | None) -> list[AnthropicKey]:
        with self._lock:
            keys = list(self.keys.values())
        keys = [
            key
            for key in keys
            if (status is None or key.current_status == status)
            and (workspace_id is None or key.workspace_id == workspace_id)
        ]
        return sorted(keys, key=lambda key: (key.created_at, key.id), reverse=True)

    def update(self, key_id: str, status: str | None, name: str | None) -> AnthropicKey:
        """Change a key's status and/or name. An archived key can no longer change."""
        with self._lock:
            key = self.keys[key_id]
            if key.status == "archived":
                raise ValueError("Archived API keys cannot be modified.")
            if key.current_status == "expired" and status in ("active", "inactive"):
                raise ValueError("Expired API keys can only be archived.")
            if status is not None:
                key.status = status
            if name is not None:
                key.name = name
            return key


def _error(status: int, kind: str, message: str) -> JSONResponse:
    """The API's error body (a ``BetaErrorResponse``), with its request id."""
    request_id = f"req_011{random_chars(21)}"
    body = {"type": "error", "error": {"type": kind, "message": message},
            "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error"}
    kind = kinds.get(exc.status_code, "api_error")
    return _error(exc.status_code, kind, str(exc.detail))


def anthropic_app(state: AnthropicState) -> Starlette:
    """The Anthropic API over ``state``."""

    def auth(request: Request, admin: bool) -> Response | None:
        """None when the caller may go on, else the real API's 400/401/403 answer."""
        # the x-api-key header, or (as the official client of 2026 sends it) a bearer token
        token = request.headers.get("x-api-key", "").strip() or bearer_token(request.headers) or ""
        if not token:
            return _error(401, "authentication_error", "x-api-key header is required")
        if state.is_admin(token):
            if not admin:
                return _error(401, "authentication_error", "invalid x-api-key")
        elif state.use_key(token) is None:
            return _error(401, "authentication_error", "invalid x-api-key")
        elif admin:
            return _error(
                403,
                "permission_error",
                "This API key does not have permission to use "
                "the Admin API. Use an Admin API key (sk-ant-admin...).",
            )
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def models(request: Request) -> Response:
        refused = auth(request, admin=False)
        if refused is not None:
            return refused
        data = [
            {
                "type": "model",
                "id": model,
                "display_name": model.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z",
                "lifecycle": "active",
                "line": model.split("-")[1],
                "capabilities": None,
                "max_input_tokens": 200000,
                "max_tokens": 64000,
                "deprecated_at": None,
                "retires_at": None,
            }
            for model in MODELS
        ]
        return JSONResponse(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    async def list_keys(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in LISTED_STATUSES:
            allowed = ", ".join(map(repr, LISTED_STATUSES))
            raise HTTPException(400, f"status: Input should be {allowed}")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise HTTPException(400, "limit: Input should be between 1 and 1000")
        if query.get("before_id") and query.get("after_id"):
            raise HTTPException(400, "Only one of before_id and after_id may be given.")
        keys, more = page(
            state.listing(status, query.get("workspace_id")),
            lambda key: key.id,
            limit,
            after=query.get("after_id"),
            before=query.get("before_id"),
        )
        return JSONResponse(
            {
                "data": [key.to_json() for key in keys],
                "has_more": more,
                "first_id": keys[0].id if keys else None,
                "last_id": keys[-1].id if keys else None,
            }
        )

    async def one_key(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        key_id = str(request.path_params["key_id"])
        key = state.get(key_id)
        if key is None:
            return _error(404, "not_found_error", f"API key {key_id} not found.")
        if request.method == "GET":
            return JSONResponse(key.to_json())
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HTTPException(400, "The request body must be a JSON object.")
        status, name = body.get("status"), body.get("name")
        if status is not None and status not in STATUSES:
            raise HTTPException(400, f"status: Input should be {', '.join(map(repr, STATUSES))}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise HTTPException(400, "name: String should have at least 1 character")
        try:
            updated = state.update(key_id, status, name)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return JSONResponse(updated.to_json())

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/organizations/api_keys", list_keys, methods=["GET"]),
            Route("/v1/organizations/api_keys/{key_id}", one_key, methods=["GET", "POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )


_PAGE = """<!doctype html>
<html><head><title>API keys - Anthropic Console (sandbox)</title></head>
<body>
<h1>API keys</h1>
{shown}
<form method="post" action="keys">
  <label>Name <input name="name" id="name" required></label>
  <label>Workspace <input name="workspace_id" id="workspace_id"></label>
  <button type="submit" id="create">Create Key</button>
</form>
</body></html>
"""
_SHOWN = """<div id="created"><p>Save this key now: you won't be able to see it again.</p>
<p>Key id: <span id="key-id">{id}</span></p>
<p><code id="key">{key}</code></p></div>"""


def console_app(state: AnthropicState) -> Starlette:
    """The Anthropic console, where a person creates a key: JSON or an HTML form."""

    async def home(request: Request) -> Response:
        return HTMLResponse(_PAGE.format(shown=""))

    async def create(request: Request) -> Response:
        raw = await request.body()
        is_form = "form" in request.headers.get("content-type", "")
        if is_form:
            fields = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            try:
                loaded = json.loads(raw or b"{}")
            except ValueError:
                loaded = None
            fields = loaded if isinstance(loaded, dict) else {}
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HTTPException(400, "name: Field required")
        workspace = fields.get("workspace_id") or None
        key_id, value = state.mint_key(name.strip(), workspace_id=workspace)
        if is_form:
            shown = _SHOWN.format(id=html.escape(key_id), key=html.escape(value))
            return HTMLResponse(_PAGE.format(shown=shown), status_code=201)
        return JSONResponse({"id": key_id, "key": value}, status_code=201)

    return Starlette(
        routes=[Route("/", home, methods=["GET"]), Route("/keys", create, methods=["POST"])],
        exception_handlers={HTTPException: _http_error},
    )
