"""The Kubernetes API server as an ASGI app: routing of ``/api`` and ``/apis`` paths,
bearer-token authentication, discovery, table output and the audit log of Secret requests.

It authorizes every authenticated request, as a real API server started with
``--authorization-mode=AlwaysAllow`` does, and answers ``SelfSubjectAccessReview`` (what
``kubectl auth can-i`` asks) accordingly; ``secretops sandbox up --kubernetes real`` is the
world with RBAC enforced."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from sandbox.kube import discovery, protobuf
from sandbox.kube.audit import AuditLog, AuditRequest
from sandbox.kube.config import Identity
from sandbox.kube.errors import ApiError, bad_request
from sandbox.kube.handlers import LogSource, ResourceApi, Target
from sandbox.kube.resources import by_path
from sandbox.kube.store import Store
from sandbox.kube.timefmt import now

_PUBLIC = {"/version", "/healthz", "/livez", "/readyz"}
SELF_REVIEW = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


def _json(body: Any, code: int = 200) -> Response:
    return JSONResponse(body, status_code=code)


def _error(exc: ApiError) -> Response:
    return _json(exc.status(), exc.code)


def parse_target(segments: list[str]) -> Target:
    """The resource named by a path below ``/api`` or ``/apis``, or 404."""
    if segments[0] == "api" and len(segments) >= 3 and segments[1] == "v1":
        group, version, rest = "", "v1", segments[2:]
    elif segments[0] == "apis" and len(segments) >= 4:
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    resource = by_path(group, version, rest[0])
    if resource is None or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in resource.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(resource, version, namespace, name, sub)


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _verb(method: str, target: Target, params: dict[str, str]) -> str:
    if method == "GET":
        if params.get("watch") in ("1", "true"):
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return _VERBS.get(method, method.lower())


class ApiServer:
    """ASGI callable: ``await server(scope, receive, send)``."""

    def __init__(self, store: Store, logs: LogSource, tokens: dict[str, Identity],
                 audit: AuditLog) -> None:
        self.store = store
        self.api = ResourceApi(store, logs)
        self.tokens = tokens
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    def _identity(self, request: Request) -> Identity:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        identity = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return identity

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.url.path.strip("/")
        try:
            if path == "/version":
                return _json(discovery.VERSION)
            if path in _PUBLIC:
                return PlainTextResponse("ok")
            identity = self._identity(request)
            if path == SELF_REVIEW and request.method == "POST":
                raw = await request.body()
                protobuf_body = "protobuf" in request.headers.get("content-type", "")
                return _self_review(_decode_protobuf(raw) if protobuf_body else _decode(raw))
            found = self._discovery(path, request)
            if found is not None:
                return found
            segments = [unquote(s) for s in path.strip("/").split("/")]
            target = parse_target(segments)
        except ApiError as exc:
            return _error(exc)
        params = dict(request.query_params)
        audited = target.resource.key == "secrets"
        record = AuditRequest(
            verb=_verb(request.method, target, params),
            uri=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            identity=identity,
            source_ip=request.client.host if request.client else "127.0.0.1",
            user_agent=request.headers.get("user-agent", ""),
            resource=target.resource.plural, namespace=target.namespace, name=target.name,
            api_version=target.resource.api_version(target.version), received=now(),
        )
        if record.verb == "watch":
            return self._watch(target, params, record if audited else None)
        try:
            response = await self._dispatch(request, target, params)
        except ApiError as exc:
            response = _error(exc)
        if audited:
            self.audit.record(record, response.status_code)
        return response

    def _discovery(self, path: str, request: Request) -> Response | None:
        if path == "/api":
            host = request.url.netloc
            return _json(discovery.api_versions(host))
        if path == "/apis":
            return _json(discovery.api_group_list())
        parts = path.strip("/").split("/")
        body: dict[str, Any] | None = None
        if parts[:2] == ["openapi", "v3"]:
            rest = parts[2:]
            if not rest:
                body = discovery.openapi_v3_root()
            elif rest[0] == "api" and len(rest) == 2:
                body = discovery.openapi_v3("", rest[1])
            elif rest[0] == "apis" and len(rest) == 3:
                body = discovery.openapi_v3(rest[1], rest[2])
        elif parts[0] == "api" and len(parts) == 2:
            body = discovery.group_version("", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            body = discovery.api_group(parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            body = discovery.group_version(parts[1], parts[2])
        elif parts[0] not in ("api", "apis"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            return None
        if body is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(body)

    async def _dispatch(self, request: Request, target: Target,
                        params: dict[str, str]) -> Response:
        method = request.method
        as_table = "as=Table" in request.headers.get("accept", "")
        if target.subresource == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return PlainTextResponse(self.api.log(target, params))
        if method == "GET":
            if target.name:
                return _json(self.api.get(target, params, as_table))
            return _json(self.api.list(target, params, as_table))
        raw = await request.body()
        dry_run = _dry_run(params, method)
        if method == "PATCH" and target.name:
            content_type = request.headers.get("content-type", "")
            return _json(self.api.patch(target, content_type, raw, dry_run))
        if "protobuf" in request.headers.get("content-type", ""):
            body = _decode_protobuf(raw)
        else:
            body = _decode(raw)
        if method == "POST" and not target.name:
            return _json(self.api.create(target, body, dry_run), 201)
        if method == "PUT" and target.name:
            return _json(self.api.update(target, body, dry_run))
        if method == "DELETE" and target.name:
            return _json(self.api.delete(target, body, dry_run))
        if method == "DELETE":
            return _json(self.api.delete_collection(target, params, dry_run))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    def _watch(self, target: Target, params: dict[str, str],
               record: AuditRequest | None) -> Response:
        audit = self.audit
        audit_id = audit.record(record, 200, "ResponseStarted") if record else None

        async def stream() -> Any:
            try:
                async for chunk in self.api.watch(target, params):
                    yield chunk
            finally:
                if record is not None:
                    audit.record(record, 200, "ResponseComplete", audit_id)

        return StreamingResponse(stream(), media_type="application/json")


def _self_review(body: Any) -> Response:
    """The review asked for, answered as the AlwaysAllow authorizer answers it."""
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise bad_request("a SelfSubjectAccessReview needs a spec")
    return _json({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                  "metadata": {"creationTimestamp": None}, "spec": body["spec"],
                  "status": {"allowed": True, "reason": "the sandbox's API server authorizes "
                             "every authenticated request (no RBAC)"}}, 201)


# the options object a write's query parameters fill, which the API server validates
WRITE_OPTIONS = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions",
                 "DELETE": "DeleteOptions"}


def _dry_run(params: dict[str, str], method: str) -> bool:
    """``?dryRun=All`` asks for a write that is checked but not stored; ``All`` is the only
    value the API defines. Another is refused as kube-apiserver refuses it: 422 Invalid on
    the write's options, with the field's cause."""
    value = params.get("dryRun")
    if not value:
        return False
    if value != "All":
        kind = WRITE_OPTIONS.get(method, "CreateOptions")
        unsupported = f'Unsupported value: ["{value}"]: supported values: "All"'
        raise ApiError(422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: dryRun: {unsupported}',
                       {"group": "meta.k8s.io", "kind": kind, "causes": [
                           {"reason": "FieldValueNotSupported", "message": unsupported,
                            "field": "dryRun"}]})
    return True


def _decode_protobuf(raw: bytes) -> Any:
    """A protobuf body (what kubectl sends for the built-in kinds it creates)."""
    try:
        return protobuf.decode(raw)
    except protobuf.UnknownKind as exc:
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media "
                       "types include: application/json, application/yaml") from exc
    except protobuf.ProtobufError as exc:
        raise bad_request(f"error decoding body: {exc}") from exc


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_request(f"error decoding body: {exc}") from exc
