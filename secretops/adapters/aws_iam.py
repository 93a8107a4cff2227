"""AWS IAM user access keys as a :class:`~secretops.ports.KeyProvider`, on botocore.

Each environment's credential is an access key of its own IAM user (``users``: environment
-> user name). A key has two parts: the access key id, public, stored as the credential's
``username``, and the secret access key, the secret. AWS allows two access keys per user,
so a rotation has room for the new key only once an inactive key is gone: a new key first
deletes the user's oldest inactive key when the user has two. Revoking deactivates the key
(``Inactive``: AWS refuses it at once, and it stays listed for an investigation); with
``final`` it is deleted. IAM keys have no name, so the name secretops gives a key is kept
in a tag of its user (``secretops:key:<access key id>``) and dropped when the key is deleted;
a key without that tag was made by hand and is never taken for an orphan.

A key is checked by signing ``sts:GetCallerIdentity`` with it: AWS answers for an active key
of the user and refuses (``InvalidClientTokenId``, ``SignatureDoesNotMatch``) an inactive,
deleted or wrong one. Error messages name the call, the user and AWS's error code, never a
key or a response body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from secretops.adapters.providers import ProviderRefused, ProviderUnavailable, timestamp
from secretops.adapters.retry import CALL_ATTEMPTS, is_transient
from secretops.models import (
    Credential,
    KeyCheck,
    NewProviderKey,
    ProviderKey,
    SecretValue,
    as_credential,
)

NAME_TAG = "secretops:key:"
MAX_KEYS = 2  # access keys per IAM user (an AWS quota that cannot be raised)
REFUSED_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch",
                           "UnrecognizedClientException", "AuthFailure", "ExpiredToken"})
TIMEOUT_SECONDS = 10.0


class AwsIamProvider:
    """The access keys of one IAM user per environment, through the rotator's credentials
    (``None``: botocore's default chain, such as the worker's role)."""

    def __init__(self, users: Mapping[str, str], region: str, endpoint_url: str | None = None,
                 access_key_id: SecretValue | None = None,
                 secret_access_key: SecretValue | None = None) -> None:
        self._users = dict(users)
        self._region = region
        self._endpoint = endpoint_url
        # one session for every client: each check signs with its own pair through a client
        # of its own, and a new session would load botocore's service models again
        self._session = botocore.session.get_session()
        self._iam = self._client("iam", access_key_id, secret_access_key)

    def __repr__(self) -> str:
        return f"AwsIamProvider({', '.join(sorted(self._users.values()))})"

    def _client(self, service: str, key_id: SecretValue | str | None,
                key: SecretValue | None) -> Any:
        return self._session.create_client(
            service, region_name=self._region, endpoint_url=self._endpoint,
            aws_access_key_id=key_id.reveal() if isinstance(key_id, SecretValue) else key_id,
            aws_secret_access_key=key.reveal() if key is not None else None,
            config=Config(connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS,
                          retries={"max_attempts": CALL_ATTEMPTS, "mode": "standard"}))

    def close(self) -> None:
        self._iam.close()

    @property
    def revocation_is_final(self) -> bool:
        return False

    @property
    def can_create_keys(self) -> bool:
        return True

    @property
    def max_keys(self) -> int | None:
        return MAX_KEYS

    def _call(self, call: str, user: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._iam, call)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown error"
            message = f"AWS IAM {call} for user {user} failed: {code}"
            if is_transient(exc):
                raise ProviderUnavailable(message) from None
            raise ProviderRefused(message) from None
        except BotoCoreError as exc:
            raise ProviderUnavailable(f"AWS IAM {call} for user {user} failed: "
                                      f"{type(exc).__name__}") from None

    def _user(self, environment: str | None) -> str:
        user = self._users.get(environment or "")
        if user is None:
            known = ", ".join(f"{env}: {name}" for env, name in self._users.items())
            raise ProviderRefused(f"no IAM user for environment {environment!r} (the "
                                  f"inventory's providers.aws_iam.users: {known or 'none'})")
        return user

    def _keys_of(self, user: str) -> list[ProviderKey]:
        listed = self._call("list_access_keys", user, UserName=user)["AccessKeyMetadata"]
        tags = self._call("list_user_tags", user, UserName=user)["Tags"]
        names = {t["Key"].removeprefix(NAME_TAG): t["Value"] for t in tags
                 if t["Key"].startswith(NAME_TAG)}
        return [ProviderKey(id=item["AccessKeyId"], name=names.get(item["AccessKeyId"], ""),
                            status="active" if item["Status"] == "Active" else "inactive",
                            created_at=timestamp(item.get("CreateDate")),
                            extra={"user": user})
                for item in listed]

    def create_key(self, name: str, environment: str | None = None,
                   lifetime: timedelta | None = None,
                   scopes: list[str] | None = None) -> NewProviderKey:
        """A new access key of ``environment``'s user, named ``name`` in a tag of the user.
        With the user's two keys taken, the oldest inactive one is deleted first; two
        active keys are refused (one of them must be revoked first). ``lifetime`` and
        ``scopes`` do not apply: an access key does not expire, and has its user's rights."""
        user = self._user(environment)
        keys = self._keys_of(user)
        if len(keys) >= MAX_KEYS:
            inactive = sorted((k for k in keys if k.status != "active"),
                              key=lambda k: k.created_at.timestamp() if k.created_at else 0)
            if not inactive:
                raise ProviderRefused(
                    f"IAM user {user} already has {len(keys)} active access keys (AWS allows "
                    f"{MAX_KEYS}): {', '.join(k.id for k in keys)}; revoke one, then rerun")
            self.revoke_key(inactive[0].id, final=True)
        created = self._call("create_access_key", user, UserName=user)["AccessKey"]
        key_id = created["AccessKeyId"]
        self._call("tag_user", user, UserName=user,
                   Tags=[{"Key": f"{NAME_TAG}{key_id}", "Value": name[:256]}])
        key = ProviderKey(id=key_id, name=name, status="active",
                          created_at=timestamp(created.get("CreateDate")), extra={"user": user})
        return NewProviderKey(key, SecretValue(created["SecretAccessKey"]), username=key_id)

    def list_keys(self) -> list[ProviderKey]:
        """Every access key of every environment's user."""
        return [key for user in dict.fromkeys(self._users.values()) for key in self._keys_of(user)]

    def get_key(self, key_id: str) -> ProviderKey | None:
        """The key with this id, with when it was last used; None when it does not exist."""
        try:
            used = self._iam.get_access_key_last_used(AccessKeyId=key_id)
        except ClientError as exc:
            if is_transient(exc):
                raise ProviderUnavailable("AWS IAM get_access_key_last_used failed") from None
            return None  # AWS answers AccessDenied (or NoSuchEntity) for a key it has not
        user = used.get("UserName")
        if user not in self._users.values():
            return None
        found = next((k for k in self._keys_of(user) if k.id == key_id), None)
        if found is None:
            return None
        last = (used.get("AccessKeyLastUsed") or {}).get("LastUsedDate")
        return ProviderKey(found.id, found.name, found.status, found.created_at,
                           last_used_at=timestamp(last), extra=found.extra)

    def find_key(self, value: SecretValue | Credential) -> ProviderKey | None:
        """The key a credential names by its access key id (a bare secret names none)."""
        key_id = as_credential(value).username
        return self.get_key(key_id) if key_id else None

    def revoke_key(self, key_id: str, final: bool = False,
                   listed: ProviderKey | None = None) -> bool:
        """Deactivate the key, or with ``final`` delete it (and its name tag), an active key
        deactivated first: AWS refuses it from that moment, whatever happens to the delete.
        False when it was already inactive (or, with ``final``, already gone)."""
        key = listed if listed is not None else self.get_key(key_id)
        if key is None:
            return False
        user = str(key.extra["user"])
        if final:
            if key.status == "active":
                self._call("update_access_key", user, UserName=user, AccessKeyId=key_id,
                           Status="Inactive")
            self._call("delete_access_key", user, UserName=user, AccessKeyId=key_id)
            self._call("untag_user", user, UserName=user, TagKeys=[f"{NAME_TAG}{key_id}"])
            return True
        if key.status != "active":
            return False
        self._call("update_access_key", user, UserName=user, AccessKeyId=key_id,
                   Status="Inactive")
        return True

    def check_key(self, value: SecretValue | Credential) -> KeyCheck:
        """``sts:GetCallerIdentity`` signed with the pair: WORKS when AWS knows it, REFUSED
        when AWS refuses it (inactive, deleted or wrong)."""
        credential = as_credential(value)
        if credential.username is None:
            raise ProviderRefused("an AWS access key is checked with its access key id, and "
                                  "this credential has none")
        sts = self._client("sts", credential.username, credential.secret)
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REFUSED_CODES:
                return KeyCheck.REFUSED
            if is_transient(exc):
                raise ProviderUnavailable(f"AWS STS get_caller_identity failed: {code}") from None
            raise ProviderRefused(f"AWS STS get_caller_identity failed: {code}") from None
        except BotoCoreError as exc:
            raise ProviderUnavailable(
                f"AWS STS get_caller_identity failed: {type(exc).__name__}") from None
        finally:
            sts.close()
        return KeyCheck.WORKS
