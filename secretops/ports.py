"""The outside world, as the flows see it: one small protocol per external system.

Each protocol has one real implementation in ``secretops/adapters/``; tasks depend only on
these protocols. No method takes or returns a plain secret string: values travel as
:class:`~secretops.models.SecretValue` (masked) inside :class:`~secretops.models.Credential`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from secretops.models import (
    AccessEvent,
    AccessGrant,
    Credential,
    Holdings,
    KeyCheck,
    NewProviderKey,
    PodLog,
    ProviderKey,
    RolloutStatus,
    SecretValue,
    Stage,
    StoredVersion,
)


class SecretStore(Protocol):
    """One place that holds one secret in one environment (a key of a Kubernetes Secret, an
    AWS Secrets Manager secret, a key of a ``.env`` file, a Docker secret file).

    Versions are staged the AWS way: CURRENT, PENDING, PREVIOUS. Every method is idempotent.
    """

    @property
    def name(self) -> str:
        """Where the store is, for reports: ``k8s:intelliprompt-staging/api-keys#openai``."""
        ...

    def read(self, stage: Stage = Stage.current) -> Credential | None: ...

    def version(self, stage: Stage = Stage.current) -> StoredVersion | None: ...

    def stage_pending(self, credential: Credential) -> StoredVersion:
        """Store ``credential`` as PENDING, with its ``key_id`` when it has one (recorded
        with the value or before it, so a value is never stored without its id). The same
        pending credential again is a no-op; a different pending credential raises
        :class:`secretops.errors.PendingConflict`."""
        ...

    def key_ids(self) -> Mapping[str, str]:
        """The provider key ids recorded with this store's values, by each value's
        fingerprint: a value edited by hand has another fingerprint, so it never inherits
        the id of the key it replaced."""
        ...

    def holdings(self) -> Holdings:
        """What every stage holds and the key ids recorded with the values (as
        :meth:`read` and :meth:`key_ids` say), in as few reads as the store allows."""
        ...

    def promote_pending(self) -> StoredVersion | None:
        """PENDING becomes CURRENT and CURRENT becomes PREVIOUS; returns the version now
        current. PENDING stays marked (on the version that is now current) until
        :meth:`clear_pending` finishes the rotation, so a rerun sees the promotion done and a
        rollback knows what failed. With PENDING already current, returns the current
        version; with no pending version at all, None."""
        ...

    def restore_previous(self, failed: Credential) -> StoredVersion:
        """Undo a promotion: if CURRENT is ``failed``, PREVIOUS becomes CURRENT again."""
        ...

    def clear_pending(self) -> None:
        """Finish a rotation: no PENDING marker, and no key id recorded for a value no
        stage holds any more."""
        ...


class KeyProvider(Protocol):
    """A provider's admin API for the keys it issues (OpenAI, Anthropic, AWS IAM). A key's
    value may have two parts (an AWS access key id and its secret): the checks then take the
    whole :class:`Credential`, whose ``username`` is the public part; a bare value is a
    credential of one part."""

    @property
    def can_create_keys(self) -> bool: ...

    @property
    def max_keys(self) -> int | None:
        """How many keys may exist at once where a new one is made (AWS: two per user);
        None for no limit."""
        ...

    @property
    def revocation_is_final(self) -> bool:
        """Whether :meth:`revoke_key` already revokes for good (OpenAI deletes the key), so
        that no ``final`` revocation follows it."""
        ...

    def create_key(self, name: str, environment: str | None = None,
                   lifetime: timedelta | None = None,
                   scopes: list[str] | None = None) -> NewProviderKey:
        """A new key named ``name`` for ``environment`` (OpenAI: minted on its service
        account; AWS: on its IAM user), expiring after ``lifetime`` (never, without one),
        limited to ``scopes``."""
        ...

    def list_keys(self) -> Sequence[ProviderKey]: ...

    def get_key(self, key_id: str) -> ProviderKey | None:
        """The provider's record of the key with this id; None when it does not exist."""
        ...

    def find_key(self, value: SecretValue | Credential) -> ProviderKey | None:
        """The provider's record of the key with this value, matched by its redacted hint
        (or by the public part of a two-part credential)."""
        ...

    def revoke_key(self, key_id: str, final: bool = False,
                   listed: ProviderKey | None = None) -> bool:
        """Delete (OpenAI) or deactivate (Anthropic, AWS; with ``final``, archive or delete:
        it can never be made active again). False when it was already revoked. ``listed``:
        the key's record in a listing just taken, which spares asking the provider for it
        (its status is then the listing's)."""
        ...

    def check_key(self, value: SecretValue | Credential) -> KeyCheck:
        """Whether the provider accepts the key (LLM providers: ``GET /v1/models``, and a
        refusal for want of a scope is checked again with a call such a key is allowed, see
        :class:`KeyCheck`; AWS: ``sts:GetCallerIdentity``)."""
        ...


