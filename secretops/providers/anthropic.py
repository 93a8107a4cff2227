"""Anthropic: API keys that a person creates in the console; the Admin API lists them and
sets their status (:mod:`secretops.adapters.anthropic_admin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from secretops.providers import Credentials, PersonInstructions, Provider
from secretops.schema import HttpUrl, StrictModel

if TYPE_CHECKING:
    from secretops.ports import KeyProvider


class AnthropicSettings(StrictModel):
    """``console_url`` and ``key_prefix`` tell the person who creates a key where and what."""

    base_url: HttpUrl = "https://api.anthropic.com"
    admin_credential: str
    workspace_id: str | None = None
    console_url: HttpUrl | None = None
    key_prefix: str = "sk-ant-"
    expiry_margin_days: int = Field(7, ge=0, le=90)


def build(settings: AnthropicSettings, credential: Credentials) -> KeyProvider:
    # imported here: the anthropic client alone takes over a second to import, and a leak
    # response of another provider starts with a revocation
    from secretops.adapters.anthropic_admin import AnthropicProvider

    return AnthropicProvider(settings.base_url, credential(settings.admin_credential),
                             settings.workspace_id)


def person(settings: AnthropicSettings, key_name: str, environment: str) -> PersonInstructions:
    """The console has no API for new keys: a person creates each one there and pastes it."""
    return PersonInstructions(console_url=settings.console_url or "the provider's console",
                              key_name=key_name, key_prefix=settings.key_prefix)


PROVIDER = Provider(name="anthropic", kind="anthropic_api_key", settings=AnthropicSettings,
                    build=build, person=person)
