"""Secret stores for development: keys of a ``.env`` file and Docker secret files.

Both follow the AWS staging model with sibling files: CURRENT is the file itself, PENDING a
``.pending`` file and PREVIOUS a ``.previous`` file beside it. Every write is atomic (a temp
file in the same folder, mode 0600 before any byte is written, fsync, ``os.replace``) and every
operation holds an exclusive lock on the folder, so a crash leaves either the old or the new
file and two rotations sharing one ``.env`` never lose each other's change. Each method looks
at the files first and does only what is missing, so a rerun after a crash completes the step.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from secretops.adapters.dotenv import DotenvFile, url_with_credentials
from secretops.errors import PendingConflict, SecretopsError
from secretops.models import Credential, Holdings, SecretValue, Stage, StoredVersion

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and its parents) with mode 0700 when it does not exist."""
    if not folder.exists():
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        folder.chmod(DIR_MODE)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically; the file has mode 0600 from its creation."""
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_file(path: Path) -> None:
    """Delete ``path`` if it exists, durably."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _fsync_dir(path.parent)


def read_text(path: Path) -> str | None:
    """The text of ``path`` with line endings as written, or None when it does not exist."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` (``flock`` on the directory itself, so no
    lock file is left behind). Not re-entrant: take it once per operation."""
    ensure_dir(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _same(a: Credential, b: Credential) -> bool:
    return a.secret == b.secret and a.username == b.username


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except FileNotFoundError:
        return None


class _FileStore:
    """The staging logic shared by both stores; subclasses read and write one stage."""

    path: Path

    @property
    def name(self) -> str:
        raise NotImplementedError

    def _stage_path(self, stage: Stage) -> Path:
        if stage is Stage.current:
            return self.path
        suffix = ".pending" if stage is Stage.pending else ".previous"
        return self.path.with_name(self.path.name + suffix)

    def _read(self, stage: Stage) -> Credential | None:
        raise NotImplementedError

    def _write(self, stage: Stage, credential: Credential) -> None:
        raise NotImplementedError

    def _clear(self, stage: Stage) -> None:
        raise NotImplementedError

    def _normalize(self, credential: Credential) -> Credential:
        """The credential as this store can hold it."""
        return credential

    def _version(self, stage: Stage, credential: Credential | None) -> StoredVersion | None:
        if credential is None:
            return None
        fingerprint = credential.secret.fingerprint()
        return StoredVersion(
            store=self.name,
            version_id=fingerprint,
            stage=stage,
            fingerprint=fingerprint,
            username=credential.username,
            created_at=_mtime(self._stage_path(stage)),
        )

    def read(self, stage: Stage = Stage.current) -> Credential | None:
        with folder_lock(self.path.parent):
            return self._read(stage)

    def version(self, stage: Stage = Stage.current) -> StoredVersion | None:
        with folder_lock(self.path.parent):
            return self._version(stage, self._read(stage))

    def stage_pending(self, credential: Credential) -> StoredVersion:
        credential = self._normalize(credential)
        with folder_lock(self.path.parent):
            pending = self._read(Stage.pending)
            if pending is not None and not _same(pending, credential):
                raise PendingConflict(
                    f"{self.name}: a different pending version "
                    f"({pending.secret.fingerprint()}) is already staged"
                )
            if pending is None:
                self._record_id(credential)
                self._write(Stage.pending, credential)
            return self._must_version(Stage.pending, credential)

    def promote_pending(self) -> StoredVersion | None:
        with folder_lock(self.path.parent):
            pending = self._read(Stage.pending)
            current = self._read(Stage.current)
            if pending is None:
                return None
            if current is not None and not _same(current, pending):
                self._write(Stage.previous, current)
            self._write(Stage.current, pending)
            # PENDING stays until the rotation finishes (clear_pending), as in every store:
            # a rerun finds it already current, a rollback knows which value failed.
            return self._must_version(Stage.current, pending)

    def restore_previous(self, failed: Credential) -> StoredVersion:
        with folder_lock(self.path.parent):
            current = self._read(Stage.current)
            if current is None or current.secret != failed.secret:
                if current is None:
                    raise SecretopsError(f"{self.name}: no current value")
                return self._must_version(Stage.current, current)
            previous = self._read(Stage.previous)
            if previous is None:
                raise SecretopsError(f"{self.name}: no previous version to restore")
            self._write(Stage.current, previous)
            self._write(Stage.previous, current)
            return self._must_version(Stage.current, previous)

    def clear_pending(self) -> None:
        with folder_lock(self.path.parent):
            self._clear(Stage.pending)
            self._prune_ids()

    # Key ids live in a sidecar file, ``<file>.key-ids`` (JSON: for each store of the file,
    # fingerprint -> the provider's key id), written only once a key with an id is staged.
    def _id_scope(self) -> str:
        return "value"

    def _ids_path(self) -> Path:
        return self.path.with_name(self.path.name + ".key-ids")

    def _load_ids(self) -> dict[str, dict[str, str]]:
        text = read_text(self._ids_path())
        try:
            loaded = json.loads(text) if text else {}
        except ValueError:  # edited by hand: no ids, so keys are matched by their hints
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {scope: {str(k): str(v) for k, v in ids.items()}
                for scope, ids in loaded.items() if isinstance(ids, dict)}

    def _save_ids(self, ids: dict[str, dict[str, str]]) -> None:
        kept = {scope: found for scope, found in ids.items() if found}
        if kept:
            atomic_write(self._ids_path(), json.dumps(kept, indent=2, sort_keys=True) + "\n")
        else:
            remove_file(self._ids_path())

    def key_ids(self) -> Mapping[str, str]:
        with folder_lock(self.path.parent):
            return self._load_ids().get(self._id_scope(), {})

    def holdings(self) -> Holdings:
        with folder_lock(self.path.parent):
            return Holdings(self._read(Stage.current), self._read(Stage.pending),
                            self._read(Stage.previous),
                            self._load_ids().get(self._id_scope(), {}))

    def _record_id(self, credential: Credential) -> None:
        if credential.key_id is None:
            return
        ids = self._load_ids()
        mine = ids.setdefault(self._id_scope(), {})
        if mine.get(credential.secret.fingerprint()) != credential.key_id:
            mine[credential.secret.fingerprint()] = credential.key_id
            self._save_ids(ids)

    def _prune_ids(self) -> None:
        ids = self._load_ids()
        mine = ids.get(self._id_scope())
        if not mine:
            return
        held = {c.secret.fingerprint() for c in map(self._read, Stage) if c is not None}
        if set(mine) - held:
            ids[self._id_scope()] = {fp: key for fp, key in mine.items() if fp in held}
            self._save_ids(ids)

    def _must_version(self, stage: Stage, credential: Credential) -> StoredVersion:
        version = self._version(stage, credential)
        assert version is not None
        return version


class DotenvStore(_FileStore):
    """One key of a ``.env`` file (and, optionally, the user name key and URLs that embed the
    password, such as ``DATABASE_URL``).

    ``.env.pending`` and ``.env.previous`` hold only the managed keys (``key`` and
    ``username_key``), in the same format, and are shared by every store of the file. URL keys
    are derived: they are rewritten from the credential whenever CURRENT changes, the user
    part too when the credential has a user name. A user name is kept only with a
    ``username_key``.
    """

    def __init__(
        self,
        path: Path | str,
        key: str,
        url_keys: Sequence[str] = (),
        username_key: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.url_keys = tuple(url_keys)
        self.username_key = username_key

    @property
    def name(self) -> str:
        return f"dotenv:{self.path}#{self.key}"

    def _id_scope(self) -> str:
        return self.key

    def _normalize(self, credential: Credential) -> Credential:
        if self.username_key is None:
            return Credential(credential.secret, key_id=credential.key_id)
        return credential

    def _load(self, stage: Stage) -> DotenvFile:
        return DotenvFile(read_text(self._stage_path(stage)) or "")

    def _read(self, stage: Stage) -> Credential | None:
        parsed = self._load(stage)
        value = parsed.get(self.key)
        if not value:
            return None
        username = parsed.get(self.username_key) if self.username_key else None
        return Credential(SecretValue(value), username or None)

    def _write(self, stage: Stage, credential: Credential) -> None:
        parsed = self._load(stage)
        parsed.set(self.key, credential.secret.reveal())
        if self.username_key and credential.username is not None:
            parsed.set(self.username_key, credential.username)
        if stage is Stage.current:
            for url_key in self.url_keys:
                url = parsed.get(url_key)
                if url is None:
                    continue
                try:
                    new_url = url_with_credentials(
                        url, credential.secret.reveal(), credential.username
                    )
                except ValueError:
                    raise SecretopsError(f"{self.name}: {url_key} is not a URL") from None
                parsed.set(url_key, new_url)
        atomic_write(self._stage_path(stage), parsed.render())

    def _clear(self, stage: Stage) -> None:
        path = self._stage_path(stage)
        parsed = self._load(stage)
        parsed.remove(self.key)
        if self.username_key:
            parsed.remove(self.username_key)
        if parsed.keys():
            atomic_write(path, parsed.render())
        else:
            remove_file(path)


class DockerSecretStore(_FileStore):
    """A Docker secret file: the file holds the value alone, written without a trailing
    newline; one trailing newline is ignored on read (editors add one). A user name is not
    part of a Docker secret, so credentials are stored and read without one."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def _read(self, stage: Stage) -> Credential | None:
        text = read_text(self._stage_path(stage))
        value = text.removesuffix("\n") if text else None
        return Credential(SecretValue(value)) if value else None

    def _write(self, stage: Stage, credential: Credential) -> None:
        atomic_write(self._stage_path(stage), credential.secret.reveal())

    def _clear(self, stage: Stage) -> None:
        remove_file(self._stage_path(stage))

    def _normalize(self, credential: Credential) -> Credential:
        return Credential(credential.secret, key_id=credential.key_id)
