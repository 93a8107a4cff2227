"""The control plane's files: the ServiceAccount token signing key, the static token file of
the built-in identities, the audit policy and a kubeconfig per component. Everything is
written under ``DIR/realkube/`` with mode 0600; no credential ever goes on a command line."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.kube.tls import kubeconfig
from secretops.adapters.files import atomic_write

NODE_NAME = "sandbox-node"


@dataclass(frozen=True)
class StaticIdentity:
    """A user of the token file: who the API server says the bearer is."""

    name: str
    username: str
    groups: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)


def identities(developer: str) -> dict[str, StaticIdentity]:
    """The control plane's own users and the two people of the world (the break-glass admin
    and a developer); the flows' identity is a ServiceAccount, not one of these."""
    return {i.name: i for i in (
        StaticIdentity("admin", "sandbox-admin", ("system:masters",)),
        StaticIdentity("emergency-admin", "emergency-admin", ("system:masters",)),
        StaticIdentity("developer", developer, ("developers",)),
        StaticIdentity("controller-manager", "system:kube-controller-manager"),
        StaticIdentity("kubelet", f"system:node:{NODE_NAME}", ("system:nodes",)),
        StaticIdentity("scheduler", "system:kube-scheduler"),
    )}


# The control plane's own machinery is not who the access audit looks for: its requests are
# not recorded. Everything a person or the flows' ServiceAccount does to Secrets and RBAC is,
# at Metadata level (who, what, when, outcome; never a body, so never a Secret's data).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-controller-manager", "system:node:{node}", "system:kube-scheduler",
            "system:serviceaccount:external-secrets:external-secrets", "sandbox-admin",
            "system:apiserver"]
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "pods/log"]
      - group: "rbac.authorization.k8s.io"
      - group: "external-secrets.io"
      - group: "apps"
        resources: ["deployments"]
  - level: None
"""


@dataclass(frozen=True)
class Files:
    """Paths of the files the processes read."""

    root: Path
    sa_key: Path
    sa_pub: Path
    tokens: Path
    audit_policy: Path

    def kubeconfig_of(self, name: str) -> Path:
        return self.root / f"{name}.kubeconfig"


def write_files(root: Path, server: str, ca_pem: bytes,
                users: dict[str, StaticIdentity]) -> Files:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = Files(root, root / "sa.key", root / "sa.pub", root / "tokens.csv",
                  root / "audit-policy.yaml")
    atomic_write(files.sa_key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    atomic_write(files.sa_pub, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    lines = []
    for user in users.values():
        groups = ",".join(user.groups)
        lines.append(f'{user.token},{user.username},{user.username}'
                     + (f',"{groups}"' if groups else ""))
    atomic_write(files.tokens, "\n".join(lines) + "\n")
    atomic_write(files.audit_policy, AUDIT_POLICY.replace("{node}", NODE_NAME))
    for name, user in users.items():
        atomic_write(files.kubeconfig_of(name), kubeconfig(server, ca_pem, {name: user.token}))
    return files
