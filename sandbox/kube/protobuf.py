"""Request bodies in Kubernetes' protobuf encoding, for the kinds ``kubectl create`` sends
that way: Secret, ConfigMap, Namespace, ServiceAccount, the RBAC kinds, and the
SelfSubjectAccessReview of ``kubectl auth can-i``.

kubectl encodes the built-in kinds it creates as ``application/vnd.kubernetes.protobuf``: the
four bytes ``k8s\\0`` and a ``runtime.Unknown`` message (type meta, the object's own message
as ``raw``). :func:`decode` turns such a body into the JSON object the rest of the server
works on, following the field numbers of ``k8s.io/api/*/v1/generated.proto`` and
``k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto``. Fields not listed below are
skipped, as an older server skips fields it does not know. Answers stay JSON (kubectl
accepts both).
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not a well-formed Kubernetes protobuf message."""


class UnknownKind(ProtobufError):
    """A well-formed body of a kind this server cannot decode from protobuf."""


# message -> field number -> (JSON name, type, repeated). A type is a scalar name, "time",
# "map:<value type>" or another message's name.
Field = tuple[str, str, bool]
MESSAGES: dict[str, dict[int, Field]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "raw", False),
                3: ("contentEncoding", "string", False), 4: ("contentType", "string", False)},
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False), 2: ("generateName", "string", False),
        3: ("namespace", "string", False), 5: ("uid", "string", False),
        6: ("resourceVersion", "string", False), 7: ("generation", "int", False),
        8: ("creationTimestamp", "time", False), 11: ("labels", "map:string", False),
        12: ("annotations", "map:string", False),
        13: ("ownerReferences", "OwnerReference", True), 14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False), 3: ("name", "string", False), 4: ("uid", "string", False),
        5: ("apiVersion", "string", False), 6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "Secret": {1: ("metadata", "ObjectMeta", False), 2: ("data", "map:bytes", False),
               3: ("type", "string", False), 4: ("stringData", "map:string", False),
               5: ("immutable", "bool", False)},
    "ConfigMap": {1: ("metadata", "ObjectMeta", False), 2: ("data", "map:string", False),
                  3: ("binaryData", "map:bytes", False), 4: ("immutable", "bool", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "NamespaceSpec", False)},
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False), 2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True),
        4: ("automountServiceAccountToken", "bool", False),
    },
    "ObjectReference": {1: ("kind", "string", False), 2: ("namespace", "string", False),
                        3: ("name", "string", False), 4: ("uid", "string", False),
                        5: ("apiVersion", "string", False)},
    "LocalObjectReference": {1: ("name", "string", False)},
    "Role": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "ClusterRole": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "PolicyRule": {1: ("verbs", "string", True), 2: ("apiGroups", "string", True),
                   3: ("resources", "string", True), 4: ("resourceNames", "string", True),
                   5: ("nonResourceURLs", "string", True)},
    "RoleBinding": {1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True),
                    3: ("roleRef", "RoleRef", False)},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta", False),
                           2: ("subjects", "Subject", True), 3: ("roleRef", "RoleRef", False)},
    "Subject": {1: ("kind", "string", False), 2: ("apiGroup", "string", False),
                3: ("name", "string", False), 4: ("namespace", "string", False)},
    "RoleRef": {1: ("apiGroup", "string", False), 2: ("kind", "string", False),
                3: ("name", "string", False)},
    "Time": {1: ("seconds", "int", False), 2: ("nanos", "int", False)},
    # k8s.io/api/authorization/v1/generated.proto (field selectors of a review are skipped)
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", False),
                                2: ("spec", "SelfSubjectAccessReviewSpec", False)},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                                    2: ("nonResourceAttributes", "NonResourceAttributes",
                                        False)},
    "ResourceAttributes": {1: ("namespace", "string", False), 2: ("verb", "string", False),
                           3: ("group", "string", False), 4: ("version", "string", False),
                           5: ("resource", "string", False),
                           6: ("subresource", "string", False), 7: ("name", "string", False)},
    "NonResourceAttributes": {1: ("path", "string", False), 2: ("verb", "string", False)},
}
KINDS = ("Secret", "ConfigMap", "Namespace", "ServiceAccount", "Role", "ClusterRole",
         "RoleBinding", "ClusterRoleBinding", "SelfSubjectAccessReview")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message: ints for varints and fixed-width
    fields, bytes for length-delimited ones."""
    found: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = struct.unpack_from("<q", data, at)[0], at + 8
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at:at + size], at + size
            if len(value) != size:
                raise ProtobufError("truncated field")
        elif wire == 5:
            value, at = struct.unpack_from("<i", data, at)[0], at + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if number == 0:
            raise ProtobufError("field number 0")
        found.append((number, value))
    return found


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "int":
        if not isinstance(value, int):
            raise ProtobufError("expected an integer")
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bool":
        return bool(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"expected a {kind}")
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "raw":
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufError("a string field is not UTF-8") from exc


def message(name: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` as the message ``name`` into its JSON form."""
    schema = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, value in fields(data):
        if number not in schema:
            continue
        key, kind, repeated = schema[number]
        if kind.startswith("map:"):
            if not isinstance(value, bytes):
                raise ProtobufError("expected a map entry")
            entry = dict(fields(value))
            out.setdefault(key, {})[_scalar("string", entry.get(1, b""))] = _scalar(
                kind[4:], entry.get(2, b""))
            continue
        if kind == "time":
            if not isinstance(value, bytes):
                raise ProtobufError("expected a time")
            seconds = message("Time", value).get("seconds", 0)
            decoded: Any = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind in MESSAGES:
            if not isinstance(value, bytes):
                raise ProtobufError(f"expected a {kind}")
            decoded = message(kind, value)
        else:
            decoded = _scalar(kind, value)
        if repeated:
            out.setdefault(key, []).append(decoded)
        elif decoded not in ("", 0) or kind == "bool":
            out[key] = decoded  # empty strings and zeros are omitted, as Go's omitempty does
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf request body (``k8s\\0`` + ``runtime.Unknown``).
    Raises :class:`UnknownKind` for a kind not in :data:`KINDS`, :class:`ProtobufError` for
    a body that is not such a message."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix")
    envelope = message("Unknown", body[len(MAGIC):])
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"unsupported content encoding {envelope['contentEncoding']!r}")
    type_meta = envelope.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in KINDS:
        raise UnknownKind(f"no protobuf decoding for kind {kind or '(none)'!r}")
    obj = message(kind, envelope.get("raw", b""))
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
