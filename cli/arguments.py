"""Argument types of the command line: each refuses a bad value with one line saying why.

Standard library only (the CLI's start-up stays fast). A refused value is quoted shortened
and with control characters escaped, so the one line stays one line.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import NoReturn

MAX_TEXT = 200
CLOCK_SKEW = timedelta(minutes=5)


def shown(text: str, limit: int = 40) -> str:
    """``text`` as an error line quotes it: escaped, at most ``limit`` characters."""
    quoted = repr(text[:limit])
    return quoted + ("..." if len(text) > limit else "")


def iso_time(text: str) -> datetime:
    """An ISO 8601 time, with a zone (``Z``, ``+01:00``) or taken as UTC; not in the future."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {shown(text)} (e.g. 2026-11-29T10:00Z)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC) + CLOCK_SKEW:
        raise argparse.ArgumentTypeError(
            f"{moment:%Y-%m-%dT%H:%MZ} is in the future: give when the exposure began")
    return moment.astimezone(UTC)


def person_text(text: str) -> str:
    """A name or a reason as a record keeps it: not empty, one line, at most ``MAX_TEXT``
    characters, no control characters. Kept as given (surrounding blanks trimmed)."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise argparse.ArgumentTypeError(
            f"must be one line of text without control characters: {shown(value)}")
    if len(value) > MAX_TEXT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TEXT} characters")
    return value


def positive_int(text: str) -> int:
    """A whole number, at least 1."""
    try:
        number = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {shown(text)}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit code 2), pointing at
    the command's ``--help`` rather than printing the usage."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
