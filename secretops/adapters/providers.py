"""The LLM providers' admin APIs (implement ``KeyProvider``) on their official clients.

- :class:`~secretops.adapters.openai_admin.OpenAIProvider` (``openai``): keys are minted on
  the environment's service account with an expiry, or, where that is refused or no account
  is set, as a new service account per key; revoking deletes the key (and a per-key account).
- :class:`~secretops.adapters.anthropic_admin.AnthropicProvider` (``anthropic``): keys are
  made by a person in the console; the API lists them and sets their status (``inactive``,
  or ``archived`` for good).

This module holds what both share: one configuration of the clients' retries and timeouts,
and the mapping of the clients' errors. Each client retries a call itself up to
``ATTEMPTS - 1`` times while the provider throttles (429), fails (5xx) or cannot be reached,
with jittered exponential backoff that honours ``Retry-After``; 400, 401, 403 and 404 are
answered at once. A key creation is never repeated by the client (it may have happened):
a key such a failure left behind is an orphan the rotation revokes by its name.

Every failure becomes :class:`ProviderUnavailable` (429, 5xx, timeouts, connection errors,
through every attempt: final for the step, see :mod:`secretops.adapters.retry`) or
:class:`ProviderRefused` (400, 401, 403, 404: do not); a key creation that failed
transiently is :class:`CreationFailed`, which the step retries, since no call did. Their
messages name the provider, the call, the HTTP status and the provider's error type, and
never a key or a response body, which can echo part of a key (the clients' own messages
quote the body, so they are dropped).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

from secretops.adapters.retry import CALL_ATTEMPTS, is_transient_status
from secretops.errors import NotRetryable, Retryable, Unavailable
from secretops.models import (
    Credential,
    ProviderKey,
    SecretValue,
    as_credential,
    keys_with_value,
)

ATTEMPTS = CALL_ATTEMPTS
TIMEOUT_SECONDS, CONNECT_SECONDS = 15.0, 5.0
PAGE = 100


class ProviderUnavailable(Unavailable):
    """The provider stayed throttling, failing or unreachable through the call's attempts."""


class CreationFailed(Retryable):
    """A key creation failed transiently. Its client does not repeat it (the key may have
    been made), so the step does: it first revokes a key that the failure left behind."""


class ProviderRefused(NotRetryable):
    """The provider refused the request (bad credentials, missing object, bad input)."""


class ProviderKeyGone(ProviderRefused):
    """The provider has no key (or account) with that id: 404."""


def error_type(body: object) -> str:
    """The provider's error code or type (``invalid_api_key``, ``not_found_error``...) from
    an error body as the clients keep it (OpenAI: the ``error`` object; Anthropic: the whole
    answer), or ``""``."""
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    found = error.get("code") or error.get("type") or ""
    return found if isinstance(found, str) and len(found) <= 64 else ""


def failure(provider: str, call: str, exc: Exception, creating: bool = False) -> Exception:
    """The error to raise for a client's exception: never its message, which quotes the
    provider's answer. ``creating``: the call made a key, and its client did not retry it."""
    unavailable = CreationFailed if creating else ProviderUnavailable
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return unavailable(f"{provider} {call} failed: {type(exc).__name__}")
    kind = error_type(getattr(exc, "body", None))
    message = f"{provider} {call} failed: HTTP {status}" + (f" ({kind})" if kind else "")
    if is_transient_status(status):
        return unavailable(message)
    if status == 404:
        return ProviderKeyGone(message)
    return ProviderRefused(message)


def timestamp(value: Any) -> datetime | None:
    """A provider's time (Unix seconds, or a datetime the client parsed), in UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


class AdminClient:
    """What both providers share: the calls' error mapping, the lookup of a key by its
    redacted hint, closing the client."""

    provider = ""
    errors: tuple[type[Exception], ...] = ()

    def close(self) -> None:
        """Close the client's connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def calling(self, call: str, creating: bool = False) -> Iterator[None]:
        """Run a call of the client; its errors become ours (see the module doc)."""
        try:
            yield
        except self.errors as exc:
            raise failure(self.provider, call, exc, creating) from None

    def list_keys(self) -> Sequence[ProviderKey]:
        raise NotImplementedError

    def find_key(self, value: SecretValue | Credential) -> ProviderKey | None:
        """The key with this value, told by its redacted hint (head and tail must match);
        None when none fits. Several fitting is an error: the hint cannot tell them apart."""
        found = keys_with_value(self.list_keys(), as_credential(value).secret)
        if len(found) > 1:
            ids = ", ".join(key.id for key in found)
            raise ProviderRefused(f"{self.provider}: several keys fit the value's hint: {ids}")
        return found[0] if found else None
