"""The simulated External Secrets Operator: syncs each ExternalSecret from AWS Secrets
Manager into its target Secret on ``spec.refreshInterval`` and at once when the
ExternalSecret changes (the ``force-sync`` annotation), and reports it in ``status``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.kube.config import AwsConfig
from sandbox.kube.errors import ApiError
from sandbox.kube.resources import by_key
from sandbox.kube.store import Change, Store
from sandbox.kube.timefmt import now, rfc3339

EXTERNAL_SECRETS = "externalsecrets.external-secrets.io"
STORES = {"SecretStore": "secretstores.external-secrets.io",
          "ClusterSecretStore": "clustersecretstores.external-secrets.io"}
_log = logging.getLogger(__name__)


def parse_duration(text: str | None, default: float) -> float:
    """A Go duration (``1h``, ``5m``, ``30s``, ``1h30m``); ``0`` disables refreshing."""
    if not text:
        return default
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(ms|h|m|s)", text):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total if total or text.strip("0") == "" else default


def _trigger(es: dict[str, Any]) -> str:
    """What makes ESO sync again: the generation and the metadata (labels, annotations)."""
    meta = es["metadata"]
    digest = hashlib.sha256(json.dumps([meta.get("labels"), meta.get("annotations")],
                                       sort_keys=True).encode()).hexdigest()[:16]
    return f"{meta.get('generation', 1)}-{digest}"


class SyncFailed(Exception):
    """A sync that could not read the provider; the message names keys, never values."""


class ExternalSecretsOperator:
    """Reconciles ExternalSecrets from AWS Secrets Manager."""

    def __init__(self, store: Store, aws: AwsConfig | None, default_refresh: float) -> None:
        self.store = store
        self.aws = aws
        self.default_refresh = default_refresh
        self._wake = asyncio.Event()
        self._due: dict[tuple[str, str], float] = {}
        self._seen: dict[tuple[str, str], str] = {}
        self._last_refresh: dict[tuple[str, str], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        store.on_change(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.key != EXTERNAL_SECRETS:
            return
        key = (change.namespace, change.name)
        if change.type == "DELETED":
            self._due.pop(key, None)
            self._seen.pop(key, None)
        elif self._seen.get(key) != _trigger(change.obj):
            self._due[key] = 0.0
            self._wake.set()

    async def start(self) -> None:
        for es in self.store.list(EXTERNAL_SECRETS):
            self._due[(es["metadata"]["namespace"], es["metadata"]["name"])] = 0.0
        self._task = asyncio.create_task(self._run(), name="external-secrets")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            due = [key for key, at in self._due.items() if at <= loop.time()]
            for key in due:
                await self._reconcile(*key)
            if due:
                continue
            timeout = max(0.0, min(self._due.values()) - loop.time()) if self._due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        es = self.store.get(EXTERNAL_SECRETS, namespace, name)
        if es is None:
            self._due.pop(key, None)
            return
        self._seen[key] = _trigger(es)
        interval = parse_duration(es["spec"].get("refreshInterval"), self.default_refresh)
        loop = asyncio.get_running_loop()
        if interval > 0:
            self._due[key] = loop.time() + interval
        else:
            self._due.pop(key, None)
        try:
            data = await asyncio.to_thread(self._fetch, es)
            secret_rv = self._write_target(es, data)
        except SyncFailed as exc:
            self._write_status(es, False, str(exc), None)
            return
        await self._write_refresh(es, secret_rv)

    def _aws(self) -> Any:
        if self.aws is None:
            raise SyncFailed("could not get secret data from provider: no AWS endpoint")
        if self._client is None:
            self._client = boto3.client(
                "secretsmanager", endpoint_url=self.aws.endpoint_url,
                region_name=self.aws.region, aws_access_key_id=self.aws.access_key_id,
                aws_secret_access_key=self.aws.secret_access_key)
        return self._client

    def _store_ref(self, es: dict[str, Any]) -> None:
        ref = es["spec"].get("secretStoreRef") or {}
        kind = ref.get("kind", "SecretStore")
        namespace = es["metadata"]["namespace"] if kind == "SecretStore" else ""
        if self.store.get(STORES.get(kind, ""), namespace, ref.get("name", "")) is None:
            raise SyncFailed(f'could not get provider client: {kind} "{ref.get("name")}" '
                             "not found")

    def _fetch(self, es: dict[str, Any]) -> dict[str, str]:
        """The target data, read from Secrets Manager (runs in a worker thread)."""
        self._store_ref(es)
        client = self._aws()
        cache: dict[tuple[str, str], str] = {}

        def read(remote: dict[str, Any]) -> str:
            secret_id = remote["key"]
            stage = remote.get("version") or "AWSCURRENT"
            if (secret_id, stage) not in cache:
                try:
                    response = client.get_secret_value(SecretId=secret_id, VersionStage=stage)
                except (ClientError, BotoCoreError) as exc:
                    code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) \
                        else type(exc).__name__
                    raise SyncFailed(f"could not get secret data from provider: key "
                                     f"{secret_id}: {code}") from None
                cache[(secret_id, stage)] = response.get("SecretString") or ""
            return cache[(secret_id, stage)]

        data: dict[str, str] = {}
        for item in es["spec"].get("dataFrom") or []:
            extract = item.get("extract")
            if extract:
                data.update({k: str(v) for k, v in _json(read(extract), extract["key"]).items()})
        for item in es["spec"].get("data") or []:
            remote = item["remoteRef"]
            text = read(remote)
            prop = remote.get("property")
            if prop:
                values = _json(text, remote["key"])
                if prop not in values:
                    raise SyncFailed(f"could not get secret data from provider: key "
                                     f"{remote['key']} has no property {prop}")
                text = str(values[prop])
            data[item["secretKey"]] = text
        return data

    def _write_target(self, es: dict[str, Any], data: dict[str, str]) -> str:
        meta = es["metadata"]
        target = es["spec"].get("target") or {}
        name = target.get("name") or meta["name"]
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())}
        data_hash = hashlib.md5(json.dumps(encoded, sort_keys=True).encode(),
                                usedforsecurity=False).hexdigest()
        existing = self.store.get("secrets", meta["namespace"], name)
        secret = existing or {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": name, "namespace": meta["namespace"]}}
        smeta = secret["metadata"]
        smeta.setdefault("labels", {}).update({
            "reconcile.external-secrets.io/created-with-hash": data_hash[:32],
            "reconcile.external-secrets.io/managed": "true"})
        smeta.setdefault("annotations", {})["reconcile.external-secrets.io/data-hash"] = data_hash
        smeta["ownerReferences"] = [{
            "apiVersion": es["apiVersion"], "kind": "ExternalSecret", "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]
        secret["data"] = encoded
        secret["type"] = (target.get("template") or {}).get("type", secret.get("type", "Opaque"))
        secrets = by_key("secrets")
        if existing is None:
            stored = self.store.create(secrets, secret, meta["namespace"])
        else:
            stored = self.store.update(secrets, secret, check_version=False)
        return str(stored["metadata"]["resourceVersion"])

    async def _write_refresh(self, es: dict[str, Any], secret_rv: str) -> None:
        key = (es["metadata"]["namespace"], es["metadata"]["name"])
        stamp = rfc3339()
        while stamp == self._last_refresh.get(key):
            await asyncio.sleep(1.0 - now().microsecond / 1_000_000 + 0.01)
            stamp = rfc3339()
        self._last_refresh[key] = stamp
        fresh = self.store.get(EXTERNAL_SECRETS, *key) or es
        self._write_status(fresh, True, "secret synced", stamp)

    def _write_status(self, es: dict[str, Any], ok: bool, message: str,
                      refresh: str | None) -> None:
        status = dict(es.get("status") or {})
        previous = next((c for c in status.get("conditions") or []
                         if c.get("type") == "Ready"), None)
        flag = "True" if ok else "False"
        changed = previous is None or previous.get("status") != flag
        status["conditions"] = [{
            "type": "Ready", "status": flag,
            "reason": "SecretSynced" if ok else "SecretSyncedError", "message": message,
            "lastTransitionTime": rfc3339() if changed or previous is None
            else previous.get("lastTransitionTime", rfc3339()),
        }]
        if refresh:
            status["refreshTime"] = refresh
            status["syncedResourceVersion"] = _trigger(es)
            status["binding"] = {"name": (es["spec"].get("target") or {}).get("name")
                                 or es["metadata"]["name"]}
        es["status"] = status
        with contextlib.suppress(ApiError):
            self.store.update(by_key(EXTERNAL_SECRETS), es, status_only=True,
                              check_version=False)


def _json(text: str, key: str) -> dict[str, Any]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise SyncFailed(f"could not get secret data from provider: key {key} is not "
                         "JSON") from None
    if not isinstance(values, dict):
        raise SyncFailed(f"could not get secret data from provider: key {key} is not a "
                         "JSON object")
    return values

