"""Runbook steps at an API-key provider: generate the new key, check it, revoke the old one."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from secretops.errors import NotRetryable, VerificationFailed
from secretops.expiry import key_lifetime
from secretops.models import (
    Credential,
    KeyCheck,
    KeyListing,
    ProviderKey,
    SecretValue,
    Stage,
    as_credential,
    keys_for,
)
from secretops.ports import KeyProvider, SecretStore
from secretops.staging import recorded_key_ids
from tasks.common import inventory_at, runbook_step, wiring_for


class KeyNeeded(NotRetryable):
    """The provider cannot create keys through its API: a person must create one."""


def key_name_prefix(application: str, environment: str, secret: str) -> str:
    """Keys secretops creates are named ``secretops-<app>-<env>-<secret>-<UTC stamp>``, so a key
    created by a run that died before storing it can be found and revoked."""
    return f"secretops-{application}-{environment}-{secret}-"


def _values(stores: list[SecretStore], *stages: Stage) -> list[Credential]:
    """The distinct credentials the stores hold as ``stages`` (a two-part one, an AWS access
    key, with its key id as ``username``)."""
    return _distinct(store.read(stage) for store in stores for stage in stages)


def _distinct(credentials: Iterable[Credential | None]) -> list[Credential]:
    """The credentials, each value once, in their order."""
    found: list[Credential] = []
    for credential in credentials:
        if credential is not None and all(c.secret != credential.secret for c in found):
            found.append(credential)
    return found


class SharedListings:
    """One listing of each provider's keys, shared by the revocations of a fleet run instead
    of one listing per revocation (which made a fleet of N read N² key records).

    A revocation needs from the listing the keys of values its stores hold, and its orphans.
    A listing taken earlier has every key created before it; a value it does not know (a key
    created since) makes the provider be listed again. Orphans are matched against what the
    stores hold when the revocation runs, under the secret's lock, so an earlier listing
    never revokes a key in use; an orphan left after it was taken is found by the next
    rotation of its secret."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[int, KeyListing] = {}

    def keys(self, provider: KeyProvider, wanted: Sequence[Credential],
             ids: Mapping[str, str]) -> KeyListing:
        """A listing of ``provider``'s keys that has a key for each of ``wanted`` (known by
        ``ids`` or by hint), if the provider has one."""
        with self._lock:
            keys = self._keys.get(id(provider))
            if keys is None or not all(keys_for(keys, value, ids) for value in wanted):
                keys = self._keys[id(provider)] = KeyListing(provider.list_keys())
            return keys


_shared: ContextVar[SharedListings | None] = ContextVar("shared_listings", default=None)


@contextmanager
def shared_listings() -> Iterator[SharedListings]:
    """Within this block (and the tasks it submits, which copy the context), revocations
    share one listing of each provider's keys: see :class:`SharedListings`."""
    listings = SharedListings()
    token = _shared.set(listings)
    try:
        yield listings
    finally:
        _shared.reset(token)


def _listing(provider: KeyProvider, wanted: Sequence[Credential],
             ids: Mapping[str, str]) -> KeyListing:
    shared = _shared.get()
    return (KeyListing(provider.list_keys()) if shared is None
            else shared.keys(provider, wanted, ids))


