"""OpenAI's emulator in the world: the API (:mod:`sandbox.openai_api`, behind the ``openai``
fault knobs), one service-account key per environment for IntelliPrompt's backend, the admin
key the flows use, and the inventory's ``providers.openai``. A pod's key is checked with
``GET /v1/models`` and ``Authorization: Bearer``."""

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
from sandbox.openai_state import DEFAULT_PROJECT

if TYPE_CHECKING:
    import httpx

    from sandbox.openai_api import OpenAIState

NAME = "openai"
KEY = BackendKey(variable="OPENAI_API_KEY", url_variable="OPENAI_BASE_URL")


class OpenAIWorld(Running):
    def __init__(self, host: Host) -> None:
        from sandbox.openai_api import OpenAIState

        self.host = host
        self.state: OpenAIState = OpenAIState()
        self.state.redaction = lambda: host.faults.get(NAME).redaction
        self.accounts: dict[str, str] = {}
        self.admin_key = ""

    async def serve(self) -> None:
        from sandbox.openai_api import openai_app

        await self.host.serve(NAME, openai_app(self.state), knob=NAME)

    def first_keys(self, environments: Sequence[str]) -> dict[str, str]:
        keys = {}
        for env in environments:
            key_id, keys[env] = self.state.mint_service_account_key(
                DEFAULT_PROJECT, f"intelliprompt-{env}-backend")
            self.accounts[env] = self.state.keys[key_id].service_account_id or ""
        self.admin_key = self.state.create_admin_key()
        return keys

    def credentials(self) -> dict[str, str]:
        return {"openai-admin-key": self.admin_key}

    def inventory(self) -> InventoryPart:
        from sandbox.inventory import api_key_secret

        return InventoryPart(
            settings={"base_url": self.host.urls[NAME], "admin_credential": "openai-admin",
                      "project_id": DEFAULT_PROJECT, "service_accounts": dict(self.accounts)},
            credentials={"openai-admin": "credentials/openai-admin-key"},
            secrets=[api_key_secret(NAME, "openai_api_key", KEY.variable, day=1)])

    def info(self) -> dict[str, Any]:
        return {"providers": {NAME: self.host.urls[NAME]}}

    def revoke_leaked(self, value: str) -> bool:
        key = self.state.key_for_value(value)
        return key is not None and self.state.delete_key(key.id) is not None


async def _ask(client: httpx.AsyncClient, probe: Probe) -> Check:
    from sandbox.kube.backend import check_models

    return await check_models(client, "OpenAI", probe.endpoint,
                              {"Authorization": f"Bearer {probe.value}"})


EMULATOR = Emulator(
    name=NAME, start=OpenAIWorld, backend=KEY, fault_knobs=(NAME,),
    endpoint=provider_endpoint(NAME), rank=10,
    check=KeyCheck("OpenAI key", KEY.holds, KEY.probe, _ask),
)
