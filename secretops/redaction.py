"""Defence in depth: mask every secret value this process has seen, wherever it is logged.

Every :class:`secretops.models.SecretValue` registers its plain text here when it is made, and
the first time a new value is registered :func:`install` wires :class:`RedactingFilter` into
logging, so a value that slips into a log line, a ``print`` under ``log_prints=True`` or an
exception traceback is masked before any handler sees it.

Where the filter goes, and why (Prefect 3.9's ``logging.yml``):

- ``get_run_logger()``, ``print`` under ``log_prints=True`` and the engine's own messages
  (``Encountered exception during execution``, ``Task run failed with exception: ... Retry``,
  ``Finished in state Failed(...)``) are records made on the loggers ``prefect.flow_runs`` and
  ``prefect.task_runs``. A filter on those loggers runs before any handler and rewrites the
  record in place, so Prefect's ``APILogHandler`` (the logs stored on the server), the console
  handler and any handler attached later (pytest's capture, a file) all get the masked record.
  Logger filters survive Prefect re-running ``setup_logging``.
- A logger filter does not see records that propagate from child loggers (``secretops.*``,
  ``botocore``, a ``PREFECT_LOGGING_EXTRA_LOGGERS`` logger sending to the API), so the filter
  also goes on every handler attached to any logger at install time: the API handler, the
  console handler and the rest.

Exception texts are rendered once, masked and kept in ``record.exc_text`` (``exc_info`` is
dropped), so a formatter cannot render the raw traceback again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable

MASK = "**********"
_MIN_LENGTH = 8  # shorter strings are too common to mask safely and are never real secrets

_lock = threading.Lock()
_values: set[str] = set()
_forms: set[str] = set()
_patterns: tuple[str, ...] = ()
_ends: dict[str, tuple[str, ...]] = {}
# past this many forms, a text is searched for the forms that end at each of its positions
# (one look-up per character; keys share their first characters, sk-..., not their last)
# instead of for each form in turn: a fleet's hundreds of values made every log line cost a
# scan per value
_SCAN_LIMIT = 64
_loggers_at_install = -1


def _written_forms(value: str) -> set[str]:
    """The ways a value shows up in text: as is, escaped inside a JSON string and inside a
    Python ``repr`` (a dict or an exception's arguments)."""
    return {value, json.dumps(value)[1:-1], repr(value)[1:-1]}


def remember(value: str) -> None:
    """Register a secret value; from now on it is masked in every log record."""
    if len(value) < _MIN_LENGTH:
        return
    global _patterns
    with _lock:
        if value in _values:
            return
        _values.add(value)
        forms = _written_forms(value)
        _forms.update(forms)
        _patterns = tuple(sorted(_forms, key=len, reverse=True))
        for form in forms:  # a new tuple each time: redact reads these without the lock
            _ends[form[-_MIN_LENGTH:]] = (*_ends.get(form[-_MIN_LENGTH:], ()), form)
    if len(logging.Logger.manager.loggerDict) != _loggers_at_install:
        install()


def known_values() -> frozenset[str]:
    with _lock:
        return frozenset(_values)


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """Return ``text`` with every known secret value (longest first, also in its JSON- and
    repr-escaped forms) replaced by the mask."""
    if values is None:
        patterns = _patterns if len(_patterns) <= _SCAN_LIMIT else _present(text, _ends)
    else:
        forms = {form for value in values for form in _written_forms(value)}
        patterns = tuple(sorted(forms, key=len, reverse=True))
    if not text:
        return text
    for pattern in patterns:
        if pattern in text:
            text = text.replace(pattern, MASK)
    return text


def _present(text: str, ends: dict[str, tuple[str, ...]]) -> list[str]:
    """The forms, longest first, whose last characters (every form has at least
    ``_MIN_LENGTH``) occur somewhere in ``text``: the only ones that can be in it."""
    found = {form for i in range(len(text) - _MIN_LENGTH + 1)
             for form in ends.get(text[i:i + _MIN_LENGTH], ())}
    return sorted(found, key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secret values in the rendered message, the exception
    text and the stack text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _patterns:
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
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()
LOGGER_NAMES = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "secretops")


def _all_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    seen: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            seen.setdefault(id(handler), handler)
    return list(seen.values())


def install(logger_names: Iterable[str] = LOGGER_NAMES) -> None:
    """Install the filter on the given loggers and on every handler of every logger
    (idempotent: call it again after logging is reconfigured or a handler is added)."""
    global _loggers_at_install
    _loggers_at_install = len(logging.Logger.manager.loggerDict)
    for name in logger_names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in _all_handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
