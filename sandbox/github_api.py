"""GitHub secret scanning, as much of it as a leak alert touches, per GitHub's REST reference
and webhook documentation.

- ``GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}`` (``Authorization: Bearer``
  with the sandbox's token; ``hide_secret=true`` leaves ``secret`` out) and ``.../locations``:
  the alert with the fields of GitHub's published schema (number, created_at, updated_at,
  url, html_url, locations_url, state, resolution..., secret_type, secret_type_display_name,
  secret, validity, push_protection_bypassed..., publicly_leaked, multi_repo,
  is_base64_encoded, first_location_detected, has_more_locations). 401 ``Bad credentials``
  without the token, 404 for an alert that does not exist.
- Webhook deliveries, signed as GitHub signs them (``X-Hub-Signature-256: sha256=`` and the
  HMAC-SHA256 of the body with the hook's secret, the legacy ``X-Hub-Signature`` SHA-1 too),
  with ``X-GitHub-Event``, ``X-GitHub-Delivery`` (a new GUID; a redelivery repeats it),
  ``X-GitHub-Hook-ID`` and GitHub's ``User-Agent``: ``secret_scanning_alert`` (``created``)
  for a secret new to a repository, ``secret_scanning_alert_location`` (``created``) for every
  place it is found.

Sandbox-only (the push GitHub would scan): ``POST /sandbox/alerts`` ``{"repository",
"secret", "secret_type", "path", "line", "commit_sha", "hook_url", "partner"}`` opens the
alert (or adds a location to the repository's alert for that secret) and delivers the events
to ``hook_url``; with ``partner`` the provider revokes the key first, as GitHub's partner
program has OpenAI do for a key in a public repository. ``POST /sandbox/deliveries/{guid}``
redelivers a delivery, GUID and all. The answer lists each delivery's GUID and status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.providers import bearer_token, now

WEB = "https://github.com"
API = "https://api.github.com"
HOOK_ID = 4242
DISPLAY = {"openai_api_key": "OpenAI API Key", "anthropic_api_key": "Anthropic API Key",
           "generic": "Generic secret"}
Revoke = Callable[[str], bool]


@dataclass
class Alert:
    number: int
    repository: str
    secret: str
    secret_type: str
    created_at: str
    locations: list[dict[str, Any]] = field(default_factory=list)
    validity: str = "active"

    def rest(self, hide_secret: bool = False) -> dict[str, Any]:
        base = f"{API}/repos/{self.repository}/secret-scanning/alerts/{self.number}"
        body: dict[str, Any] = {
            "number": self.number, "created_at": self.created_at, "updated_at": self.created_at,
            "url": base, "html_url": f"{WEB}/{self.repository}/security/secret-scanning/"
                                     f"{self.number}",
            "locations_url": f"{base}/locations", "state": "open", "resolution": None,
            "resolved_at": None, "resolved_by": None, "resolution_comment": None,
            "secret_type": self.secret_type,
            "secret_type_display_name": DISPLAY.get(self.secret_type, self.secret_type),
            "secret": self.secret, "validity": self.validity,
            "push_protection_bypassed": False, "push_protection_bypassed_by": None,
            "push_protection_bypassed_at": None, "push_protection_bypass_request_reviewer": None,
            "push_protection_bypass_request_reviewer_comment": None,
            "push_protection_bypass_request_comment": None,
            "push_protection_bypass_request_html_url": None,
            "publicly_leaked": False, "multi_repo": False, "is_base64_encoded": False,
            # the schema's first_location_detected is the location's details alone
            "first_location_detected": self.locations[0]["details"] if self.locations else None,
            "has_more_locations": len(self.locations) > 1,
        }
        if hide_secret:
            body.pop("secret")
        return body

    def webhook(self) -> dict[str, Any]:
        """The alert as a webhook carries it: no secret."""
        return self.rest(hide_secret=True)


def repository(full_name: str) -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    number = int(hashlib.sha256(full_name.encode()).hexdigest()[:8], 16)
    return {"id": number, "node_id": f"R_{number}", "name": name, "full_name": full_name,
            "private": True, "owner": {"login": owner, "id": number + 1, "type": "Organization"},
            "html_url": f"{WEB}/{full_name}", "url": f"{API}/repos/{full_name}"}


class GitHubState:
    """Alerts by repository and number, deliveries by GUID. Thread-safe."""

    def __init__(self, webhook_secret: str, token: str, revoke: Revoke | None = None) -> None:
        self.webhook_secret, self.token = webhook_secret, token
        self.revoke = revoke
        self.alerts: dict[tuple[str, int], Alert] = {}
        self.deliveries: dict[str, tuple[str, str, bytes]] = {}
        self._numbers: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def open(self, repo: str, secret: str, secret_type: str,
             location: dict[str, Any]) -> tuple[Alert, bool]:
        """The repository's alert for ``secret`` with one more location; True when new."""
        with self._lock:
            for alert in self.alerts.values():
                if alert.repository == repo and alert.secret == secret:
                    alert.locations.append(location)
                    return alert, False
            number = next(self._numbers.setdefault(repo, itertools.count(1)))
            alert = Alert(number, repo, secret, secret_type,
                          now().strftime("%Y-%m-%dT%H:%M:%SZ"), [location])
            self.alerts[(repo, number)] = alert
            return alert, True

    def delivery(self, url: str, event: str, payload: dict[str, Any]) -> str:
        guid = str(uuid.uuid4())
        with self._lock:
            self.deliveries[guid] = (url, event, json.dumps(payload).encode())
        return guid

    def headers(self, guid: str, event: str, body: bytes) -> dict[str, str]:
        key = self.webhook_secret.encode()
        return {
            "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/8e03811",
            "X-GitHub-Event": event, "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(HOOK_ID),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1",
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        }


