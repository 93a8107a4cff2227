"""OpenAI: API keys minted on a project's service accounts through the Admin API
(:mod:`secretops.adapters.openai_admin`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from secretops.models import Environment
from secretops.providers import Credentials, Problem, Provider
from secretops.schema import HttpUrl, ProviderId, StrictModel

if TYPE_CHECKING:
    from secretops.inventory.root import Inventory
    from secretops.ports import KeyProvider


class OpenAISettings(StrictModel):
    """``service_accounts``: the service account each environment's keys are minted on (an
    environment without one gets a new service account per key). A minted key expires after
    the secret's rotation period plus ``key_grace_days``; ``scopes`` restricts new keys (all
    of the account's permissions when unset). A key that expires within
    ``expiry_margin_days`` is due for rotation whatever its schedule says."""

    base_url: HttpUrl = "https://api.openai.com"
    admin_credential: str
    project_id: str
    service_accounts: dict[Environment, ProviderId] = {}
    key_grace_days: int = Field(14, ge=1, le=365)
    scopes: list[Annotated[str, Field(pattern=r"^[a-z0-9_.]{1,64}$")]] | None = None
    expiry_margin_days: int = Field(7, ge=0, le=90)


def build(settings: OpenAISettings, credential: Credentials) -> KeyProvider:
    from secretops.adapters.openai_admin import OpenAIProvider

    accounts = {env.value: account for env, account in settings.service_accounts.items()}
    return OpenAIProvider(settings.base_url, credential(settings.admin_credential),
                          settings.project_id, accounts, settings.scopes)


def checks(inventory: Inventory, settings: OpenAISettings) -> Iterator[Problem]:
    for env in settings.service_accounts:
        if env not in inventory.environments:
            yield (f"providers.openai.service_accounts.{env.value}",
                   f"environment {env.value!r} is not under environments")


PROVIDER = Provider(name="openai", kind="openai_api_key", settings=OpenAISettings, build=build,
                    checks=checks)
