"""Timestamps in the formats Kubernetes uses."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(at: datetime | None = None) -> str:
    """Second precision, as ``metav1.Time`` serialises (``2025-01-31T12:00:00Z``)."""
    return (at or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(at: datetime | None = None) -> str:
    """Microsecond precision, as ``metav1.MicroTime`` and audit events serialise."""
    return (at or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(at: datetime) -> str:
    """Nanosecond precision, as the kubelet prefixes log lines with ``timestamps=true``."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


def age(created: str | None) -> str:
    """A duration as kubectl prints ages (``5s``, ``3m``, ``2d``)."""
    if not created:
        return "<unknown>"
    seconds = max(0, int((now() - parse(created)).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
