"""The OpenAI API, as much of it as a key rotation touches, per the public API reference.

- ``GET /v1/models`` with ``Authorization: Bearer <key>``: 200 for an active project key (and
  its ``last_used_at`` moves), 401 ``invalid_api_key`` naming only a redacted form otherwise;
  403 ``insufficient_permissions`` for a key restricted to scopes without ``api.model.read``.
- ``POST /v1/chat/completions``: the key and its ``model.request`` scope checked as above,
  then the body's 400s (no model, no messages); nothing is generated (a complete request is
  answered 404 ``model_not_found``).
- The Admin API (an ``sk-admin-`` key): a project's service accounts (list, create with a
  new key shown once or ``create_service_account_only``, get, update name and role, delete
  with its keys), keys minted on an account (with ``expires_in_seconds``, ``scopes`` and
  ``spend_limit``; refused when the organization does not allow them), and API keys (list
  with ``redacted_value``, the ``owner_project_access`` filter and cursor paging, get, update
  expiry, scopes and spend limit, delete the key alone). An admin key made ``read_only`` is
  refused every write (403).

:class:`~sandbox.openai_state.OpenAIState` is the provider's database; :func:`openai_app`
serves it.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.openai_state import (
    DEFAULT_PROJECT,
    KEEP,
    OpenAIKey,
    OpenAIState,
    Refused,
    ServiceAccount,
    message_form,
    new_key_value,
    redacted_value,
)
from sandbox.providers import bearer_token, page

__all__ = ["DEFAULT_PROJECT", "OpenAIKey", "OpenAIState", "ServiceAccount", "new_key_value",
           "openai_app", "redacted_value"]

MODELS = ("gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small")
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def _error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
    param: str | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _refused(exc: Refused) -> JSONResponse:
    return _error(exc.status, str(exc), code=exc.code, param=exc.param)


def _spend_limit(body: dict[str, Any]) -> Any:
    """The monthly limit in US cents of a body's ``spend_limit``: None when it is null,
    ``KEEP`` when it is absent; :class:`Refused` when it is not a USD monthly limit."""
    if "spend_limit" not in body:
        return KEEP
    limit = body["spend_limit"]
    if limit is None:
        return None
    amount = limit.get("threshold_amount") if isinstance(limit, dict) else None
    if (not isinstance(limit, dict) or limit.get("currency") != "USD"
            or limit.get("interval") != "month" or type(amount) is not int or amount <= 0
            or set(limit) - {"currency", "interval", "threshold_amount"}):
        raise Refused(400, "spend_limit must have currency 'USD', interval 'month' and a "
                      "positive integer threshold_amount (US cents).", None, "spend_limit")
    return amount


def _expiry(body: dict[str, Any]) -> int | None:
    expires = body.get("expires_in_seconds")
    if not (expires is None or type(expires) is int):
        raise Refused(400, "expires_in_seconds must be an integer.", None, "expires_in_seconds")
    return expires


def _scopes(body: dict[str, Any]) -> list[str] | None:
    scopes = body.get("scopes")
    if scopes is not None and (not isinstance(scopes, list)
                               or not all(isinstance(x, str) for x in scopes)):
        raise Refused(400, "scopes must be a list of strings.", None, "scopes")
    return scopes


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


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


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

    def auth(request: Request, admin: bool, request_models: bool = False) -> Response | None:
        """None when the caller may go on, else the real API's 401/403 answer. A restricted
        key lists models with ``api.model.read`` and requests them (``request_models``)
        with ``model.request``."""
        token = bearer_token(request.headers)
        if token is None:
            return _error(401, _NO_KEY)
        if state.is_admin(token):
            if admin and request.method != "GET" and not state.admin_may_write(token):
                return _error(
                    403,
                    "You have insufficient permissions for this operation. Missing "
                    "scopes: api.management.write.",
                    code="insufficient_permissions",
                )
            if admin:
                return None
            return _error(
                403,
                "You have insufficient permissions for this operation. "
                "Missing scopes: api.model.read.",
                code="insufficient_permissions",
            )
        key = state.use_key(token)
        if key is None:
            return _error(
                401,
                f"Incorrect API key provided: {message_form(token)}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        allowed = key.can_request_models() if request_models else key.can_read_models()
        if not admin and not allowed:
            return _error(
                403,
                "You have insufficient permissions for this operation. Missing scopes: "
                f"{'model.request' if request_models else 'api.model.read'}.",
                code="insufficient_permissions",
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
            {"id": model, "object": "model", "created": 1715367049, "owned_by": "system",
             "shutdown_date": None}
            for model in MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        """Past the key and its scopes, the body's checks as the real API makes them; the
        sandbox generates nothing, so a complete request names its model unknown."""
        refused = auth(request, admin=False, request_models=True)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        if not body.get("model"):
            return _error(400, "you must provide a model parameter")
        if "messages" not in body:
            return _error(400, "Missing required parameter: 'messages'.", param="messages",
                          code="missing_required_parameter")
        return _error(404, f"The model `{body['model']}` does not exist or you do not have "
                      "access to it.", code="model_not_found")

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
        body = await _body(request)
        name, only = body.get("name"), body.get("create_service_account_only") or False
        if not isinstance(name, str) or not name.strip():
            return _error(400, "Missing required parameter: 'name'.", param="name")
        if not isinstance(only, bool):
            return _error(400, "create_service_account_only must be a boolean.",
                          param="create_service_account_only")
        try:
            limit = _spend_limit(body)
            account, _ = state.create_service_account(
                project_id, name.strip(), expires_in_seconds=_expiry(body),
                spend_limit=None if limit is KEEP else limit, with_key=not only)
        except Refused as exc:
            return _refused(exc)
        key = state.keys.get(str(account.key_id)) if account.key_id else None
        created = account.to_json() | {
            "api_key": state.created_key_json(key) if key is not None else None}
        return JSONResponse(created, status_code=201)

    async def account_keys(request: Request) -> Response:
        """``POST .../service_accounts/{account_id}/api_keys``: a new key of the account."""
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        project_id = project(request)
        body = await _body(request)
        name = body.get("name", "Secret Key")
        if not isinstance(name, str) or not name.strip():
            return _error(400, "name must be a non-empty string.", param="name")
        try:
            limit = _spend_limit(body)
            key = state.create_account_key(
                project_id, str(request.path_params["account_id"]), name, _expiry(body),
                _scopes(body) or [], None if limit is KEEP else limit)
        except Refused as exc:
            return _refused(exc)
        return JSONResponse(state.created_key_json(key), status_code=201)

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
        if request.method == "POST":
            body = await _body(request)
            name, role = body.get("name"), body.get("role")
            if name is not None and (not isinstance(name, str) or not name.strip()):
                return _error(400, "name must be a non-empty string.", param="name")
            if role is not None and role not in ("member", "owner"):
                return _error(400, "role must be one of member, owner.", param="role")
            account = state.update_service_account(account_id, name and name.strip(), role)
        return JSONResponse(account.to_json())

    async def api_keys(request: Request) -> Response:
        refused = auth(request, admin=True)
        if refused is not None:
            return refused
        access = request.query_params.get("owner_project_access", "active")
        if access not in ("active", "inactive", "any"):
            return _error(400, "owner_project_access must be one of active, inactive, any.",
                          param="owner_project_access")
        listed = [key for key in state.project_keys(project(request))
                  if access == "any" or state.owner_project_access(key) == access]
        keys, more = page(
            listed,
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
        if request.method == "POST":
            body = await _body(request)
            try:
                expires, scopes, limit = _expiry(body), _scopes(body), _spend_limit(body)
                if expires is None and scopes is None and limit is KEEP:
                    return _error(400, "Provide at least one of scopes, expires_in_seconds or "
                                  "spend_limit.")
                key = state.update_key(key_id, expires, scopes, limit)
            except Refused as exc:
                return _refused(exc)
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
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{base}/service_accounts", service_accounts, methods=["GET", "POST"]),
            Route(
                f"{base}/service_accounts/{{account_id}}",
                service_account,
                methods=["GET", "POST", "DELETE"],
            ),
            Route(f"{base}/service_accounts/{{account_id}}/api_keys", account_keys,
                  methods=["POST"]),
            Route(f"{base}/api_keys", api_keys, methods=["GET"]),
            Route(f"{base}/api_keys/{{key_id}}", api_key, methods=["GET", "POST", "DELETE"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
