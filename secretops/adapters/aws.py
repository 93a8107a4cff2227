"""AWS Secrets Manager as a :class:`~secretops.ports.SecretStore`, staged the AWS way.

A rotation keeps every version in Secrets Manager and moves labels: the new value is put with
``AWSPENDING``; promotion moves ``AWSCURRENT`` onto it (Secrets Manager moves ``AWSPREVIOUS``
onto the old current by itself); ``AWSPENDING`` stays on that version until the rotation
finishes (``clear_pending``), so a rerun sees the promotion done and a rollback knows which
version failed. Values are always read by
stage, never by "latest". A secret may hold a plain string or a JSON object; with
``json_key`` only that key (and ``username_json_key``) is ours and the other keys are kept.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from secretops.adapters.retry import CALL_ATTEMPTS, is_transient
from secretops.errors import NotRetryable, PendingConflict, Unavailable
from secretops.models import Credential, Holdings, SecretValue, Stage, StoredVersion

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_TOKEN_NAMESPACE = uuid.UUID("5d0c5c57-8f3e-4c5e-9a55-7365637265f1")


@dataclass(frozen=True)
class AwsConfig:
    """Where AWS is and how to log in (the keys are masked)."""

    region: str
    access_key_id: SecretValue | None = None
    secret_access_key: SecretValue | None = None
    endpoint_url: str | None = None
    cloudtrail_endpoint_url: str | None = None
    timeout_seconds: float = 10.0

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        """A client for ``service`` with explicit credentials, region and timeouts: the
        botocore client that boto3 would return, without importing boto3 (its S3 transfer
        machinery takes a noticeable share of a leak's time to revocation)."""
        key_id = self.access_key_id.reveal() if self.access_key_id else None
        key = self.secret_access_key.reveal() if self.secret_access_key else None
        config = Config(
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            retries={"max_attempts": CALL_ATTEMPTS, "mode": "standard"},
        )
        return botocore.session.get_session().create_client(
            service, region_name=self.region, aws_access_key_id=key_id,
            aws_secret_access_key=key, endpoint_url=endpoint_url or self.endpoint_url,
            config=config,
        )

    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self.client("secretsmanager")
        return client


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def aws_error(call: str, secret_id: str, exc: ClientError) -> Exception:
    """Our error for a failed AWS call: names the call, the secret and the AWS error code."""
    message = f"AWS {call} on {secret_id} failed: {_error_code(exc) or 'unknown error'}"
    return Unavailable(message) if is_transient(exc) else NotRetryable(message)


KEY_ID_TAG = "secretops:key-id:"


class AwsSecretStore:
    """One secret in AWS Secrets Manager (optionally one key of its JSON object)."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        json_key: str | None = None,
        username_json_key: str | None = None,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._json_key = json_key
        self._username_key = username_json_key

    @property
    def name(self) -> str:
        suffix = f"#{self._json_key}" if self._json_key else ""
        return f"aws:{self._secret_id}{suffix}"

    def __repr__(self) -> str:
        return f"AwsSecretStore({self.name!r})"

    def _raw(self, stage: Stage) -> dict[str, Any] | None:
        try:
            response = self._client.get_secret_value(
                SecretId=self._secret_id, VersionStage=stage.value
            )
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                return None
            raise aws_error("GetSecretValue", self._secret_id, exc) from None
        return dict(response)

    def _parse(self, text: str) -> Credential:
        if self._json_key is None:
            return Credential(SecretValue(text))
        try:
            document = json.loads(text)
        except ValueError:  # never quote the text: it may be the secret itself
            raise NotRetryable(f"{self.name}: the secret is not a JSON document (edited by "
                               f"hand?); a JSON object with the key {self._json_key} is "
                               "expected") from None
        try:
            secret = document[self._json_key]
        except (KeyError, TypeError, IndexError):
            message = f"{self.name}: the secret has no JSON key {self._json_key}"
            raise NotRetryable(message) from None
        username = document.get(self._username_key) if self._username_key else None
        return Credential(SecretValue(str(secret)), str(username) if username else None)

    def _version(self, raw: dict[str, Any], stage: Stage) -> StoredVersion:
        credential = self._parse(str(raw["SecretString"]))
        return StoredVersion(
            store=self.name,
            version_id=str(raw["VersionId"]),
            stage=stage,
            fingerprint=credential.secret.fingerprint(),
            username=credential.username,
            created_at=raw.get("CreatedDate"),
        )

    def read(self, stage: Stage = Stage.current) -> Credential | None:
        raw = self._raw(stage)
        return None if raw is None else self._parse(str(raw["SecretString"]))

    def version(self, stage: Stage = Stage.current) -> StoredVersion | None:
        raw = self._raw(stage)
        return None if raw is None else self._version(raw, stage)

    def _describe(self) -> Any:
        try:
            return self._client.describe_secret(SecretId=self._secret_id)
        except ClientError as exc:
            raise aws_error("DescribeSecret", self._secret_id, exc) from None

    def _stages(self) -> dict[str, list[str]]:
        described = self._describe()
        return {k: list(v) for k, v in described.get("VersionIdsToStages", {}).items()}

    # The provider's key ids are tags of the secret, ``secretops:key-id:[<json key>:]<value's
    # fingerprint>`` = key id: tagged before a key is staged, untagged when a rotation
    # finishes for values no stage holds.
    @property
    def _id_tag(self) -> str:
        return KEY_ID_TAG + (f"{self._json_key}:" if self._json_key else "")

    def key_ids(self) -> dict[str, str]:
        tags = self._describe().get("Tags", [])
        return {str(tag["Key"])[len(self._id_tag):]: str(tag["Value"]) for tag in tags
                if str(tag.get("Key", "")).startswith(self._id_tag)}

    def holdings(self) -> Holdings:
        current, pending, previous = map(self.read, (Stage.current, Stage.pending,
                                                     Stage.previous))
        return Holdings(current, pending, previous, self.key_ids())

    def _record_id(self, credential: Credential) -> None:
        if credential.key_id is None:
            return
        key = self._id_tag + credential.secret.fingerprint()
        try:
            self._client.tag_resource(SecretId=self._secret_id,
                                      Tags=[{"Key": key, "Value": credential.key_id}])
        except ClientError as exc:
            raise aws_error("TagResource", self._secret_id, exc) from None

    def _prune_ids(self) -> None:
        recorded = self.key_ids()
        if not recorded:
            return
        held = {c.secret.fingerprint() for c in map(self.read, Stage) if c is not None}
        stale = [self._id_tag + fp for fp in recorded if fp not in held]
        if stale:
            try:
                self._client.untag_resource(SecretId=self._secret_id, TagKeys=stale)
            except ClientError as exc:
                raise aws_error("UntagResource", self._secret_id, exc) from None

    def _holder(self, stage: Stage) -> str | None:
        for version_id, stages in self._stages().items():
            if stage.value in stages:
                return version_id
        return None

    def _serialize(self, credential: Credential) -> str:
        if self._json_key is None:
            return credential.secret.reveal()
        current = self._raw(Stage.current)
        document: dict[str, Any] = {}
        if current is not None:
            try:
                loaded = json.loads(str(current["SecretString"]))
                document = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                document = {}
        document[self._json_key] = credential.secret.reveal()
        if self._username_key and credential.username:
            document[self._username_key] = credential.username
        return json.dumps(document, sort_keys=True)

    def _move(self, stage: Stage, to: str | None, remove_from: str | None) -> None:
        arguments: dict[str, str] = {"SecretId": self._secret_id, "VersionStage": stage.value}
        if to:
            arguments["MoveToVersionId"] = to
        if remove_from:
            arguments["RemoveFromVersionId"] = remove_from
        try:
            self._client.update_secret_version_stage(**arguments)
        except ClientError as exc:
            raise aws_error("UpdateSecretVersionStage", self._secret_id, exc) from None

    def stage_pending(self, credential: Credential) -> StoredVersion:
        pending = self.read(Stage.pending)
        if pending is not None:
            if pending.secret == credential.secret and (
                credential.username is None or pending.username == credential.username
            ):
                return self._required(Stage.pending)
            raise PendingConflict(f"{self.name} already holds a different pending version")
        self._record_id(credential)
        text = self._serialize(credential)
        digest = hashlib.sha256(f"{self._secret_id}\n{text}".encode()).hexdigest()
        token = str(uuid.uuid5(_TOKEN_NAMESPACE, digest))
        try:
            self._client.put_secret_value(
                SecretId=self._secret_id,
                ClientRequestToken=token,
                SecretString=text,
                VersionStages=[Stage.pending.value],
            )
        except ClientError as exc:
            raise aws_error("PutSecretValue", self._secret_id, exc) from None
        if self._holder(Stage.pending) != token:
            self._move(Stage.pending, token, None)
        return self._required(Stage.pending)

    def _required(self, stage: Stage) -> StoredVersion:
        version = self.version(stage)
        if version is None:
            raise NotRetryable(f"{self.name} has no {stage.value} version")
        return version

    def promote_pending(self) -> StoredVersion | None:
        stages = self._stages()
        pending = next((v for v, s in stages.items() if Stage.pending.value in s), None)
        current = next((v for v, s in stages.items() if Stage.current.value in s), None)
        if pending is None:
            return None
        if pending != current:
            self._move(Stage.current, pending, current)
        return self._required(Stage.current)

    def restore_previous(self, failed: Credential) -> StoredVersion:
        current = self.read(Stage.current)
        if current is None or current.secret != failed.secret:
            return self._required(Stage.current)
        stages = self._stages()
        previous = next((v for v, s in stages.items() if Stage.previous.value in s), None)
        current_id = next((v for v, s in stages.items() if Stage.current.value in s), None)
        if previous is None:
            raise NotRetryable(f"{self.name} has no previous version to restore")
        self._move(Stage.current, previous, current_id)
        return self._required(Stage.current)

    def clear_pending(self) -> None:
        pending = self._holder(Stage.pending)
        if pending is not None:
            self._move(Stage.pending, None, pending)
        self._prune_ids()
