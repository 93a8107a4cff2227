"""The Kubernetes API, used the way ``kubectl`` uses it (implements ``Cluster``).

Built from a kubeconfig path and context (never the global client configuration), so one
process can talk to several clusters. Objects are read as plain JSON. Failures become
:class:`KubeUnavailable` (429, 5xx, connection errors, after the request's attempts; or a
409, a concurrent writer) or :class:`KubeRefused`
(400, 401, 403, 404, 422: do not), whose messages name the call, the object and the HTTP
status, never a response body (which can hold Secret data).

Secrets are written with a JSON merge patch that carries ``metadata.resourceVersion``: a
concurrent change answers 409 and the write is redone from a fresh read.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as kube_watch

from secretops.adapters import kube_access, kube_eso, kube_rollout
from secretops.adapters.kube_api import (
    MERGE_PATCH,
    KubeRefused,
    KubeUnavailable,
    kube_error,
)
from secretops.adapters.retry import CALL_ATTEMPTS
from secretops.errors import NotRetryable
from secretops.models import AccessEvent, AccessGrant, PodLog, RolloutStatus, SecretValue

MANAGED_BY = {"app.kubernetes.io/managed-by": "secretops"}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
WRITE_ATTEMPTS = 10
CONFLICT_BACKOFF = 0.05
REQUEST_TIMEOUT = (5.0, 30.0)
REQUEST_ATTEMPTS = CALL_ATTEMPTS
REQUEST_BACKOFF = 0.1
T = TypeVar("T")


def encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode("ascii")


def decode(data: Mapping[str, Any] | None, of: str = "the Secret") -> dict[str, SecretValue]:
    """A Secret's ``data`` as masked values (empty values are left out); ``of`` names the
    Secret in an error. They are not yet registered for redaction: a Secret may hold plain
    fields (a user name) beside the secret, and the store that knows which key is the secret
    registers it."""
    values: dict[str, SecretValue] = {}
    for key, raw in (data or {}).items():
        try:
            text = base64.b64decode(str(raw or ""), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError; never quote the bytes
            raise NotRetryable(f"{of}: the data key {key!r} is not base64 of UTF-8 text "
                               "(edited by hand?)") from None
        if text:
            values[key] = SecretValue(text, remember=False)
    return values


def rfc3339_now() -> str:
    """Now in RFC 3339, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_stamp() -> str:
    """Now in RFC 3339 to the microsecond, for ``restartedAt``. kubectl stamps it to the
    second: a second restart within the same second would patch in the same value, change
    nothing in the pod template and roll nothing out, leaving the pods on the old value."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


CONNECTIONS = 64
"""Connections to the API server kept open for reuse. urllib3 closes a connection that finds
its pool full (the client's default size is five per core), and the next request opens a
new one, a TLS handshake on both sides: a rotate-all of 32 lanes on two cores opened one for
every other request."""


def build_api_client(kubeconfig: str | None, context: str | None) -> Any:
    """An ``ApiClient`` for this kubeconfig and context; in-cluster config when there is no
    kubeconfig at all.

    With a token, the client refreshes its configuration before every request (for tokens
    that expire), and setting the host again makes it read the proxy variables of the whole
    environment again. The proxy is settled once here, from the same variables; the token is
    still refreshed."""
    # :meth:`KubeCluster.call` is the one layer that retries a request: urllib3's default
    # would repeat a 429 or 503 that carries Retry-After three more times inside each attempt
    configuration = client.Configuration()
    configuration.retries = False
    configuration.connection_pool_maxsize = CONNECTIONS
    try:
        load: Any = config.new_client_from_config
        api_client = load(config_file=kubeconfig, context=context, persist_config=False,
                          client_configuration=configuration)
    except config.ConfigException:
        if kubeconfig is not None:
            raise NotRetryable(f"cannot load kubeconfig {kubeconfig}") from None
        incluster: Any = config.load_incluster_config
        incluster(client_configuration=configuration)
        api_client = client.ApiClient(configuration)
    api_client.configuration.proxy = api_client.configuration.proxy
    return api_client


class Unread(enum.Enum):
    """The type of :data:`UNREAD`."""

    token = 0


UNREAD = Unread.token
"""``update_secret(read=UNREAD)``: the caller has not read the Secret."""


class KubeCluster:
    """One Kubernetes cluster (one kubeconfig context)."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        audit_log: str | None = None,
        environments: Mapping[str, str] | None = None,
    ) -> None:
        self._api_client = build_api_client(kubeconfig, context)
        self._audit_log = audit_log
        self._environments = dict(environments or {})
        self.eso_version: str | None = None
        self._label = context or "default"
        self._restarted: dict[tuple[str, str], dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"KubeCluster(context={self._label!r})"

    # The generated API classes are built on first use: importing one builds hundreds of
    # models and takes seconds, which a leak's revocation (a Secret read) must not wait for.

    @functools.cached_property
    def core(self) -> Any:
        return client.CoreV1Api(self._api_client)

    @functools.cached_property
    def apps(self) -> Any:
        return client.AppsV1Api(self._api_client)

    @functools.cached_property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self._api_client)

    @functools.cached_property
    def rbac(self) -> Any:
        return client.RbacAuthorizationV1Api(self._api_client)

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str | None = None,
                _preload_content: bool = False, _request_timeout: Any = None) -> Any:
        """One API request, authenticated and answered as the generated methods are (same
        errors), without their argument validation and model classes, which cost more CPU
        than the request: for the reads and writes every rotation makes."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        verb, url, headers, payload, _ = self._api_client.param_serialize(
            method=method, resource_path=path, query_params=list((query or {}).items()),
            header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self._api_client.call_api(verb, url, header_params=headers, body=payload,
                                             _request_timeout=_request_timeout)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return response

    def close(self) -> None:
        self._api_client.close()

    def call(
        self, call: str, target: str, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """Run one API method and return the answer as JSON (dict), asked again as
        :meth:`retried` says. A 409 is the caller's to handle."""

        def send() -> Any:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT,
                              **kw)
            return json.loads(response.data or b"{}")

        return self.retried(call, target, send)

    def retried(self, call: str, target: str, send: Callable[[], T]) -> T:
        """``send()``, one API request. A throttled, failing or unreachable API server (429,
        5xx, connection errors) is asked again up to ``REQUEST_ATTEMPTS`` times with a growing
        pause, as client-go does: the one layer that retries a request (see
        :mod:`secretops.adapters.retry`). Every write of this adapter is idempotent, so a
        repeat is safe."""
        attempt = 1
        while True:
            try:
                return send()
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                error = kube_error(call, target, exc)
            retry = isinstance(error, KubeUnavailable) and error.status != 409
            if not retry or attempt >= REQUEST_ATTEMPTS:
                raise error
            time.sleep(REQUEST_BACKOFF * 2 ** (attempt - 1))
            attempt += 1

    def watch(
        self, call: str, target: str, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> Iterator[dict[str, Any]]:
        """Stream watch events (``{"type", "object"}`` dicts) until the server ends the watch.
        An ``ERROR`` event becomes :class:`KubeUnavailable` with its code (410: expired)."""
        timeout = float(kw.get("timeout_seconds") or 60)
        try:
            response = method(
                *args,
                watch=True,
                _preload_content=False,
                _request_timeout=(REQUEST_TIMEOUT[0], timeout + 5.0),
                **kw,
            )
            try:
                lines: Any = kube_watch.iter_resp_lines
                for line in lines(response):
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        code = int((event.get("object") or {}).get("code") or 0)
                        raise KubeUnavailable(f"Kubernetes {call} {target} ended: {code}", code)
                    yield event
            finally:
                response.release_conn()
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise kube_error(call, target, exc) from None

    def get(
        self, call: str, target: str, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> dict[str, Any] | None:
        """Like :meth:`call`, but None when the object does not exist."""
        try:
            found: dict[str, Any] = self.call(call, target, method, *args, **kw)
        except KubeRefused as exc:
            if exc.status == 404:
                return None
            raise
        return found

    # Secrets

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("get secret", f"{namespace}/{name}", self.request, "GET",
                        f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def _patch(self, call: str, target: str, path: str, body: Any, content_type: str) -> Any:
        """An unconditional patch (no resourceVersion in it), as JSON. A 409 can still come
        from the server itself (and from the sandbox's fault knobs): the same patch is sent
        again, after a growing pause."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self.call(call, target, self.request, "PATCH", path, body=body,
                                 content_type=content_type)
            except KubeUnavailable as exc:
                if exc.status != 409 or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(CONFLICT_BACKOFF * attempt)
        raise KubeUnavailable(f"Kubernetes {call} {target} kept conflicting", 409)

    def patch_secret(self, namespace: str, name: str,
                     values: Mapping[str, SecretValue | None],
                     annotations: Mapping[str, str | None] | None = None,
                     ) -> dict[str, SecretValue] | None:
        """Set (None: remove) some keys and annotations of a Secret in one merge patch, its
        other keys left as they are, without reading it first: for a write that does not
        depend on what the Secret held. Returns its values after the patch; None when the
        Secret does not exist."""
        patch: dict[str, Any] = {
            "data": {k: None if v is None else encode(v.reveal()) for k, v in values.items()}}
        if annotations:
            patch["metadata"] = {"annotations": dict(annotations)}
        try:
            written = self._patch("patch secret", f"{namespace}/{name}",
                                  f"/api/v1/namespaces/{namespace}/secrets/{name}", patch,
                                  MERGE_PATCH)
        except KubeRefused as exc:
            if exc.status == 404:
                return None
            raise
        return decode(written.get("data"), f"Secret {namespace}/{name}")

    def read_secret(self, namespace: str, name: str) -> dict[str, SecretValue] | None:
        secret = self.get_secret(namespace, name)
        return (None if secret is None
                else decode(secret.get("data"), f"Secret {namespace}/{name}"))

    def secret_fingerprints(self, namespace: str, name: str) -> dict[str, str] | None:
        """Each key of a Secret with the fingerprint of its value (as
        :meth:`SecretValue.fingerprint`), to check what a Secret holds without reading it
        into this process as values."""
        secret = self.get_secret(namespace, name)
        if secret is None:
            return None
        return {key: hashlib.sha256(base64.b64decode(str(raw or ""))).hexdigest()[:12]
                for key, raw in (secret.get("data") or {}).items()}

    def update_secret(
        self,
        namespace: str,
        name: str,
        change: Callable[[dict[str, SecretValue]], Mapping[str, SecretValue | None]],
        *,
        create_labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str | None] | None = None,
        read: dict[str, Any] | Unread | None = UNREAD,
    ) -> dict[str, SecretValue]:
        """Apply ``change`` (current values -> keys to set, None to remove) to a Secret,
        guarded by its resourceVersion; redone from a fresh read on 409. With
        ``create_labels`` a missing Secret is created with the values; ``annotations`` are
        set (None: removed) in the same write as the values, when a value changes. ``read``
        is the Secret as the caller just read it (None: missing), which saves a GET; a
        conflict still rereads. Returns the values written."""
        target = f"{namespace}/{name}"
        for attempt in range(WRITE_ATTEMPTS):
            secret = (self.get_secret(namespace, name) if attempt or isinstance(read, Unread)
                      else read)
            if secret is None:
                if create_labels is None:
                    raise KubeRefused(f"Kubernetes secret {target} does not exist", 404)
                created = self._create_secret(namespace, name, create_labels, change({}),
                                              annotations)
                if created is not None:
                    return created
                continue  # someone else created it meanwhile: read it and patch
            current = decode(secret.get("data"), f"Secret {target}")
            updates = change(current)
            if all(current.get(k) == v for k, v in updates.items()):
                return current
            patch = {
                "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"],
                             **({"annotations": dict(annotations)} if annotations else {})},
                "data": {k: None if v is None else encode(v.reveal()) for k, v in updates.items()},
            }
            try:
                written = self.call(
                    "patch secret",
                    target,
                    self.request,
                    "PATCH",
                    f"/api/v1/namespaces/{namespace}/secrets/{name}",
                    body=patch,
                    content_type=MERGE_PATCH,
                )
            except KubeUnavailable as exc:
                if exc.status != 409 or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(CONFLICT_BACKOFF * attempt)
                continue
            return decode(written.get("data"))
        raise KubeUnavailable(f"Kubernetes patch secret {target} kept conflicting", 409)

    def _create_secret(
        self, namespace: str, name: str, labels: Mapping[str, str],
        values: Mapping[str, SecretValue | None], annotations: Mapping[str, str | None] | None,
    ) -> dict[str, SecretValue] | None:
        """Create the Secret with ``values``; its values, or None when it already exists."""
        kept = {k: v for k, v in (annotations or {}).items() if v is not None}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         **({"annotations": kept} if kept else {})},
            "data": {k: encode(v.reveal()) for k, v in values.items() if v is not None},
        }
        try:
            created = self.call(
                "create secret",
                f"{namespace}/{name}",
                self.request,
                "POST",
                f"/api/v1/namespaces/{namespace}/secrets",
                body=body,
                content_type="application/json",
            )
        except KubeUnavailable as exc:
            if exc.status != 409:  # 409 AlreadyExists: someone else made it
                raise
            return None
        return decode(created.get("data"))

    # Deployments

    def restart_deployment(self, namespace: str, name: str) -> str:
        """``kubectl rollout restart``: a strategic-merge patch of the pod template's
        ``kubectl.kubernetes.io/restartedAt`` annotation; returns the stamp."""
        stamp = restart_stamp()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self._restarted[(namespace, name)] = self._patch(
            "restart deployment", f"{namespace}/{name}",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", patch, STRATEGIC_PATCH)
        return stamp

    def wait_for_rollout(self, namespace: str, name: str, timeout: float) -> RolloutStatus:
        """Watched from the Deployment as its last restart here answered, when that restart
        has not been waited for yet (which saves reading it again)."""
        return kube_rollout.wait_for_rollout(self, namespace, name, timeout,
                                             read=self._restarted.pop((namespace, name), None))

    def pod_log(self, namespace: str, pod: str) -> str | None:
        """The pod's log; None while its container has not started (the API answers 400)."""

        def send() -> str:
            response: Any = self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                                         _request_timeout=REQUEST_TIMEOUT)
            return str(response.data.decode("utf-8", "replace"))

        try:
            return self.retried("read pod log", f"{namespace}/{pod}", send)
        except KubeRefused as error:
            if error.status in (400, 404):
                return None
            raise

    def pods_started_since(self, namespace: str, deployment: str, since: datetime) -> list[PodLog]:
        return kube_rollout.pods_started_since(self, namespace, deployment, since)

    # External Secrets Operator

    def force_sync_external_secret(self, namespace: str, name: str) -> str:
        return kube_eso.force_sync(self, namespace, name)

    def check_external_secret_syncable(self, namespace: str, name: str) -> None:
        kube_eso.check_syncable(self, namespace, name)

    def wait_external_secret_synced(
        self, namespace: str, name: str, after: str, timeout: float
    ) -> str:
        return kube_eso.wait_synced(self, namespace, name, after, timeout)

    # Access audit

    def secret_readers(self, namespace: str) -> list[AccessGrant]:
        environment = self._environments.get(namespace, namespace)
        return kube_access.secret_readers(self, namespace, environment)

    def secret_read_events(self, namespace: str, name: str, since: datetime) -> list[AccessEvent]:
        if not self._audit_log:
            raise NotRetryable("no Kubernetes audit log is configured in the inventory")
        return kube_access.audit_reads(self._audit_log, namespace, name, since)