def _location(data: dict[str, Any], repo: str) -> dict[str, Any]:
    commit = str(data.get("commit_sha") or hashlib.sha1(uuid.uuid4().bytes).hexdigest())  # noqa: S324
    path, line = str(data.get("path") or "config.py"), int(data.get("line") or 1)
    blob = hashlib.sha1(f"{commit}:{path}".encode()).hexdigest()  # noqa: S324
    return {"type": "commit", "details": {
        "path": path, "start_line": line, "end_line": line, "start_column": 1,
        "end_column": 80, "blob_sha": blob,
        "blob_url": f"{API}/repos/{repo}/git/blobs/{blob}", "commit_sha": commit,
        "commit_url": f"{API}/repos/{repo}/git/commits/{commit}"}}


def _not_found() -> JSONResponse:
    return JSONResponse({"message": "Not Found", "documentation_url":
                         "https://docs.github.com/rest/secret-scanning/secret-scanning"
                         "#get-a-secret-scanning-alert", "status": "404"}, status_code=404)


def github_app(state: GitHubState) -> Starlette:
    client = httpx.AsyncClient(timeout=30)

    def authorized(request: Request) -> bool:
        token = bearer_token(request.headers) or ""
        return hmac.compare_digest(token.encode(), state.token.encode())

    def unauthorized() -> JSONResponse:
        return JSONResponse({"message": "Bad credentials", "documentation_url":
                             "https://docs.github.com/rest", "status": "401"}, status_code=401)

    async def get_alert(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        alert = state.alerts.get((repo, int(request.path_params["number"])))
        if alert is None:
            return _not_found()
        hide = request.query_params.get("hide_secret", "false").lower() == "true"
        return JSONResponse(alert.rest(hide_secret=hide))

    async def get_locations(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        alert = state.alerts.get((repo, int(request.path_params["number"])))
        return JSONResponse(alert.locations) if alert is not None else _not_found()

    async def send(guid: str) -> int:
        url, event, body = state.deliveries[guid]
        try:
            answer = await client.post(url, content=body, headers=state.headers(guid, event,
                                                                                body))
        except httpx.HTTPError:
            return 0
        return answer.status_code

    async def push(request: Request) -> JSONResponse:
        data = await request.json()
        repo, secret, hook = str(data["repository"]), str(data["secret"]), str(data["hook_url"])
        if data.get("partner") and state.revoke is not None:
            await asyncio.to_thread(state.revoke, secret)
        location = _location(data, repo)
        alert, new = state.open(repo, secret, str(data.get("secret_type") or "generic"),
                                location)
        if data.get("partner"):
            alert.validity = "inactive"
        common = {"repository": repository(repo), "sender": {"login": "github", "id": 9919}}
        guids = []
        if new:
            guids.append(state.delivery(hook, "secret_scanning_alert", {
                "action": "created", "alert": alert.webhook(), **common}))
        guids.append(state.delivery(hook, "secret_scanning_alert_location", {
            "action": "created", "alert": alert.webhook(), "location": location, **common}))
        statuses = [await send(guid) for guid in guids]
        return JSONResponse({"number": alert.number, "deliveries": [
            {"guid": g, "status": s} for g, s in zip(guids, statuses, strict=True)]})

    async def redeliver(request: Request) -> JSONResponse:
        guid = request.path_params["guid"]
        if guid not in state.deliveries:
            return _not_found()
        return JSONResponse({"guid": guid, "status": await send(guid)})

    prefix = "/repos/{owner}/{repo}/secret-scanning/alerts/{number:int}"
    return Starlette(routes=[
        Route(prefix, get_alert), Route(f"{prefix}/locations", get_locations),
        Route("/sandbox/alerts", push, methods=["POST"]),
        Route("/sandbox/deliveries/{guid}", redeliver, methods=["POST"]),
    ])
