"""AWS IAM's emulator in the world: the CI's AWS account (:mod:`sandbox.iam`, its own
process: moto with IAM authentication on), the CI users' first key pairs in the stores and
the ``ci-runner`` Deployment that holds them (:mod:`sandbox.ci`), the rotator's key pair the
flows use, the inventory's ``providers.aws_iam`` and ``sandbox.json``'s ``iam``. A pod's pair
is checked with ``sts:GetCallerIdentity`` signed with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sandbox.emulators import (
    Application,
    Check,
    Emulator,
    Env,
    Host,
    InventoryPart,
    KeyCheck,
    Obj,
    Probe,
    Running,
)
from sandbox.iam import REGION, AccountState, CiAccount

if TYPE_CHECKING:
    import httpx

NAME = "aws_iam"
RUNNER = Application(deployment="ci-runner", starting="Starting CI runner",
                     ready="CI runner ready")
REFUSALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
            "AccessDenied", "AccessDeniedException", "ExpiredToken", "InvalidAccessKeyId",
            "AuthFailure"}
_botocore_lock = threading.Lock()
_botocore: list[object] = []


class CiAccountWorld(Running):
    def __init__(self, host: Host) -> None:
        self.host = host
        self.account = CiAccount(host.dir)
        self._state: AccountState | None = None

    @property
    def state(self) -> AccountState:
        assert self._state is not None, "the CI account is not ready yet"
        return self._state

    def launch(self) -> None:
        self.account.launch()  # its own process: it boots while the rest of the world does

    async def ready(self) -> str:
        self._state = await asyncio.to_thread(self.account.wait_ready)
        self.host.urls["iam"] = self._state.endpoint_url
        return "CI account started"

    async def seed(self) -> None:
        from sandbox import ci

        await asyncio.to_thread(ci.seed_secrets, self.host.urls["aws"], self.state)

    def cluster_objects(self, namespaces: Mapping[str, str],
                        progress_deadline_seconds: int) -> list[Obj]:
        from sandbox import ci

        return ci.cluster_objects(self.state, namespaces, refresh_interval="5m",
                                  progress_deadline_seconds=progress_deadline_seconds)

    def credentials(self) -> dict[str, str]:
        from sandbox import ci

        return ci.credentials(self.state)

    def inventory(self) -> InventoryPart:
        from sandbox import ci

        return ci.inventory_part(self.state)

    def info(self) -> dict[str, Any]:
        from sandbox import ci

        return {"iam": ci.info(self.state)}

    def pids(self) -> dict[str, int]:
        return {"iam": self.account.pid} if self.account.pid else {}

    async def stop(self) -> None:
        await asyncio.to_thread(self.account.stop)


def _holds(env: Env) -> bool:
    """A CI runner: an AWS key pointed at the CI account (``AWS_ENDPOINT_URL``). Other pods
    may hold AWS keys for their own use (the alert receiver reads Secrets Manager)."""
    return "AWS_ACCESS_KEY_ID" in env and "AWS_ENDPOINT_URL" in env


def _probe(env: Env) -> Probe | None:
    if not _holds(env):
        return None
    return Probe(env["AWS_ENDPOINT_URL"], env.get("AWS_SECRET_ACCESS_KEY", ""),
                 env["AWS_ACCESS_KEY_ID"], env.get("AWS_REGION", REGION))


def _sts_client(endpoint_url: str, region: str, key_id: str, secret: str) -> object:
    """A botocore STS client; clients are made one at a time, from one botocore session
    (making them is not thread-safe), and retry nothing (the pod's checks retry)."""
    import botocore.session
    from botocore.config import Config

    with _botocore_lock:
        if not _botocore:
            _botocore.append(botocore.session.get_session())
        session = _botocore[0]
        assert isinstance(session, botocore.session.Session)
        return session.create_client(
            "sts", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=3,
                          read_timeout=10))


def _caller_identity(probe: Probe) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sts: Any = _sts_client(probe.endpoint, probe.region or REGION, probe.key_id or "",
                               probe.value)
        sts.get_caller_identity()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in REFUSALS or status in (401, 403):
            return Check(False, f"AWS access key refused ({status} {code})")
        return Check(False, f"AWS STS error ({status} {code})", status in (0, 429) or
                     status >= 500 or "Throttl" in code)
    except BotoCoreError as exc:
        return Check(False, f"AWS STS unreachable ({type(exc).__name__})", True)
    return Check(True)


async def _ask(client: httpx.AsyncClient, probe: Probe) -> Check:
    """``sts:GetCallerIdentity`` at the probe's endpoint signed with its pair (in a
    thread)."""
    return await asyncio.to_thread(_caller_identity, probe)


def _endpoint(info: Mapping[str, Any]) -> str:
    return str(info["iam"]["endpoint_url"])


def _describe(info: Mapping[str, Any]) -> list[str]:
    if "iam" not in info:
        return []
    return [f"  ci account   {info['iam']['endpoint_url']} (IAM and STS, "
            f"account {info['iam']['account_id']})"]


EMULATOR = Emulator(
    name=NAME, start=CiAccountWorld, application=RUNNER, endpoint=_endpoint,
    processes=("sandbox.iam",), describe=_describe, rank=30,
    check=KeyCheck("AWS credentials", _holds, _probe, _ask),
)