def _revoke_orphans(provider: KeyProvider, held: list[Credential], prefix: str,
                    keys: Iterable[ProviderKey], ids: Mapping[str, str]) -> list[str]:
    """Revoke active keys with our name prefix whose value no store holds (``held``: every
    stage's value; the orphans' values are lost). ``keys`` is one listing of the provider's
    keys, taken by the caller; ``ids`` the key ids the stores recorded with their values.

    A key is taken for an orphan only when the listing can be trusted to show which keys the
    stores hold: when no held value matches any key of the listing (by its recorded id, or
    for a key made by hand by a redacted form this code reads), every key would look
    orphaned, the live one included, so the sweep does not run. A key whose id is recorded
    with a held value is never an orphan, nor is a key created after this run began. An id
    recorded with no held value protects nothing: a store may record the id before it
    writes the value (an AWS tag, the files' sidecar), and a run killed in between leaves
    just such an entry beside an orphan."""
    listing = KeyListing.of(keys)
    known = {key.id for value in held for key in keys_for(listing, value, ids)}
    if held and not known:
        return ["orphan sweep not run: no value the stores hold matches a key in the "
                "provider's listing, so orphans cannot be told from keys in use"]
    began = _run_start()
    revoked = []
    for key in listing:
        # OpenAI stamps keys to the second: one stamped with the run's first second may be a
        # little older or younger than the run, and counts as older (this run's own keys are
        # held by then, and the lock keeps other runs of the secret out)
        younger = (began is not None and key.created_at is not None
                   and key.created_at > began)
        if (key.name.startswith(prefix) and key.status == "active" and key.id not in known
                and not younger and provider.revoke_key(key.id, final=True, listed=key)):
            revoked.append(f"revoked orphan key {key.id} ({key.name}) left by an interrupted run")
    return revoked


def _run_start() -> datetime | None:
    """When the flow run that calls this began (None outside a run)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    began = run.start_time or run.expected_start_time if run is not None else None
    return began if isinstance(began, datetime) else None


@runbook_step("Generate new key at provider")
def generate_new_key(secret: str, environment: str, inventory: str) -> list[str]:
    """Create the new key and store it as PENDING beside the current one in every store.

    A pending key already staged (by an interrupted run, or by a person through the form or the
    CLI) is reused, never replaced."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    provider = wiring.provider(secret)
    pendings = [store.read(Stage.pending) for store in stores]
    staged = next((p for p in pendings if p is not None), None)
    prefix = key_name_prefix(inv.application, environment, secret)
    evidence: list[str] = []
    if staged is None:
        if not provider.can_create_keys:
            raise KeyNeeded(f"{secret} keys can only be created by a person; none is staged")
        if provider.max_keys is not None:  # room for the new key first (AWS: two per user)
            held = _values(stores, Stage.current, Stage.pending, Stage.previous)
            evidence += _revoke_orphans(provider, held, prefix, provider.list_keys(),
                                        recorded_key_ids(stores))
        now = datetime.now(UTC)
        new = provider.create_key(
            f"{prefix}{now:%Y%m%dT%H%M%SZ}", environment=environment,
            lifetime=key_lifetime(inv, secret, now))
        staged = new.credential()
        expiry = (f", expiring {new.key.expires_at:%Y-%m-%d %H:%M} UTC" if new.key.expires_at
                  else "")
        evidence.append(f"created key {new.key.id} ({new.key.name}) at the provider{expiry}")
    else:
        evidence.append(f"reusing the pending key {staged.secret.fingerprint()}")
    for store, pending in zip(stores, pendings, strict=True):
        version = store.stage_pending(staged) if pending is None else store.version(Stage.pending)
        if version is not None:
            evidence.append(f"{store.name}: pending version {version.version_id}")
    return evidence


@runbook_step("Check the new key at the provider")
def check_new_key(secret: str, environment: str, inventory: str) -> list[str]:
    """The pending key answers ``GET /v1/models`` before anything uses it."""
    wiring = wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    pending = _values(stores, Stage.pending)
    if not pending:
        raise VerificationFailed(f"no pending {secret} key to check in {environment}")
    provider = wiring.provider(secret)
    evidence = []
    for credential in pending:
        check = provider.check_key(credential)
        if not check:
            raise VerificationFailed(
                f"the provider refuses the new {secret} key {credential.secret.fingerprint()}"
            )
        evidence.append(_checked("new", credential.secret, check))
    return evidence


@runbook_step("Verify the new key at the provider")
def verify_new_key(secret: str, environment: str, inventory: str) -> list[str]:
    """The current key works at the provider and the previous one still does (until step 5)."""
    wiring = wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    provider = wiring.provider(secret)
    evidence = []
    for credential in _values(stores, Stage.current):
        check = provider.check_key(credential)
        if not check:
            raise VerificationFailed(f"the provider refuses the current {secret} key "
                                     f"{credential.secret.fingerprint()}")
        evidence.append(_checked("current", credential.secret, check))
    return evidence


