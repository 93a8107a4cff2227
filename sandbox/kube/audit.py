"""The API server's audit log: one ``audit.k8s.io/v1`` ``Event`` per line, level Metadata
(who, what, when, outcome; never the request or response body, so never a Secret's data)."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.kube.config import Identity
from sandbox.kube.timefmt import now, rfc3339_micro


@dataclass(frozen=True)
class AuditRequest:
    """What the audit log records about one request."""

    verb: str
    uri: str
    identity: Identity
    source_ip: str
    user_agent: str
    resource: str
    namespace: str
    name: str
    api_version: str
    received: datetime


class AuditLog:
    """Appends audit events to a file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        # one handle for the server's life, a line written (and flushed) per event
        self._handle = path.open("a", encoding="utf-8", buffering=1)

    def record(self, request: AuditRequest, code: int, stage: str = "ResponseComplete",
               audit_id: str | None = None) -> str:
        """Append one event; returns its ``auditID`` (reuse it for a later stage)."""
        audit_id = audit_id or str(uuid.uuid4())
        group, _, version = request.api_version.rpartition("/")
        object_ref: dict[str, Any] = {"resource": request.resource}
        if request.namespace:
            object_ref["namespace"] = request.namespace
        if request.name:
            object_ref["name"] = request.name
        if group:
            object_ref["apiGroup"] = group
        object_ref["apiVersion"] = version
        event = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": audit_id, "stage": stage, "requestURI": request.uri,
            "verb": request.verb,
            "user": {"username": request.identity.username,
                     "groups": list(request.identity.groups)},
            "sourceIPs": [request.source_ip], "userAgent": request.user_agent,
            "objectRef": object_ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": rfc3339_micro(request.received),
            "stageTimestamp": rfc3339_micro(now()),
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": ""},
        }
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line)
        return audit_id
