"""One key of a Kubernetes Secret as a :class:`~secretops.ports.SecretStore`.

The Secret itself holds CURRENT. PENDING and PREVIOUS live in companion Secrets beside it,
``<name>-secretops-pending`` and ``<name>-secretops-previous`` (labelled
``app.kubernetes.io/managed-by: secretops``), under the same keys, so that several stores
of one Secret (``openai`` and ``anthropic`` of ``api-keys``) share the companions.

Promotion writes PREVIOUS first (the value about to be replaced), then the target Secret in
one patch (value and username together). PENDING stays until the rotation finishes
(``clear_pending``): a rerun finds PENDING already current and skips the writes, a rollback
knows which value failed, and the old value is never lost because PREVIOUS is written before
it is replaced.

The time a value became current is recorded beside it, in the annotation
``secretops.io/rotated-at.<key>`` (RFC 3339) of the Secret, written in the same patch as the
value on promotion (one per key, since stores share a Secret), and returned as the current
version's ``created_at``. The value moved to PREVIOUS takes its time along, and a restore
puts it back, so a rolled-back rotation leaves the last successful one's time.

The provider's ids of the keys a store's values are (when secretops created them) are kept
in the annotation ``secretops.io/key-ids.<key>``, a JSON object from each value's fingerprint
to its key id: on the pending companion, written in the same request as the pending value
(so neither is ever stored without the other) and removed with it; on the Secret itself from
the promotion on, written in the same patch as the value, and pruned in that patch (and in a
restore's) to the values some stage holds after it.

Writes that do not depend on what a Secret held (PREVIOUS replaced, PENDING removed) are
merge patches of this store's keys without a read first; the others are guarded by the
resourceVersion of the Secret as read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from secretops import redaction
from secretops.adapters.kube import (
    MANAGED_BY,
    UNREAD,
    KubeCluster,
    Unread,
    decode,
    rfc3339_now,
)
from secretops.adapters.kube_api import KubeRefused, parse_time
from secretops.errors import NotRetryable, PendingConflict
from secretops.models import Credential, Holdings, SecretValue, Stage, StoredVersion

COMPANION_SUFFIX = {Stage.pending: "-secretops-pending", Stage.previous: "-secretops-previous"}
ROTATED_AT = "secretops.io/rotated-at."
KEY_IDS = "secretops.io/key-ids."


def _stamp(secret: Mapping[str, Any] | None, annotation: str) -> str | None:
    """The value of ``annotation`` on ``secret`` (a Secret as JSON), if any."""
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    stamp = annotations.get(annotation)
    return str(stamp) if stamp else None


class KubernetesSecretStore:
    """Key ``key`` (and optionally ``username_key``) of Secret ``namespace/name``."""

    def __init__(
        self,
        cluster: KubeCluster,
        namespace: str,
        name: str,
        key: str,
        username_key: str | None = None,
    ) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._secret = name
        self._key = key
        self._username_key = username_key

    @property
    def name(self) -> str:
        return f"k8s:{self._namespace}/{self._secret}#{self._key}"

    def __repr__(self) -> str:
        return f"KubernetesSecretStore({self.name!r})"

    def secret_name(self, stage: Stage) -> str:
        """The Secret that holds ``stage``: the target itself, or a companion."""
        return self._secret + COMPANION_SUFFIX.get(stage, "")

    def _credential(self, values: Mapping[str, SecretValue]) -> Credential | None:
        secret = values.get(self._key)
        if secret is None:
            return None
        redaction.remember(secret.reveal())
        username = values.get(self._username_key) if self._username_key else None
        return Credential(secret, username.reveal() if username else None)

    def _entries(self, credential: Credential | None) -> dict[str, SecretValue | None]:
        """The keys to write for ``credential`` (None values remove a key)."""
        entries: dict[str, SecretValue | None] = {
            self._key: credential.secret if credential else None
        }
        if self._username_key:
            username = credential.username if credential else None
            if credential is None or username:
                entries[self._username_key] = (
                    SecretValue(username, remember=False) if username else None
                )
        return entries

    @property
    def _rotated_at(self) -> str:
        """The annotation that records when this store's key was last set."""
        return ROTATED_AT + self._key

    def _fetch(self, stage: Stage) -> dict[str, Any] | None:
        """The Secret that holds ``stage``, as read (None: missing)."""
        return self._cluster.get_secret(self._namespace, self.secret_name(stage))

    def _parse(self, secret: dict[str, Any] | None) -> tuple[Credential | None, str | None]:
        """The credential a Secret holds for this store and its ``rotated-at`` stamp."""
        if secret is None:
            return None, None
        name = (secret.get("metadata") or {}).get("name", "")
        data = decode(secret.get("data"), f"{self.name}: Secret {self._namespace}/{name}")
        return self._credential(data), _stamp(secret, self._rotated_at)

    def _get(self, stage: Stage) -> tuple[Credential | None, str | None]:
        """The credential held for ``stage`` and its ``rotated-at`` stamp, in one read."""
        return self._parse(self._fetch(stage))

    def read(self, stage: Stage = Stage.current) -> Credential | None:
        return self._get(stage)[0]

    def _version(
        self, stage: Stage, credential: Credential | None, created_at: datetime | None = None
    ) -> StoredVersion | None:
        if credential is None:
            return None
        fingerprint = credential.secret.fingerprint()
        return StoredVersion(
            store=self.name,
            version_id=fingerprint,
            stage=stage,
            fingerprint=fingerprint,
            username=credential.username,
            created_at=created_at,
        )

    def version(self, stage: Stage = Stage.current) -> StoredVersion | None:
        credential, stamp = self._get(stage)
        return self._version(stage, credential, parse_time(stamp))

    def _required(self, stage: Stage, credential: Credential | None) -> StoredVersion:
        version = self._version(stage, credential)
        if version is None:
            raise NotRetryable(f"{self.name} has no {stage.value} version")
        return version

    def _required_at(self, credential: Credential | None, stamp: str | None) -> StoredVersion:
        """The current version just written (``credential``, as the API answered the write)
        with its rotation time."""
        version = self._version(Stage.current, credential, parse_time(stamp))
        if version is None:
            raise NotRetryable(f"{self.name} has no current version")
        return version

    def _write(
        self, stage: Stage, credential: Credential | None, rotated_at: str | None = None,
        read: dict[str, Any] | Unread | None = UNREAD, ids: Mapping[str, str] | None = None,
    ) -> dict[str, SecretValue]:
        """Set (or with None, remove) this store's keys in the Secret holding ``stage``; for
        CURRENT and PREVIOUS, with ``rotated_at`` as the key's rotation time (None: unknown);
        with ``ids``, the key ids recorded in that Secret (empty: none). ``read``: that
        Secret as just read, if it was. Returns the Secret's values after the write (none
        when there was nothing to remove)."""
        entries = self._entries(credential)
        annotations: dict[str, str | None] = {}
        if stage is not Stage.pending and credential is not None:
            annotations[self._rotated_at] = rotated_at
        if ids is not None:
            annotations[self._key_ids] = _ids_text(ids)
        labels = None if stage is Stage.current else MANAGED_BY
        try:
            return self._cluster.update_secret(
                self._namespace,
                self.secret_name(stage),
                lambda _: entries,
                create_labels=None if credential is None else labels,
                annotations=annotations or None,
                read=read,
            )
        except KubeRefused as exc:
            if exc.status == 404 and credential is None and stage is not Stage.current:
                return {}  # no companion Secret: nothing to remove
            raise

    @staticmethod
    def _same(one: Credential, other: Credential) -> bool:
        return one.secret == other.secret and (
            other.username is None or one.username == other.username
        )

    def stage_pending(self, credential: Credential) -> StoredVersion:
        companion = self._fetch(Stage.pending)
        pending = self._parse(companion)[0]
        if pending is not None:
            if self._same(pending, credential):
                return self._required(Stage.pending, pending)
            raise PendingConflict(f"{self.name} already holds a different pending version")
        ids = ({credential.secret.fingerprint(): credential.key_id} if credential.key_id
               else None)
        written = self._write(Stage.pending, credential, read=companion, ids=ids)
        return self._required(Stage.pending, self._credential(written))

    def promote_pending(self) -> StoredVersion | None:
        companion = self._fetch(Stage.pending)
        pending = self._parse(companion)[0]
        target = self._fetch(Stage.current)
        current, stamp = self._parse(target)
        if pending is None:
            return None
        if current is not None and self._same(current, pending):
            return self._required_at(current, stamp)
        if current is not None:
            self._keep_previous(current, stamp)
        now = rfc3339_now()
        # the ids of the values held once it is promoted: the pending one's and the current's
        recorded, staged = self._ids(target), self._ids(companion)
        held = {pending.secret.fingerprint()} | (
            {current.secret.fingerprint()} if current is not None else set())
        ids = {fp: key for fp, key in {**recorded, **staged}.items() if fp in held}
        written = self._credential(self._write(Stage.current, pending, now, read=target,
                                               ids=None if ids == recorded else ids))
        return self._required_at(written, now)

    def _keep_previous(self, credential: Credential, rotated_at: str | None) -> None:
        """``credential`` as PREVIOUS, with its rotation time: one patch of the companion
        (whatever it held for this key is replaced), or its creation."""
        annotations = {self._rotated_at: rotated_at}
        name = self.secret_name(Stage.previous)
        if self._cluster.patch_secret(self._namespace, name, self._entries(credential),
                                      annotations) is None:
            self._write(Stage.previous, credential, rotated_at, read=None)

    def restore_previous(self, failed: Credential) -> StoredVersion:
        target = self._fetch(Stage.current)
        current = self._parse(target)[0]
        if current is None or current.secret != failed.secret:
            return self._required(Stage.current, current)
        previous, stamp = self._get(Stage.previous)
        if previous is None:
            raise NotRetryable(f"{self.name} has no previous version to restore")
        # the failed value's id stays with it on the pending companion until clear_pending
        recorded = self._ids(target)
        ids = {fp: key for fp, key in recorded.items() if fp != failed.secret.fingerprint()}
        written = self._credential(self._write(Stage.current, previous, stamp, read=target,
                                               ids=None if ids == recorded else ids))
        return self._required_at(written, stamp)

    def clear_pending(self) -> None:
        """Remove PENDING and the key id recorded with it: one patch of the companion, the
        other stores' keys in it left as they are. (The ids recorded on the Secret itself
        were pruned to the values held when the last promotion or restore wrote it.)"""
        self._cluster.patch_secret(self._namespace, self.secret_name(Stage.pending),
                                   self._entries(None), {self._key_ids: None})

    def key_ids(self) -> dict[str, str]:
        return {**self._ids(self._fetch(Stage.current)), **self._ids(self._fetch(Stage.pending))}

    def holdings(self) -> Holdings:
        target, companion = self._fetch(Stage.current), self._fetch(Stage.pending)
        return Holdings(current=self._parse(target)[0], pending=self._parse(companion)[0],
                        previous=self.read(Stage.previous),
                        key_ids={**self._ids(target), **self._ids(companion)})

    @property
    def _key_ids(self) -> str:
        """The annotation that records the key ids of this store's values."""
        return KEY_IDS + self._key

    def _ids(self, secret: Mapping[str, Any] | None) -> dict[str, str]:
        """The key ids recorded on ``secret`` (as read) for this store's key."""
        text = _stamp(secret, self._key_ids)
        try:
            loaded = json.loads(text) if text else {}
        except ValueError:  # edited by hand: no ids, so keys are matched by their hints
            return {}
        return ({str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict)
                else {})


def _ids_text(ids: Mapping[str, str]) -> str | None:
    """Key ids as their annotation holds them (None, for none: the annotation removed)."""
    return json.dumps(dict(ids), sort_keys=True) if ids else None
