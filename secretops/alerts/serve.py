"""``secretops alerts serve``: the receiver built from the inventory and served by uvicorn.

The inventory names the receiver's credentials (never their values), each a Prefect Secret
block, an environment variable or a file like every credential:

- ``github-webhook-secret``: the secret of the repository's or organization's webhook;
- ``github-token``: a token that may read secret scanning alerts;
- ``alerts-report-token`` (optional): the bearer token scanners post reports with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from secretops.alerts.app import ReceiverConfig, create_app
from secretops.alerts.matching import FingerprintIndex, inventory_stores
from secretops.alerts.respond import Responder
from secretops.credentials import resolve_credential
from secretops.errors import SecretopsError
from secretops.inventory import Inventory
from secretops.wiring import Wiring

WEBHOOK_CREDENTIAL = "github-webhook-secret"
TOKEN_CREDENTIAL = "github-token"
REPORT_CREDENTIAL = "alerts-report-token"
GITHUB_API = "https://api.github.com"


@dataclass
class Receiver:
    config: ReceiverConfig
    wiring: Wiring

    def close(self) -> None:
        self.wiring.close()


def build_receiver(inventory: Inventory, github_api: str = GITHUB_API,
                   drill: bool = False) -> Receiver:
    """The receiver's parts: credentials read, the stores' fingerprints indexed."""
    from secretops.adapters.github import GitHubAlerts

    for name in (WEBHOOK_CREDENTIAL, TOKEN_CREDENTIAL):
        if name not in inventory.credentials:
            raise SecretopsError(f"the inventory names no {name!r} credential (credentials: "
                                 f"{name}: {{block: ...}} or {{env: ...}} or {{file: ...}})")
    report = (resolve_credential(inventory, REPORT_CREDENTIAL)
              if REPORT_CREDENTIAL in inventory.credentials else None)
    wiring = Wiring(inventory)
    github = GitHubAlerts(github_api, resolve_credential(inventory, TOKEN_CREDENTIAL))
    index = FingerprintIndex(inventory_stores(wiring))
    responder = Responder(wiring, index, drill=drill)
    warm(wiring, responder)
    config = ReceiverConfig(webhook_secret=resolve_credential(inventory, WEBHOOK_CREDENTIAL),
                            report_token=report, read_alert=github.alert, responder=responder)
    return Receiver(config, wiring)


def warm(wiring: Wiring, responder: Responder) -> None:
    """Build what the first revocation needs before the first alert: each provider's client
    (``import openai`` alone takes half a second) and the Prefect client."""

    for secret in wiring.inventory.secret_ids():
        if not wiring.inventory.secret(secret).is_password:
            wiring.provider(secret)
    responder.find_run("warm-up")


def serve(inventory: Inventory, host: str, port: int, github_api: str = GITHUB_API) -> None:
    import uvicorn

    from secretops import redaction

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    redaction.install()
    receiver = build_receiver(inventory, github_api)
    try:
        uvicorn.run(create_app(receiver.config), host=host, port=port, log_level="warning",
                    access_log=False, lifespan="off")
    finally:
        receiver.close()
