"""Settings of the Kubernetes sandbox: who may call the API server, and where AWS is."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    """An authenticated user as the API server sees it (from a bearer token)."""

    username: str
    groups: tuple[str, ...] = field(default=("system:authenticated",))


@dataclass(frozen=True)
class AwsConfig:
    """Where the simulated External Secrets Operator finds AWS Secrets Manager."""

    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = field(default="testing", repr=False)
