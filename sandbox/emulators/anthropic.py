"""Anthropic's emulator in the world: the API (:mod:`sandbox.anthropic_api`, behind the
``anthropic`` fault knobs) and its console (where a person mints keys: ``sandbox.json``'s
``providers.console``), one key per environment for IntelliPrompt's backend, the admin key the
flows use, and the inventory's ``providers.anthropic``. A pod's key is checked with
``GET /v1/models`` and ``x-api-key``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.emulators import (
    BackendKey,
    Check,
    Emulator,
    Host,
    InventoryPart,
    KeyCheck,
    Probe,
    Running,
    provider_endpoint,
)

if TYPE_CHECKING:
    import httpx

    from sandbox.anthropic_api import AnthropicState

NAME = "anthropic"
CONSOLE = "console"
KEY = BackendKey(variable="ANTHROPIC_API_KEY", url_variable="ANTHROPIC_BASE_URL")


class AnthropicWorld(Running):
    def __init__(self, host: Host) -> None:
        from sandbox.anthropic_api import AnthropicState

        self.host = host
        self.state: AnthropicState = AnthropicState()
        self.admin_key = ""

    async def serve(self) -> None:
        from sandbox.anthropic_api import anthropic_app, console_app

        await self.host.serve(NAME, anthropic_app(self.state), knob=NAME)
        await self.host.serve(CONSOLE, console_app(self.state))

    def first_keys(self, environments: Sequence[str]) -> dict[str, str]:
        keys = {env: self.state.mint_key(f"intelliprompt-{env}-backend")[1]
                for env in environments}
        self.admin_key = self.state.create_admin_key()
        return keys

    def credentials(self) -> dict[str, str]:
        return {"anthropic-admin-key": self.admin_key}

    def inventory(self) -> InventoryPart:
        from sandbox.anthropic_api import KEY_PREFIX
        from sandbox.inventory import api_key_secret

        return InventoryPart(
            settings={"base_url": self.host.urls[NAME], "admin_credential": "anthropic-admin",
                      "console_url": self.host.urls[CONSOLE], "key_prefix": KEY_PREFIX},
            credentials={"anthropic-admin": "credentials/anthropic-admin-key"},
            secrets=[api_key_secret(NAME, "anthropic_api_key", KEY.variable, day=2)])

    def info(self) -> dict[str, Any]:
        return {"providers": {NAME: self.host.urls[NAME], CONSOLE: self.host.urls[CONSOLE]}}


async def _ask(client: httpx.AsyncClient, probe: Probe) -> Check:
    from sandbox.kube.backend import check_models

    return await check_models(client, "Anthropic", probe.endpoint,
                              {"x-api-key": probe.value, "anthropic-version": "2023-06-01"})


EMULATOR = Emulator(
    name=NAME, start=AnthropicWorld, backend=KEY, fault_knobs=(NAME,),
    endpoint=provider_endpoint(NAME), rank=20,
    check=KeyCheck("Anthropic key", KEY.holds, KEY.probe, _ask),
)