def _checked(what: str, value: SecretValue, check: KeyCheck) -> str:
    """Evidence of a key the provider accepts, saying how far it was checked."""
    if check is KeyCheck.WORKS:
        return f"{what} key {value.fingerprint()} accepted by the provider"
    return f"{what} key {value.fingerprint()}: {check.value}"


def _revoke(provider: KeyProvider, held: Credential | SecretValue, what: str,
            keys: Iterable[ProviderKey], ids: Mapping[str, str]) -> str:
    credential = as_credential(held)
    value = credential.secret
    found = keys_for(keys, credential, ids)
    recorded = ids.get(value.fingerprint())
    if not found and recorded is not None:  # listed before the key was made: ask for it
        key = provider.get_key(recorded)
        found = [key] if key is not None else []
        if key is None:
            if provider.check_key(credential):
                raise VerificationFailed(f"{what} key {value.fingerprint()} still works, but "
                                         f"the key {recorded} recorded with it does not exist")
            return (f"{what} key {recorded} ({value.fingerprint()}) no longer exists; the "
                    "provider refuses it")
    if not found:
        return f"{what} key {value.fingerprint()} is not known to the provider"
    if len(found) > 1:
        listed = ", ".join(key.id for key in found)
        raise VerificationFailed(f"several {what} keys fit the hint of {value.fingerprint()} "
                                 f"({listed}): revoke the right one by hand, then rerun")
    key = found[0]
    revoked = provider.revoke_key(key.id, listed=key)
    if provider.check_key(credential):
        raise VerificationFailed(f"{what} key {key.id} still works after revocation")
    if not provider.revocation_is_final:  # refused: now for good (Anthropic: archived)
        provider.revoke_key(key.id, final=True)
    state = "revoked" if revoked else "was already revoked"
    return f"{what} key {key.id} ({value.fingerprint()}) {state}; the provider refuses it"


def _revoke_stage(secret: str, environment: str, inventory: str, stage: Stage,
                  what: str) -> list[str]:
    """Revoke the keys held as ``stage`` that are not current, and any key an interrupted run
    created but never stored (one listing of the provider's keys for both); then clear the
    pending marker. Inside :func:`shared_listings` the listing may be shared."""
    wiring = wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    provider = wiring.provider(secret)
    holdings = [store.holdings() for store in stores]
    held = {s: _distinct(h.held(s) for h in holdings)
            for s in (Stage.current, Stage.pending, Stage.previous)}
    current = [c.secret for c in held[Stage.current]]
    revoking = [c for c in held[stage] if c.secret not in current]
    ids = {fp: key for h in holdings for fp, key in h.key_ids.items()}
    keys = _listing(provider, revoking, ids)
    evidence = [_revoke(provider, value, what, keys, ids) for value in revoking]
    prefix = key_name_prefix(inventory_at(inventory).application, environment, secret)
    evidence += _revoke_orphans(provider, [c for held_as in held.values() for c in held_as],
                                prefix, keys, ids)
    for store in stores:
        store.clear_pending()
    return evidence


@runbook_step("Revoke old key at provider")
def revoke_old_key(secret: str, environment: str, inventory: str) -> list[str]:
    """Revoke the previous key (OpenAI: deleted; Anthropic: set inactive, and archived once
    the provider is seen to refuse it), revoke any key an interrupted run created but never
    stored, and clear the pending marker: the rotation is finished."""
    return (_revoke_stage(secret, environment, inventory, Stage.previous, "old")
            or ["no previous key to revoke"])


@runbook_step("Roll back: revoke the new key")
def revoke_new_key(secret: str, environment: str, inventory: str) -> list[str]:
    """After a rollback: the new key is revoked (with any key an interrupted run created but
    never stored) and the pending marker cleared."""
    return (_revoke_stage(secret, environment, inventory, Stage.pending, "new")
            or ["no pending key to revoke"])
