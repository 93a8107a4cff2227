"""CloudTrail for the sandbox: an in-memory event log and its ``LookupEvents`` API.

The AWS proxy (:mod:`sandbox.aws`) adds one record per audited call; :func:`lookup_events`
answers ``LookupEvents`` (JSON 1.1) the way CloudTrail does: at most one lookup attribute,
``StartTime`` / ``EndTime``, ``MaxResults`` up to 50 and an opaque ``NextToken``, newest
event first, each with its full record as the ``CloudTrailEvent`` JSON string.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ATTRIBUTES = (
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
)


@dataclass(frozen=True)
class TrailEvent:
    """One CloudTrail record and the fields LookupEvents filters on."""

    record: dict[str, Any]
    time: float
    username: str
    resources: tuple[tuple[str, str], ...]  # (type, ARN)

    def values(self, attribute: str) -> set[str]:
        """The values of a lookup attribute for this event."""
        record = self.record
        if attribute == "ResourceName":
            names = {arn for _, arn in self.resources}
            names |= {arn.split(":secret:", 1)[-1][:-7] for arn in names if ":secret:" in arn}
            secret_id = record.get("requestParameters", {}).get("secretId")
            return names | ({secret_id} if secret_id else set())
        return {
            "EventId": {record["eventID"]},
            "EventName": {record["eventName"]},
            "ReadOnly": {str(record["readOnly"]).lower()},
            "Username": {self.username},
            "ResourceType": {kind for kind, _ in self.resources},
            "EventSource": {record["eventSource"]},
            "AccessKeyId": {record["userIdentity"].get("accessKeyId", "")},
        }[attribute]

    def to_lookup(self) -> dict[str, Any]:
        return {
            "EventId": self.record["eventID"],
            "EventName": self.record["eventName"],
            "ReadOnly": str(self.record["readOnly"]).lower(),
            "AccessKeyId": self.record["userIdentity"].get("accessKeyId", ""),
            "EventTime": self.time,
            "EventSource": self.record["eventSource"],
            "Username": self.username,
            "Resources": [
                {"ResourceType": kind, "ResourceName": arn} for kind, arn in self.resources
            ],
            "CloudTrailEvent": json.dumps(self.record),
        }


class CloudTrailLog:
    """The events, oldest first, safe to add to from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[TrailEvent] = []

    def add(
        self, record: dict[str, Any], time: float, username: str, resources: list[dict[str, str]]
    ) -> None:
        event = TrailEvent(
            record, time, username, tuple((item["type"], item["ARN"]) for item in resources)
        )
        with self._lock:
            self._events.append(event)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def events(self) -> list[TrailEvent]:
        """Every event, newest first."""
        with self._lock:
            return sorted(self._events, key=_order, reverse=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


def _error(kind: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"__type": kind, "message": message}


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _order(event: TrailEvent) -> tuple[float, str]:
    return event.time, str(event.record["eventID"])


def _token(event: TrailEvent) -> str:
    """A token naming the last event of a page: the next page starts just after it, so
    events added in between neither repeat nor shift the pages."""
    moment, event_id = _order(event)
    return base64.urlsafe_b64encode(f"{moment!r}|{event_id}".encode()).decode()


def _position(token: str) -> tuple[float, str]:
    moment, _, event_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
    if not event_id:
        raise ValueError("not a NextToken")
    return float(moment), event_id


def lookup_events(log: CloudTrailLog, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Answer a ``LookupEvents`` request: ``(HTTP status, JSON body)``."""
    attributes = request.get("LookupAttributes") or []
    if len(attributes) > 1:
        return _error(
            "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."
        )
    for attribute in attributes:
        if attribute.get("AttributeKey") not in ATTRIBUTES or not attribute.get("AttributeValue"):
            return _error(
                "InvalidLookupAttributesException",
                f"Invalid lookup attribute: {attribute.get('AttributeKey')!r}.",
            )
    limit = int(request.get("MaxResults") or 50)
    if not 1 <= limit <= 50:
        return _error("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    try:
        start = _epoch(request["StartTime"]) if request.get("StartTime") is not None else None
        end = _epoch(request["EndTime"]) if request.get("EndTime") is not None else None
    except ValueError:
        return _error("InvalidTimeRangeException", "StartTime and EndTime must be timestamps.")
    if start is not None and end is not None and start > end:
        return _error("InvalidTimeRangeException", "StartTime must be before EndTime.")
    try:
        after = _position(request["NextToken"]) if request.get("NextToken") else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return _error("InvalidNextTokenException", "The NextToken is not valid.")
    matching = [
        event
        for event in log.events()
        if (after is None or _order(event) < after)
        and (start is None or event.time >= start)
        and (end is None or event.time <= end)
        and all(
            attribute["AttributeValue"] in event.values(attribute["AttributeKey"])
            for attribute in attributes
        )
    ]
    chosen = matching[:limit]
    answer: dict[str, Any] = {"Events": [event.to_lookup() for event in chosen]}
    if len(matching) > limit:
        answer["NextToken"] = _token(chosen[-1])
    return 200, answer
