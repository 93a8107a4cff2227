"""Keys that expire: when a provider says an environment's current API key expires soon.

A key minted with an expiry (OpenAI's ``expires_in_seconds``; Anthropic keys a person made
with one) stops working on its own, whatever the rotation schedule says: a key whose
``expires_at`` falls within the provider's ``expiry_margin_days`` is due. Each provider's
keys are listed once, and a key is told by its redacted hint (head and tail).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from secretops.inventory import Inventory
from secretops.models import Environment, KeyListing, Stage, keys_for
from secretops.providers import for_kind, is_key
from secretops.staging import recorded_key_ids
from secretops.wiring import Wiring

Pair = tuple[str, Environment]


def next_fires(cron: str, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """The next two times after ``now`` at which ``cron`` fires, in UTC."""
    fires = CronSim(cron, now.astimezone(ZoneInfo(timezone)).replace(microsecond=0))
    first: datetime = next(fires)
    second: datetime = next(fires)
    return first.astimezone(UTC), second.astimezone(UTC)


def expiry_margin(inv: Inventory, kind: str) -> timedelta | None:
    """How long before its expiry a key of ``kind`` is due (the provider's
    ``expiry_margin_days``); None for a kind whose keys do not expire."""
    if not is_key(kind):
        return None
    settings = inv.provider_config(for_kind(kind).name)
    days = getattr(settings, "expiry_margin_days", None)
    return timedelta(days=days) if isinstance(days, int) else None


def key_lifetime(inv: Inventory, secret: str, now: datetime) -> timedelta | None:
    """How long a new key of ``secret`` is minted for, by a provider whose keys expire (its
    settings have ``key_grace_days``): its rotation period (from one firing of its schedule to
    the next) plus that grace, so a key outlives a stopped scheduler by the grace, not
    forever. None without a schedule, or for a provider whose keys do not expire."""
    spec = inv.secret(secret)
    grace = getattr(inv.provider_settings(secret), "key_grace_days", None)
    if spec.schedule is None or not isinstance(grace, int):
        return None
    first, second = next_fires(spec.schedule.cron, spec.schedule.timezone, now)
    return (second - first) + timedelta(days=grace)


def key_expiries(inv: Inventory, wiring: Wiring,
                 pairs: Iterable[Pair]) -> dict[Pair, datetime | None]:
    """For each API key pair: when its current key expires (None: never, or the provider
    shows no single key for the value). Each provider's keys are listed once."""
    found: dict[Pair, datetime | None] = {}
    listings: dict[str, KeyListing] = {}
    for secret, env in pairs:
        kind = inv.secret(secret).kind
        if expiry_margin(inv, kind) is None:
            continue
        current = wiring.stores(secret, env)[0].read(Stage.current)
        if current is None:
            continue
        if kind not in listings:
            listings[kind] = KeyListing(wiring.provider(secret).list_keys())
        ids = recorded_key_ids(wiring.stores(secret, env))
        keys = keys_for(listings[kind], current, ids)
        found[(secret, env)] = keys[0].expires_at if len(keys) == 1 else None
    return found


def expiring(inv: Inventory, wiring: Wiring, pairs: Iterable[Pair],
             now: datetime) -> dict[Pair, datetime]:
    """The pairs whose current key expires before ``now`` plus the margin, with its expiry."""
    due: dict[Pair, datetime] = {}
    for (secret, env), expires in key_expiries(inv, wiring, pairs).items():
        margin = expiry_margin(inv, inv.secret(secret).kind)
        if expires is not None and margin is not None and expires <= now + margin:
            due[(secret, env)] = expires
    return due
