"""GitHub's REST API, for one call: the secret scanning alert a webhook announced
(``GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}``), whose ``secret`` field the
webhook does not carry. The literal is handed back masked; errors name the alert, never it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from secretops.errors import SecretopsError
from secretops.models import SecretValue

API_VERSION = "2022-11-28"
TIMEOUT_SECONDS = 10.0
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


class GitHubError(SecretopsError):
    """The alert could not be read from GitHub."""


@dataclass(frozen=True)
class Alert:
    """The REST alert's fields secretops uses; ``secret`` masked, None when hidden."""

    number: int
    repository: str
    secret_type: str
    created_at: str
    html_url: str
    validity: str
    secret: SecretValue | None
    first_location: dict[str, Any] | None = None
    """``first_location_detected``: the details of the first place it was found (path,
    start_line, commit_sha, blob_url for a commit)."""


class GitHubAlerts:
    """Reads secret scanning alerts with a token (fine-grained: "Secret scanning alerts"
    read; classic: ``repo`` or ``security_events``)."""

    def __init__(self, base_url: str, token: SecretValue, client: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client or httpx.Client(timeout=TIMEOUT_SECONDS)

    def close(self) -> None:
        self._client.close()

    def alert(self, repository: str, number: int) -> Alert:
        if not _REPOSITORY.match(repository) or ".." in repository:
            raise GitHubError("the repository is not owner/name")
        where = f"alert #{number} of {repository}"
        url = f"{self.base_url}/repos/{repository}/secret-scanning/alerts/{number}"
        headers = {"Authorization": f"Bearer {self._token.reveal()}",
                   "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": API_VERSION}
        try:
            answer = self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise GitHubError(f"{where}: GitHub did not answer ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise GitHubError(f"{where}: GitHub answered HTTP {answer.status_code}")
        try:
            data: Any = answer.json()
        except ValueError:
            raise GitHubError(f"{where}: GitHub's answer is not JSON") from None
        if not isinstance(data, dict):
            raise GitHubError(f"{where}: GitHub's answer is not an alert")
        literal = data.get("secret")
        return Alert(number=number, repository=repository,
                     secret_type=str(data.get("secret_type") or ""),
                     created_at=str(data.get("created_at") or ""),
                     html_url=str(data.get("html_url") or ""),
                     validity=str(data.get("validity") or "unknown"),
                     secret=SecretValue(literal, remember=False)
                     if isinstance(literal, str) and literal else None,
                     first_location=first if isinstance(
                         first := data.get("first_location_detected"), dict) else None)
