"""Stage a key that a person created (the Anthropic console has no API for it) as the pending
version in every store of an environment, so the rotation finds it in its first step."""

from __future__ import annotations

from collections.abc import Sequence

from secretops.errors import NotRetryable
from secretops.models import Credential, SecretValue
from secretops.ports import SecretStore


def check_shape(value: SecretValue, prefix: str | None) -> None:
    """Refuse what is clearly not a key of the provider, before anything is stored."""
    text = value.reveal()
    if text != text.strip() or any(c.isspace() for c in text):
        raise NotRetryable("the key contains white space; paste it exactly as shown")
    if prefix and not text.startswith(prefix):
        raise NotRetryable(f"the key does not start with the expected prefix {prefix!r}")
    if len(text) < 20:
        raise NotRetryable("the key is too short to be a provider key")


def stage_key(stores: Sequence[SecretStore], value: SecretValue) -> list[str]:
    """Store ``value`` as PENDING in every store; returns the pending version ids."""
    credential = Credential(value)
    return [f"{store.name}: pending version {store.stage_pending(credential).version_id}"
            for store in stores]