class Cluster(Protocol):
    """The Kubernetes API, as kubectl would use it."""

    def read_secret(self, namespace: str, name: str) -> dict[str, SecretValue] | None: ...

    def secret_fingerprints(self, namespace: str, name: str) -> dict[str, str] | None:
        """Each key of the Secret with the fingerprint of its value (no value is read)."""
        ...

    def restart_deployment(self, namespace: str, name: str) -> str:
        """``kubectl rollout restart``: returns the ``restartedAt`` stamp it set."""
        ...

    def wait_for_rollout(self, namespace: str, name: str, timeout: float) -> RolloutStatus:
        """``kubectl rollout status``: returns when done, failed or timed out."""
        ...

    def pods_started_since(self, namespace: str, deployment: str, since: datetime) -> list[PodLog]:
        ...

    def force_sync_external_secret(self, namespace: str, name: str) -> str:
        """Set the ``force-sync`` annotation; returns the ``refreshTime`` seen before."""
        ...

    def check_external_secret_syncable(self, namespace: str, name: str) -> None:
        """Refuse (not retryable) when External Secrets Operator would ignore a force-sync."""
        ...

    def wait_external_secret_synced(
        self, namespace: str, name: str, after: str, timeout: float
    ) -> str:
        """Wait for ``SecretSynced`` with a ``refreshTime`` newer than ``after``."""
        ...

    def secret_readers(self, namespace: str) -> list[AccessGrant]:
        """Subjects that may get/list/watch Secrets in the namespace (RBAC)."""
        ...

    def secret_read_events(self, namespace: str, name: str, since: datetime) -> list[AccessEvent]:
        """Reads of the Secret in the Kubernetes audit log."""
        ...


class Database(Protocol):
    """PostgreSQL, through an admin login."""

    def set_password(self, role: str, password: SecretValue) -> None:
        """``ALTER ROLE ... PASSWORD`` with a SCRAM-SHA-256 verifier computed on the client."""
        ...

    def can_login(self, role: str, password: SecretValue) -> bool: ...

    def can_use_application(self, role: str, password: SecretValue) -> bool:
        """A new login as ``role`` that can read the application's tables."""
        ...

    def terminate_sessions(self, role: str, started_before: datetime | None = None) -> int:
        """End the role's sessions (only those begun before ``started_before``, if given)."""
        ...

    def ensure_login_role(self, role: str, member_of: str) -> bool:
        """Create a LOGIN role that inherits ``member_of``; False when it already existed."""
        ...

    def disable_password(self, role: str) -> None:
        """Invalidate the role's password (``PASSWORD NULL``)."""
        ...


class AwsAccess(Protocol):
    """IAM and CloudTrail, for the access audit."""

    def secret_readers(self, secret_id: str) -> list[AccessGrant]: ...

    def secret_read_events(self, secret_id: str, since: datetime) -> list[AccessEvent]: ...
