"""Which secret a finding is about: every stage (current, pending, previous) of every store of
every secret in the inventory, held as digests only (SHA-256 for literals, SHA-1 for
detect-secrets baselines), never as values.

A :class:`Match` names the secret, each environment that holds the value and at which stage:
a current or pending value is live and starts a response; a value found only as previous was
already rotated out (reported, nothing rotated); no match is "not ours".
"""

from __future__ import annotations

import enum
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from secretops.alerts.findings import Finding
from secretops.errors import SecretopsError
from secretops.models import Stage
from secretops.ports import SecretStore
from secretops.wiring import Wiring

REFRESH_AT_MOST_EVERY = 2.0
"""Seconds between two re-reads of the stores on a miss (a flood of strangers' values must not
turn into a flood of reads; a value rotated in meanwhile is found on the next one)."""


class Verdict(enum.StrEnum):
    live = "live"
    rotated = "already rotated"
    not_ours = "not ours"


@dataclass(frozen=True)
class Holding:
    secret: str
    environment: str
    store: str
    stage: Stage


@dataclass(frozen=True)
class Match:
    finding: Finding
    holdings: tuple[Holding, ...]

    @property
    def verdict(self) -> Verdict:
        if not self.holdings:
            return Verdict.not_ours
        if any(h.stage in (Stage.current, Stage.pending) for h in self.holdings):
            return Verdict.live
        return Verdict.rotated

    @property
    def secret(self) -> str | None:
        return self.holdings[0].secret if self.holdings else None

    @property
    def environments(self) -> list[str]:
        """The environments where the value is live (or, once rotated, where it was)."""
        live = [h for h in self.holdings if h.stage is not Stage.previous]
        return sorted({h.environment for h in live or self.holdings})

    @property
    def fingerprint(self) -> str:
        """The value's short fingerprint (as :meth:`SecretValue.fingerprint`), or, for a
        baseline's hash, ``sha1:`` and its first 12 digits."""
        kind, digest = self.finding.digests()
        return digest[:12] if kind == "sha256" else f"sha1:{digest[:12]}"

    def describe(self) -> str:
        if not self.holdings:
            return f"{self.finding.where()}: {Verdict.not_ours.value}"
        stages = ", ".join(sorted({f"{h.environment} {h.stage.name}" for h in self.holdings}))
        return f"{self.finding.where()}: {self.secret} ({stages}): {self.verdict.value}"


def _digests(value: str) -> tuple[str, str]:
    data = value.encode()
    return hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest()  # noqa: S324


StoreSource = Callable[[], Iterable[tuple[str, str, SecretStore]]]


def inventory_stores(wiring: Wiring) -> StoreSource:
    """Every (secret, environment, store) of the inventory, as a source for the index."""
    def stores() -> Iterable[tuple[str, str, SecretStore]]:
        inv = wiring.inventory
        for secret in inv.secret_ids():
            for environment in inv.environments_of(secret):
                for store in wiring.stores(secret, environment):
                    yield secret, str(getattr(environment, "value", environment)), store
    return stores


class FingerprintIndex:
    """Digests of every stored value, refreshed on a miss (at most every
    :data:`REFRESH_AT_MOST_EVERY` seconds). Thread-safe."""

    def __init__(self, source: StoreSource) -> None:
        self._source = source
        self._by_digest: dict[tuple[str, str], list[Holding]] = {}
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self.refresh()

    def refresh(self) -> int:
        """Read every store again; returns how many values it holds."""
        found: dict[tuple[str, str], list[Holding]] = {}
        for secret, environment, store in self._source():
            for stage in Stage:
                try:
                    credential = store.read(stage)
                except SecretopsError:
                    continue  # a store this process cannot read holds nothing to match here
                if credential is None:
                    continue
                sha256, sha1 = _digests(credential.secret.reveal())
                holding = Holding(secret, environment, store.name, stage)
                for key in (("sha256", sha256), ("sha1", sha1)):
                    found.setdefault(key, []).append(holding)
        with self._lock:
            self._by_digest = found
            self._read_at = time.monotonic()
        return len(found) // 2

    def _lookup(self, finding: Finding) -> tuple[Holding, ...]:
        with self._lock:
            return tuple(self._by_digest.get(finding.digests(), ()))

    def match(self, finding: Finding) -> Match:
        holdings = self._lookup(finding)
        if not holdings and time.monotonic() - self._read_at >= REFRESH_AT_MOST_EVERY:
            self.refresh()
            holdings = self._lookup(finding)
        return Match(finding, holdings)


def live_fingerprint(wiring: Wiring, match: Match) -> str | None:
    """The live value's own fingerprint (:meth:`SecretValue.fingerprint`; a baseline gives
    only a SHA-1), read again from the store that holds it, which also proves it is still
    there; None once it is only previous or gone."""
    kind, digest = match.finding.digests()
    for holding in match.holdings:
        if holding.stage is Stage.previous:
            continue
        for store in wiring.stores(holding.secret, holding.environment):
            found = store.read(holding.stage)
            if found is not None and _digests(found.secret.reveal())[
                    0 if kind == "sha256" else 1] == digest:
                return found.secret.fingerprint()
    return None
