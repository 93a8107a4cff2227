"""Fault knobs: make an emulator slow, flaky or down, so retries and timeouts get exercised.

One :class:`Faults` registry holds a :class:`Knobs` per emulator (the providers' emulators'
knobs, ``kubernetes`` and ``aws``: :func:`emulator_names`). :class:`FaultMiddleware` wraps
an emulator's ASGI app and, before each request reaches it, waits ``latency_ms``, refuses
with 503 while the emulator is down, answers ``error_rate`` of the requests with one of
``codes`` and ``conflict_rate`` of the writes with 409, each in the error shape of that
provider. :func:`control_app` is the ``/faults`` endpoint that changes the knobs at run
time.

The registry draws from one seeded :class:`random.Random`, so a test that sends the same
requests sees the same faults.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SHARED = ("kubernetes", "aws")
"""The knobs of the world's shared systems: its Kubernetes API and its AWS (Secrets Manager,
IAM, CloudTrail). Each provider's emulator adds its own (:func:`emulator_names`)."""
DEFAULT_CODES = (429, 500, 503)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def emulator_names() -> tuple[str, ...]:
    """Every fault knob's name: the providers' emulators' (:mod:`sandbox.emulators`, in
    their order), then the shared systems'."""
    from sandbox.emulators import fault_knobs

    return (*fault_knobs(), *SHARED)


@dataclass(frozen=True)
class Knobs:
    """The faults of one emulator. ``down_until`` is a :func:`time.monotonic` deadline."""

    error_rate: float = 0.0
    codes: tuple[int, ...] = DEFAULT_CODES
    latency_ms: int = 0
    down_until: float = 0.0
    conflict_rate: float = 0.0
    retry_after_ms: int = 1000
    redaction: str = "dots"  # OpenAI's listing: sk-svcacct-abc...wxyz, or stars: sk-svcac****wxyz

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def to_json(self) -> dict[str, Any]:
        """The knobs as the control endpoint shows them (``down_seconds`` is what is left)."""
        return {
            "error_rate": self.error_rate,
            "codes": list(self.codes),
            "latency_ms": self.latency_ms,
            "down_seconds": round(max(0.0, self.down_until - time.monotonic()), 3),
            "conflict_rate": self.conflict_rate,
            "retry_after_ms": self.retry_after_ms,
            "redaction": self.redaction,
        }


