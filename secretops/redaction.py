"""Defence in depth: mask every secret value this process has seen, wherever it is printed.

Every :class:`secretops.models.SecretValue` registers its plain text here when it is made.
:class:`RedactingFilter`, installed on the root logger and on Prefect's loggers, replaces any
registered value in a log record (message, arguments and exception text) with the mask.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MASK = "**********"
_MIN_LENGTH = 8  # shorter strings are too common to mask safely and are never real secrets

_lock = threading.Lock()
_values: set[str] = set()


def remember(value: str) -> None:
    if len(value) >= _MIN_LENGTH:
        with _lock:
            _values.add(value)


def known_values() -> frozenset[str]:
    with _lock:
        return frozenset(_values)


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """Return ``text`` with every known secret value (longest first) replaced by the mask."""
    candidates = known_values() if values is None else frozenset(values)
    if not text or not candidates:
        return text
    for value in sorted(candidates, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secret values in the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        return True


_FILTER = RedactingFilter()
LOGGER_NAMES = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "secretops")


def install(logger_names: Iterable[str] = LOGGER_NAMES) -> None:
    """Install the filter on the given loggers and on each of their handlers (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
