"""What the sandbox's LLM provider emulators share: key material, time, auth headers, paging.

The emulators themselves:

- :mod:`sandbox.openai_api`: ``GET /v1/models`` and the project service-account / API-key
  admin API (:class:`~sandbox.openai_api.OpenAIState`, :func:`~sandbox.openai_api.openai_app`).
- :mod:`sandbox.anthropic_api`: ``GET /v1/models``, the API-key admin API (list, get, set
  status; no creation) and the console that mints keys as a person would
  (:class:`~sandbox.anthropic_api.AnthropicState`, :func:`~sandbox.anthropic_api.anthropic_app`,
  :func:`~sandbox.anthropic_api.console_app`).

Both states are plain objects guarded by a lock: the supervisor seeds them directly and the
ASGI apps serve them. Plain key values live only in these states (the sandbox plays the
provider); what the apps print or list is the redacted form.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

ALPHANUMERIC = string.ascii_letters + string.digits
URL_SAFE = ALPHANUMERIC + "-_"

T = TypeVar("T")


def random_chars(length: int, alphabet: str = ALPHANUMERIC) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def now() -> datetime:
    return datetime.now(UTC)


def bearer_token(headers: Any) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    value = str(headers.get("authorization", ""))
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def page(
    items: Sequence[T],
    key: Callable[[T], str],
    limit: int,
    after: str | None = None,
    before: str | None = None,
) -> tuple[list[T], bool]:
    """A cursor page of ``items``: those after ``after`` (or before ``before``), at most
    ``limit``; returns the page and whether more items follow in that direction."""
    ids = [key(item) for item in items]
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
        chosen = list(items[start:])
        return chosen[:limit], len(chosen) > limit
    if before is not None:
        end = ids.index(before) if before in ids else 0
        chosen = list(items[:end])
        return chosen[-limit:] if limit else [], len(chosen) > limit
    return list(items[:limit]), len(items) > limit
