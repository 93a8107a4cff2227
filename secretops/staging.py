"""Stage a key that a person created (the Anthropic console has no API for it) as the pending
version in every store of an environment, so the rotation finds it in its first step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from secretops.errors import InventoryError, NotRetryable
from secretops.inventory import Inventory
from secretops.models import Credential, SecretValue, Stage
from secretops.ports import KeyProvider, SecretStore
from secretops.providers import PersonInstructions as PersonInstructions

# how each provider's keys begin, to say whose key was given instead of the expected one
KEY_PREFIXES = {"sk-ant-": "an Anthropic key", "sk-": "an OpenAI key"}


def check_shape(value: SecretValue, prefix: str | None) -> None:
    """Refuse what is clearly not a key of the provider, before anything is stored. The
    reason never quotes the value."""
    text = value.reveal()
    if not text.strip():
        raise NotRetryable("no key was given (the field was empty or only white space)")
    if text != text.strip() or any(c.isspace() for c in text):
        raise NotRetryable("the key contains white space; paste it exactly as shown")
    if prefix and not text.startswith(prefix):
        other = next((whose for start, whose in KEY_PREFIXES.items()
                      if text.startswith(start) and not start.startswith(prefix)), None)
        seems = f"; it looks like {other}" if other else ""
        raise NotRetryable(f"the key does not start with the expected prefix {prefix!r}{seems}")
    if len(text) < 20:
        raise NotRetryable("the key is too short to be a provider key")


def needs_person(provider: KeyProvider, stores: Sequence[SecretStore]) -> bool:
    """Whether a person must create the next key: the provider has no key-creation API and
    no pending key (from the form, the CLI or an interrupted run) is staged yet."""
    return not provider.can_create_keys and not any(s.read(Stage.pending) for s in stores)


def stage_key(stores: Sequence[SecretStore], value: SecretValue,
              provider: KeyProvider | None = None) -> list[str]:
    """Store ``value`` as PENDING in every store; returns the pending version ids. With the
    ``provider``, the key's id is looked up once by its redacted hint and recorded with the
    value, so every later step (revocation, a leak, the orphan sweep) knows the key by id."""
    key_id = key_id_by_hint(provider, value) if provider is not None else None
    credential = Credential(value, key_id=key_id)
    lines = [f"{store.name}: pending version {store.stage_pending(credential).version_id}"
             for store in stores]
    if provider is not None:
        lines.append(f"the provider knows {value.fingerprint()} as key {key_id}" if key_id else
                     f"the provider's listing cannot tell which key is {value.fingerprint()} "
                     "(no hint, or several, fit it); later steps match it by hint")
    return lines


def key_id_by_hint(provider: KeyProvider, value: SecretValue) -> str | None:
    """The id of the key a person made, told by its hint in the provider's listing; None
    when the hint fits no key or several."""
    try:
        key = provider.find_key(value)
    except NotRetryable:  # several keys fit the hint, or the listing is refused: unknown
        return None
    return key.id if key is not None else None


def person_instructions(inventory: Inventory, secret: str, environment: str) -> PersonInstructions:
    """What the person who creates the secret's next key in ``environment`` is told, by its
    provider (InventoryError for a provider that creates its keys itself)."""
    provider = inventory.provider_of(secret)
    if provider.person is None:
        raise InventoryError(f"provider {provider.name} creates its keys through its API: "
                             "no person is asked for one")
    key_name = f"secretops-{inventory.application}-{environment}-{secret}"
    return provider.person(inventory.provider_settings(secret), key_name, environment)


def recorded_key_ids(stores: Iterable[SecretStore]) -> dict[str, str]:
    """The provider key ids the stores recorded with their values (fingerprint -> key id)."""
    ids: dict[str, str] = {}
    for store in stores:
        ids.update(store.key_ids())
    return ids
