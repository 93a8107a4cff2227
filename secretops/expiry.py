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
from secretops.models import Environment, ProviderKey, SecretKind, Stage, keys_for
from secretops.staging import recorded_key_ids
from secretops.wiring import Wiring

Pair = tuple[str, Environment]


def next_fires(cron: str, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """The next two times after ``now`` at which ``cron`` fires, in UTC."""
    fires = CronSim(cron, now.astimezone(ZoneInfo(timezone)).replace(microsecond=0))
    first: datetime = next(fires)
    second: datetime = next(fires)
    return first.astimezone(UTC), second.astimezone(UTC)


def expiry_margin(inv: Inventory, kind: SecretKind) -> timedelta | None:
    """How long before its expiry a key of ``kind`` is due; None for other kinds."""
    settings = (inv.providers.openai if kind is SecretKind.openai_api_key
                else inv.providers.anthropic if kind is SecretKind.anthropic_api_key else None)
    return timedelta(days=settings.expiry_margin_days) if settings is not None else None


def key_lifetime(inv: Inventory, secret: str, now: datetime) -> timedelta | None:
    """How long a new OpenAI key of ``secret`` is minted for: its rotation period (from one
    firing of its schedule to the next) plus the provider's ``key_grace_days``, so a key
    outlives a stopped scheduler by that grace, not forever. None without a schedule."""
    spec, openai = inv.secret(secret), inv.providers.openai
    if spec.schedule is None or openai is None:
        return None
    first, second = next_fires(spec.schedule.cron, spec.schedule.timezone, now)
    return (second - first) + timedelta(days=openai.key_grace_days)


def key_expiries(inv: Inventory, wiring: Wiring,
                 pairs: Iterable[Pair]) -> dict[Pair, datetime | None]:
    """For each API key pair: when its current key expires (None: never, or the provider
    shows no single key for the value). Each provider's keys are listed once."""
    found: dict[Pair, datetime | None] = {}
    listings: dict[SecretKind, list[ProviderKey]] = {}
    for secret, env in pairs:
        kind = inv.secret(secret).kind
        if expiry_margin(inv, kind) is None:
            continue
        current = wiring.stores(secret, env)[0].read(Stage.current)
        if current is None:
            continue
        if kind not in listings:
            listings[kind] = list(wiring.provider(secret).list_keys())
        ids = recorded_key_ids(wiring.stores(secret, env))
        keys = keys_for(listings[kind], current.secret, ids)
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