def _rate(name: str, value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {rate}")
    return rate


def _codes(value: Any) -> tuple[int, ...]:
    items = value.replace(",", "|").split("|") if isinstance(value, str) else list(value)
    codes = tuple(int(item) for item in items if str(item).strip())
    if not codes or any(not 400 <= code <= 599 for code in codes):
        raise ValueError(f"codes must be HTTP error codes (400-599), got {value!r}")
    return codes


def _non_negative_int(name: str, value: Any) -> int:
    number = int(float(value))
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


def build_knobs(base: Knobs, **changes: Any) -> Knobs:
    """``base`` with ``changes`` applied and validated. ``down_seconds=N`` sets the emulator
    down for N seconds from now; unknown names raise :class:`ValueError`."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("error_rate", "conflict_rate"):
            values[key] = _rate(key, value)
        elif key == "codes":
            values[key] = _codes(value)
        elif key in ("latency_ms", "retry_after_ms"):
            values[key] = _non_negative_int(key, value)
        elif key == "down_seconds":
            seconds = float(value)
            if seconds < 0:
                raise ValueError(f"down_seconds must not be negative, got {seconds}")
            values["down_until"] = time.monotonic() + seconds if seconds else 0.0
        elif key == "redaction":
            if value not in ("dots", "stars"):
                raise ValueError(f"redaction must be dots or stars, got {value!r}")
            values[key] = value
        elif key == "down_until":
            values[key] = float(value)
        else:
            raise ValueError(f"unknown fault knob {key!r}")
    return replace(base, **values)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Parse the command-line form ``openai:error_rate=0.3,codes=429|503,latency_ms=50``."""
    name, sep, rest = spec.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a fault spec looks like 'openai:error_rate=0.3', got {spec!r}")
    knobs: dict[str, str] = {}
    for part in filter(None, (item.strip() for item in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"fault knob {part!r} in {spec!r} has no '='")
        knobs[key.strip()] = value.strip()
    return name.strip(), knobs


@dataclass
class Faults:
    """The knobs of every emulator, and the seeded dice that decide which request fails."""

    seed: int = 0
    names: tuple[str, ...] = field(default_factory=emulator_names)
    _knobs: dict[str, Knobs] = field(default_factory=dict, init=False)
    _injected: dict[str, int] = field(default_factory=dict, init=False)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def _check(self, name: str) -> None:
        if name not in self.names:
            raise KeyError(f"no emulator named {name!r}; known: {', '.join(self.names)}")

    def get(self, name: str) -> Knobs:
        self._check(name)
        with self._lock:
            return self._knobs.get(name, Knobs())

    def set(self, name: str, **knobs: Any) -> Knobs:
        """Change some knobs of ``name`` (the others keep their values)."""
        self._check(name)
        with self._lock:
            updated = build_knobs(self._knobs.get(name, Knobs()), **knobs)
            self._knobs[name] = updated
            self._injected.pop(name, None)
            return updated

    def apply_spec(self, spec: str) -> Knobs:
        """Apply a command-line spec (see :func:`parse_spec`)."""
        name, knobs = parse_spec(spec)
        return self.set(name, **knobs)

    def reset(self, name: str) -> None:
        self._check(name)
        with self._lock:
            self._knobs.pop(name, None)
            self._injected.pop(name, None)

    def clear(self) -> None:
        """Every emulator back to no faults; the dice start again from the seed."""
        with self._lock:
            self._knobs.clear()
            self._injected.clear()
            self._random.seed(self.seed)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every emulator's knobs, and ``injected``: the errors it answered since they were
        set (what a retry test counts its client's attempts by)."""
        with self._lock:
            injected = dict(self._injected)
        return {name: {**self.get(name).to_json(), "injected": injected.get(name, 0)}
                for name in self.names}

    def injected(self, name: str) -> None:
        """Count one error (or conflict, or outage answer) injected in front of ``name``."""
        with self._lock:
            self._injected[name] = self._injected.get(name, 0) + 1

    def roll_error(self, name: str) -> int | None:
        """The injected error code for the next request to ``name``, or None."""
        knobs = self.get(name)
        if knobs.error_rate <= 0:
            return None
        with self._lock:
            if self._random.random() >= knobs.error_rate:
                return None
            return self._random.choice(knobs.codes)

    def roll_conflict(self, name: str) -> bool:
        """Whether the next write to ``name`` is answered with a 409 conflict."""
        knobs = self.get(name)
        if knobs.conflict_rate <= 0:
            return False
        with self._lock:
            return self._random.random() < knobs.conflict_rate


_REASONS = {
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_OPENAI = {
    429: (
        "Rate limit reached for requests. Please try again shortly.",
        "requests",
        "rate_limit_exceeded",
    ),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}
_ANTHROPIC = {409: "conflict_error", 429: "rate_limit_error", 529: "overloaded_error"}
_AWS = {
    429: ("ThrottlingException", "Rate exceeded"),
    503: ("ServiceUnavailable", "Service is unavailable. Please try again later."),
}


def error_body(emulator: str, status: int, query_protocol: bool = False, path: str = "",
               retry_after: int = 1) -> tuple[bytes, str]:
    """The body and content type an emulator's real counterpart answers ``status`` with
    (``path``: the request's, which a Kubernetes Status names the object of)."""
    reason = _REASONS.get(status, "Error")
    if emulator == "openai":
        message, kind, code = _OPENAI.get(
            status, ("The server had an error while processing your request.", "server_error", None)
        )
        payload: dict[str, Any] = {
            "error": {"message": message, "type": kind, "param": None, "code": code}
        }
    elif emulator == "anthropic":
        kind = _ANTHROPIC.get(status, "api_error" if status >= 500 else "invalid_request_error")
        payload = {"type": "error", "error": {"type": kind, "message": reason},
                   "request_id": f"req_011{uuid.uuid4().hex[:21]}"}
    elif emulator == "aws":
        code_name, message = _AWS.get(status, ("InternalFailure", "Internal server error"))
        if status == 409:
            code_name, message = "ConflictException", "Conflict"
        if query_protocol:
            xml = (
                "<ErrorResponse><Error><Type>"
                f"{'Sender' if status < 500 else 'Receiver'}</Type><Code>{code_name}</Code>"
                f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
                "</ErrorResponse>"
            )
            return xml.encode(), "text/xml"
        payload = {"__type": code_name, "message": message}
        return json.dumps(payload).encode(), "application/x-amz-json-1.1"
    elif emulator == "kubernetes":
        return kube_status(status, path, retry_after=retry_after), "application/json"
    else:
        payload = {"error": reason}
    return json.dumps(payload).encode(), "application/json"


# reasons as k8s.io/apimachinery's NewGenericServerResponse gives them
_KUBE_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                 405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict",
                 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
                 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                 504: "Timeout"}


def _kube_target(path: str) -> tuple[str, str, str]:
    """(group, resource, name) of an API path; a subresource names its parent object."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = (parts[1] if len(parts) > 1 else ""), parts[3:]
    else:
        return "", "", ""
    if rest[:1] == ["namespaces"] and len(rest) > 2 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    return group, (rest[0] if rest else ""), (rest[1] if len(rest) > 1 else "")


def kube_status(status: int, path: str = "", message: str | None = None,
                retry_after: int = 1) -> bytes:
    """A ``Status`` as kube-apiserver answers ``status`` (k8s.io/apimachinery's
    ``NewConflict``, ``NewTooManyRequests``, ``NewInternalError``, ``NewServiceUnavailable``,
    ``NewTimeoutError``): the conflict names the object of ``path`` in ``details``, as a
    real conflict on it would."""
    reason = _KUBE_REASONS.get(status, "InternalError" if status >= 500 else "")
    details: dict[str, Any] = {}
    if status == 409:
        group, resource, name = _kube_target(path)
        qualified = f"{resource}.{group}" if group else resource
        message = message or (
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again")
        details = {"name": name, "group": group, "kind": resource}
    elif status == 429:
        message = message or "Too many requests, please try again later."
        details = {"retryAfterSeconds": retry_after}
    elif status == 504:  # the API server's own request timeout
        message = message or ("Timeout: request did not complete within requested timeout - "
                              "context deadline exceeded")
    elif status == 500 or (status > 500 and status != 503):
        cause = message or "the server could not handle the request"
        message = f"Internal error occurred: {cause}"
        details = {"causes": [{"message": cause}]}
    else:
        message = message or _REASONS.get(status, "the server could not handle the request")
    payload: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": message, "reason": reason,
                               "details": {k: v for k, v in details.items() if v},
                               "code": status}
    # Go's omitempty: no empty reason or details
    return json.dumps({k: v for k, v in payload.items() if v or k == "metadata"},
                      separators=(",", ":")).encode()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


class FaultMiddleware:
    """ASGI middleware that injects the faults of emulator ``name`` in front of ``app``."""

    def __init__(self, app: ASGIApp, faults: Faults, name: str) -> None:
        faults.get(name)
        self.app = app
        self.faults = faults
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        knobs = self.faults.get(self.name)
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        status: int | None
        if knobs.is_down():
            status = 503
        elif scope["method"] in WRITE_METHODS and self.faults.roll_conflict(self.name):
            status = 409
        else:
            status = self.faults.roll_error(self.name)
        if status is None:
            await self.app(scope, receive, send)
            return
        self.faults.injected(self.name)
        query = "x-www-form-urlencoded" in _header(scope, b"content-type")
        body, content_type = error_body(
            self.name, status, query_protocol=query, path=scope.get("path", ""),
            retry_after=max(1, math.ceil(knobs.retry_after_ms / 1000)))
        headers = {"content-type": content_type}
        if status in (429, 503):
            headers["retry-after"] = str(max(1, math.ceil(knobs.retry_after_ms / 1000)))
            headers["retry-after-ms"] = str(knobs.retry_after_ms)
        if self.name == "aws" and not query:
            headers["x-amzn-errortype"] = str(json.loads(body)["__type"])
        await Response(body, status_code=status, headers=headers)(scope, receive, send)


_SERVED: list[Faults] = []


def served() -> Faults | None:
    """The registry this process's control endpoint serves (the latest :func:`control_app`
    made), the one ``secretops sandbox fault`` and ``PUT {control}/faults/...`` change: what
    a part of the world built before that endpoint (the real control plane's fault proxy)
    takes its knobs from."""
    return _SERVED[-1] if _SERVED else None


def control_app(faults: Faults) -> Starlette:
    """The ``/faults`` endpoint: ``GET /faults``, ``PUT /faults/{name}`` (knobs as JSON),
    ``DELETE /faults/{name}`` and ``DELETE /faults`` (everything back to normal)."""
    _SERVED[:] = [faults]

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(faults.snapshot())

    async def clear(request: Request) -> JSONResponse:
        faults.clear()
        return JSONResponse(faults.snapshot())

    async def change(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name not in faults.names:
            return JSONResponse({"error": f"no emulator named {name!r}"}, status_code=404)
        if request.method == "DELETE":
            faults.reset(name)
        if request.method != "PUT":
            return JSONResponse(faults.get(name).to_json())
        try:
            knobs = json.loads(await request.body() or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("the knobs must be a JSON object")
            updated = faults.set(name, **knobs)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(updated.to_json())

    return Starlette(
        routes=[
            Route("/faults", show, methods=["GET"]),
            Route("/faults", clear, methods=["DELETE"]),
            Route("/faults/{name}", change, methods=["GET", "PUT", "DELETE"]),
        ]
    )
