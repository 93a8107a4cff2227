"""GitHub's webhook deliveries, checked as GitHub's documentation says: the
``X-Hub-Signature-256`` header is ``sha256=`` and the HMAC-SHA256 of the raw body keyed with the
webhook's secret, compared in constant time; ``X-GitHub-Delivery`` is the delivery's GUID (a
redelivery reuses it, so a GUID seen before is a replay); ``X-GitHub-Event`` the event type.

The events that start a response: ``secret_scanning_alert`` (action ``created`` or
``reopened``; other actions, such as ``resolved``, are acknowledged and ignored) and
``secret_scanning_alert_location`` (action ``created``: the alert was found at one more place).
Neither carries the secret: :class:`AlertEvent` names the alert, and the receiver reads its
literal from the REST API.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from secretops.errors import SecretopsError

ALERT_EVENT = "secret_scanning_alert"
LOCATION_EVENT = "secret_scanning_alert_location"
STARTING_ACTIONS = {ALERT_EVENT: {"created", "reopened"}, LOCATION_EVENT: {"created"}}
KNOWN_EVENTS = {*STARTING_ACTIONS, "ping"}


class DeliveryRefused(SecretopsError):
    """A delivery that is not answered: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_signature(secret: bytes, body: bytes, header: str | None) -> None:
    if not header:
        raise DeliveryRefused(401, "unsigned delivery (no X-Hub-Signature-256)")
    if not hmac.compare_digest(signature(secret, body).encode(), header.strip().encode()):
        raise DeliveryRefused(401, "wrong signature (X-Hub-Signature-256)")


class SeenDeliveries:
    """Delivery GUIDs seen in the last ``keep_seconds`` (at most ``most``): a GUID seen again
    is a replay. Thread-safe."""

    def __init__(self, keep_seconds: float = 7 * 24 * 3600, most: int = 100_000) -> None:
        self.keep, self.most = keep_seconds, most
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._seen and (len(self._seen) >= self.most
                                  or next(iter(self._seen.values())) < now - self.keep):
                self._seen.popitem(last=False)
            if delivery in self._seen:
                return False
            self._seen[delivery] = now
            return True


def check_delivery(headers: Any, seen: SeenDeliveries) -> tuple[str, str]:
    """The event type and delivery GUID, once the delivery is new and of a known type (the
    signature is checked before this)."""
    delivery = str(headers.get("x-github-delivery") or "").strip()
    if not delivery or len(delivery) > 100 or not delivery.isprintable():
        raise DeliveryRefused(400, "no X-GitHub-Delivery")
    event = str(headers.get("x-github-event") or "").strip()
    if event not in KNOWN_EVENTS:
        raise DeliveryRefused(400, f"unknown event type {event[:40]!r}")
    if not seen.first_time(delivery):
        raise DeliveryRefused(409, f"replayed delivery {delivery}")
    return event, delivery


@dataclass(frozen=True)
class AlertEvent:
    """A delivery that asks for the alert to be looked at."""

    event: str
    action: str
    delivery: str
    repository: str
    number: int
    location: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    html_url: str = ""

    @property
    def starts(self) -> bool:
        return self.action in STARTING_ACTIONS.get(self.event, set())


def _str(value: Any, limit: int = 200) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return "".join(c for c in str(value) if c.isprintable())[:limit]


def location_of(data: Any) -> dict[str, str]:
    """A location object (``{"type": "commit", "details": {...}}``) as plain fields."""
    if not isinstance(data, dict):
        return {}
    found = data.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    fields = {"type": data.get("type"), "path": details.get("path"),
              "line": details.get("start_line"), "commit": details.get("commit_sha"),
              "url": details.get("blob_url") or details.get("commit_url")
              or details.get("issue_url") or details.get("pull_request_url")}
    return {k: t for k, v in fields.items() if (t := _str(v))}


def parse_event(event: str, delivery: str, payload: Any) -> AlertEvent | None:
    """The alert a delivery names; None for ``ping``. Refuses a payload without one."""
    if event == "ping":
        return None
    if not isinstance(payload, dict):
        raise DeliveryRefused(400, "the payload is not a JSON object")
    alert, repo = payload.get("alert"), payload.get("repository")
    if not isinstance(alert, dict) or not isinstance(repo, dict):
        raise DeliveryRefused(400, f"{event} without alert and repository")
    number, name = alert.get("number"), repo.get("full_name")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1 \
            or not isinstance(name, str) or "/" not in name:
        raise DeliveryRefused(400, f"{event} without an alert number and repository name")
    return AlertEvent(event=event, action=_str(payload.get("action"), 40), delivery=delivery,
                      repository=_str(name), number=number,
                      location=location_of(payload.get("location")),
                      created_at=_str(alert.get("created_at")),
                      html_url=_str(alert.get("html_url"), 400))
