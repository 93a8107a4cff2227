"""API errors, rendered as the ``Status`` bodies the real API server sends."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP code, a ``reason`` and a message written like the real server's."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def qualified(plural: str, group: str) -> str:
    """``secrets`` or ``deployments.apps``: how the server names a resource in messages."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    kind = qualified(plural, group)
    details = {"name": name, "kind": plural} if not group else {
        "name": name, "group": group, "kind": plural}
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', details)


def conflict(plural: str, group: str, name: str) -> ApiError:
    kind = qualified(plural, group)
    details = {"name": name, "kind": plural} if not group else {
        "name": name, "group": group, "kind": plural}
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details,
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    kind = qualified(plural, group)
    details = {"name": name, "kind": plural} if not group else {
        "name": name, "group": group, "kind": plural}
    return ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {message}',
                    {"name": name, "kind": kind})
