"""Plain data types shared by every layer.

A secret value only ever travels as :class:`SecretValue`: its ``repr`` and ``str`` are
masked, it refuses to be pickled or JSON-encoded by accident, and it registers itself with
the redaction filter (``secretops.redaction``) so that a value that slips into a log line is
still masked.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

MASK = "**********"


class SecretValue:
    """A secret string that does not show itself.

    ``reveal()`` is the only way to the plain text; call it at the last moment, where the value
    is handed to a client library.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str, *, remember: bool = True) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret value must be a non-empty string")
        self._value = value
        if remember:
            from secretops import redaction

            redaction.remember(value)

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible id for reports: the first 12 hex digits of SHA-256."""
        import hashlib

        return hashlib.sha256(self._value.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"SecretValue('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        import hmac

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or persisted")

    def __len__(self) -> int:
        return len(self._value)


class Environment(enum.StrEnum):
    development = "development"
    staging = "staging"
    production = "production"


class DbStrategy(enum.StrEnum):
    alternating = "alternating"
    single = "single"


class KeyCheck(enum.Enum):
    """What a provider says of a key. Only a refusal of the key itself (OpenAI's 401
    ``invalid_api_key``, Anthropic's 401) is ``REFUSED``: a key refused for want of a scope
    was authenticated, and works for whatever its scopes allow, for the application and for
    whoever holds a leaked copy. Truthy when the key works."""

    WORKS = "accepted"
    SCOPED = "accepted by a call its scopes allow (it may not list models)"
    AUTHENTICATED = "authenticated, but no call made to check it is within its scopes"
    REFUSED = "refused"

    def __bool__(self) -> bool:
        return self is not KeyCheck.REFUSED


class RotationStatus(enum.StrEnum):
    """How one rotation of a fleet run ended."""

    rotated = "rotated"
    failed = "failed"
    needs_person = "needs a person"


class Stage(enum.StrEnum):
    """Where a version sits in a store, in AWS Secrets Manager's words."""

    current = "AWSCURRENT"
    pending = "AWSPENDING"
    previous = "AWSPREVIOUS"


@dataclass(frozen=True)
class Credential:
    """What a store holds for one secret: the secret itself and, for a database login, the
    user name that goes with it (not secret)."""

    secret: SecretValue
    username: str | None = None
    # the provider's id of the key (an API key secretops created); not part of the value
    key_id: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (f"Credential(secret={self.secret!r}, username={self.username!r}, "
                f"key_id={self.key_id!r})")


@dataclass(frozen=True)
class StoredVersion:
    """A version of a credential in a store, known by reference: never carries the value."""

    store: str
    version_id: str
    stage: Stage
    fingerprint: str
    username: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Holdings:
    """What a store holds as each stage, and the provider key ids recorded with its values
    (by each value's fingerprint): everything a revocation needs of a store, in one look."""

    current: Credential | None = None
    pending: Credential | None = None
    previous: Credential | None = None
    key_ids: Mapping[str, str] = field(default_factory=dict)

    def held(self, stage: Stage) -> Credential | None:
        return {Stage.current: self.current, Stage.pending: self.pending,
                Stage.previous: self.previous}[stage]


@dataclass(frozen=True)
class ProviderKey:
    """An API key as the provider lists it: id and metadata, never the value."""

    id: str
    name: str
    status: str
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    redacted_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None


def hint_parts(hint: str | None) -> tuple[str, str] | None:
    """The shown head and tail of a redacted key, in either form a provider lists:
    ``sk-svcacct-abc...wxyz`` or ``sk-svcac****************wxyz`` (also ``sk-svcac****...****``
    with no tail). None when the hint shows no head or no tail: such a hint cannot tell one
    key from another, and a key is never identified by it."""
    if not hint:
        return None
    if "..." in hint:
        head, _, tail = hint.partition("...")
    elif "*" in hint:
        head, tail = hint[: hint.index("*")], hint[hint.rindex("*") + 1 :]
    else:
        return None
    head, tail = head.rstrip("*"), tail.lstrip("*")
    return (head, tail) if head and tail else None


def matches_hint(value: str, hint: str | None) -> bool:
    """Whether ``value`` fits a redacted form (see :func:`hint_parts`): the same head and tail,
    with something hidden between them."""
    parts = hint_parts(hint)
    if parts is None:
        return False
    head, tail = parts
    return len(value) > len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def keys_with_value(keys: Iterable[ProviderKey], value: SecretValue) -> list[ProviderKey]:
    """The keys of a provider's listing whose redacted hint fits ``value``: the active ones
    when an active key and an inactive one share the hint."""
    return KeyListing.of(keys).with_value(value)


class KeyListing:
    """A provider's listing of keys, indexed by id and by the tail each key's hint shows, so
    that finding a value's key reads only the keys that could be it: a fleet run looks up
    hundreds of values in one listing of hundreds of keys."""

    def __init__(self, keys: Iterable[ProviderKey]) -> None:
        self.keys = tuple(keys)
        self._by_id: dict[str, list[ProviderKey]] = {}
        # by the length of the tail, then the tail: (place in the listing, head, key)
        self._by_tail: dict[int, dict[str, list[tuple[int, str, ProviderKey]]]] = {}
        for place, key in enumerate(self.keys):
            self._by_id.setdefault(key.id, []).append(key)
            parts = hint_parts(key.redacted_value)
            if parts is not None:
                head, tail = parts
                self._by_tail.setdefault(len(tail), {}).setdefault(tail, []).append(
                    (place, head, key))

    @classmethod
    def of(cls, keys: Iterable[ProviderKey]) -> KeyListing:
        return keys if isinstance(keys, KeyListing) else cls(keys)

    def __iter__(self) -> Iterator[ProviderKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def with_id(self, key_id: str) -> list[ProviderKey]:
        return list(self._by_id.get(key_id, ()))

    def with_value(self, value: SecretValue) -> list[ProviderKey]:
        """The keys whose hint fits ``value`` (as :func:`matches_hint`): the active ones when
        an active key and an inactive one share the hint."""
        plain = value.reveal()
        fits = sorted((place, key) for size, tails in self._by_tail.items()
                      if len(plain) > size for place, head, key in tails.get(plain[-size:], ())
                      if len(plain) > len(head) + size and plain.startswith(head))
        found = [key for _, key in fits]
        return [key for key in found if key.status == "active"] or found


def keys_for(keys: Iterable[ProviderKey], value: SecretValue | Credential,
             ids: Mapping[str, str]) -> list[ProviderKey]:
    """The keys of a listing that are ``value``'s: the key with the id recorded beside the
    value (``ids``: fingerprint -> key id, see ``SecretStore.key_ids``) when there is one, as
    for every key secretops created; else the key a two-part credential names by its first
    part (an AWS access key id); else, for a key made by hand, those whose redacted hint fits
    the value. Pass a :class:`KeyListing` to look up many values in one listing."""
    credential = value if isinstance(value, Credential) else Credential(value)
    listing = KeyListing.of(keys)
    key_id = ids.get(credential.secret.fingerprint())
    if key_id is not None:
        return listing.with_id(key_id)
    if credential.username is not None:
        named = listing.with_id(credential.username)
        if named:
            return named
    return listing.with_value(credential.secret)


def as_credential(value: SecretValue | Credential) -> Credential:
    """A bare value is a credential of one part."""
    return value if isinstance(value, Credential) else Credential(value)


@dataclass(frozen=True)
class NewProviderKey:
    """A key just created at the provider: its id and the value (masked); ``username`` is
    the public part of a two-part credential (an AWS access key id), stored beside the value
    as a database login's user name is."""

    key: ProviderKey
    value: SecretValue
    username: str | None = None

    def credential(self) -> Credential:
        return Credential(self.value, username=self.username, key_id=self.key.id)


@dataclass(frozen=True)
class PodLog:
    pod: str
    started_at: datetime | None
    ready: bool
    log: str


@dataclass(frozen=True)
class RolloutStatus:
    done: bool
    message: str
    observed_generation: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    replicas: int = 0
    deadline_exceeded: bool = False


@dataclass(frozen=True)
class AccessGrant:
    """One subject that can read Secrets somewhere, and through what."""

    environment: str
    subject_kind: str  # User | Group | ServiceAccount | IAMPrincipal
    subject: str
    via: str  # e.g. "RoleBinding intelliprompt/devops-secrets -> Role secret-reader"
    verbs: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessEvent:
    """One read of a secret in an access log (Kubernetes audit log, CloudTrail)."""

    source: str  # kubernetes-audit | cloudtrail | provider
    time: datetime
    actor: str
    action: str
    target: str
    detail: str = ""
