"""The CI's AWS account: IAM users and their access keys, with requests really authenticated.

``python -m sandbox.iam --port 0 --state-file F --dir DIR`` runs moto's server in its own
process, on 127.0.0.1 and an ephemeral port, with moto's IAM authentication switched on
(``POST /moto-api/reset-auth`` with ``0``, what ``set_initial_no_auth_action_count`` does in
server mode): every request is checked with SigV4 against the access keys of the account's
IAM users, and authorized by their policies. That switch is process-wide
(``settings.INITIAL_NO_AUTH_ACTION_COUNT``), and the sandbox's main moto (:mod:`sandbox.aws`)
serves fake keys without it, so this account cannot live in the supervisor's process.

Before the switch it is seeded with boto3: the CI users ``intelliprompt-ci`` (production)
and ``intelliprompt-ci-staging``, one access key each (what the stores start with), and
``secretops-rotator``, whose inline policy allows only the key-rotation calls on
``user/intelliprompt-ci*``. It then writes ``F`` (mode 0600): the endpoint, the account id
and those key pairs, which :class:`CiAccount` (the supervisor's handle) reads. It stops on
SIGTERM, or when the process that started it is gone.

moto parts from AWS in two places that matter here, mended in this process only
(:func:`_mend_moto`): it accepts a request signed with an *inactive* access key, and it
authorizes every IAM call against resource ``*``, so a policy naming users allows nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CI_USERS = {"production": "intelliprompt-ci", "staging": "intelliprompt-ci-staging"}
ROTATOR = "secretops-rotator"
ROTATOR_POLICY = "rotate-intelliprompt-ci-keys"
ROTATOR_ACTIONS = ("CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey",
                   "GetAccessKeyLastUsed", "TagUser", "UntagUser", "ListUserTags", "GetUser")
REGION = "us-east-1"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class KeyPair:
    """An IAM user's access key (the secret kept out of ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class AccountState:
    """What the CI account's process writes for the world: where it is and its key pairs."""

    endpoint_url: str
    account_id: str
    rotator: KeyPair
    users: dict[str, KeyPair]
    """Each CI user's initial key pair, by user name."""
    pid: int = 0

    def to_json(self) -> str:
        def pair(key: KeyPair) -> dict[str, str]:
            return {"access_key_id": key.access_key_id,
                    "secret_access_key": key.secret_access_key}

        return json.dumps({"endpoint_url": self.endpoint_url, "account_id": self.account_id,
                           "region": REGION, "pid": self.pid, "rotator": pair(self.rotator),
                           "users": {name: pair(k) for name, k in self.users.items()}})

    @classmethod
    def from_json(cls, text: str) -> AccountState:
        data = json.loads(text)
        return cls(data["endpoint_url"], data["account_id"], KeyPair(**data["rotator"]),
                   {name: KeyPair(**k) for name, k in data["users"].items()},
                   int(data.get("pid", 0)))

    def user_arn(self, user: str) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{user}"


class CiAccount:
    """The supervisor's handle on the CI account's process: :meth:`launch` starts it (at
    once, without waiting), :meth:`wait_ready` reads its state file, :meth:`stop` ends it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / "iam"
        self.state_file = self.dir / "state.json"
        self.log_path = self.dir / "iam.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: AccountState | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def launch(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox.iam", "--port", "0",
                 "--state-file", str(self.state_file), "--dir", str(self.dir.parent)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> AccountState:
        if self.proc is None:
            self.launch()
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state_file.exists():
                self.state = AccountState.from_json(self.state_file.read_text())
                return self.state
            if proc.poll() is not None:
                raise RuntimeError(f"the CI account (sandbox.iam) exited with code "
                                   f"{proc.returncode}; see {self.log_path}")
            time.sleep(0.02)
        raise RuntimeError(f"the CI account (sandbox.iam) did not start; see {self.log_path}")

    def start(self, timeout: float = START_TIMEOUT) -> AccountState:
        self.launch()
        return self.wait_ready(timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def client(endpoint_url: str, service: str, key: KeyPair, region: str = REGION,
           account_id: str | None = None) -> Any:
    """A boto3 client of the CI account signed with ``key``; ``account_id`` names the account
    to moto (only needed before authentication is on, when moto cannot tell it by the key)."""
    import boto3
    from botocore.config import Config

    made = boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url, region_name=region, aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"mode": "standard", "max_attempts": 2}))
    if account_id is not None:
        def name_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        made.meta.events.register("before-sign", name_account)
    return made


def rotator_policy(account_id: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "RotateCiKeys", "Effect": "Allow",
        "Action": [f"iam:{action}" for action in ROTATOR_ACTIONS],
        "Resource": f"arn:aws:iam::{account_id}:user/intelliprompt-ci*"}]}


def seed(endpoint_url: str, account_id: str) -> tuple[KeyPair, dict[str, KeyPair]]:
    """The users, their first keys and the rotator's policy (authentication still off)."""
    iam = client(endpoint_url, "iam", KeyPair("AKIASANDBOXSEED00000", "seed"),
                 account_id=account_id)

    def user_with_key(name: str) -> KeyPair:
        iam.create_user(UserName=name, Tags=[{"Key": "application", "Value": "intelliprompt"}])
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return KeyPair(key["AccessKeyId"], key["SecretAccessKey"])

    users = {name: user_with_key(name) for name in CI_USERS.values()}
    rotator = user_with_key(ROTATOR)
    iam.put_user_policy(UserName=ROTATOR, PolicyName=ROTATOR_POLICY,
                        PolicyDocument=json.dumps(rotator_policy(account_id)))
    return rotator, users


def _mend_moto() -> None:
    """Mend moto where it parts from AWS, in this process only (its main moto, without
    authentication, is left as it is).

    * AWS refuses a request signed with an access key whose status is ``Inactive``
      (``InvalidClientTokenId``, 403: "The security token included in the request is
      invalid"), exactly as one signed with a deleted key; moto's ``IAMUserAccessKey`` finds
      the key whatever its status and lets the request through. Without this, deactivating
      the old key in a rotation would prove nothing.
    * AWS authorizes an IAM call on a user against that user's ARN; moto's ``IamResponse``
      names only roles as resources and authorizes everything else against ``*``, which a
      policy whose ``Resource`` names users never matches (every call denied). The user is
      ``UserName``'s, or, as AWS does without one, the caller's own
      (``GetAccessKeyLastUsed``: the key's owner).

    ``tests/sandbox/test_iam.py`` holds both to AWS."""
    from moto.iam import access_control
    from moto.iam.exceptions import NoSuchEntity, NotFoundException
    from moto.iam.responses import IamResponse

    found = access_control.IAMUserAccessKey.__init__
    if not getattr(found, "refuses_inactive", False):
        def __init__(self: access_control.IAMUserAccessKey, account_id: str, partition: str,
                     access_key_id: str, headers: dict[str, str]) -> None:
            found(self, account_id, partition, access_key_id, headers)
            user = self.backend.get_user(self._owner_user_name)
            if any(k.access_key_id == access_key_id and k.status != "Active"
                   for k in user.access_keys):
                raise access_control.CreateAccessKeyFailure(reason="InvalidId")

        __init__.refuses_inactive = True  # type: ignore[attr-defined]
        access_control.IAMUserAccessKey.__init__ = __init__  # type: ignore[method-assign]

    named = IamResponse._determine_resource
    if getattr(named, "names_users", False):
        return

    def _determine_resource(self: IamResponse) -> str:
        resource = named(self)
        if resource != "*" or "RoleName" in self.data:
            return resource
        name = _param(self.data, "UserName")
        key_id = _param(self.data, "AccessKeyId")
        if self._get_action() == "GetAccessKeyLastUsed" and key_id:
            owner = self.backend.get_user_from_access_key_id(key_id)
            return str(owner.arn) if owner else "*"
        if not name:
            # AWS: without a UserName the call is on the caller's own user
            caller = self.backend.get_user_from_access_key_id(self.get_access_key())
            return str(caller.arn) if caller else "*"
        try:
            return str(self.backend.get_user(name).arn)
        except (NoSuchEntity, NotFoundException):
            return f"arn:{self.partition}:iam::{self.current_account}:user/{name}"

    _determine_resource.names_users = True  # type: ignore[attr-defined]
    IamResponse._determine_resource = _determine_resource  # type: ignore[method-assign]


def _param(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return str((value[0] if value else "") if isinstance(value, list) else (value or ""))


def serve(state_file: Path, port: int = 0) -> None:
    """Run the account until SIGTERM or SIGINT, or until the parent process is gone."""
    import logging
    import urllib.request

    from moto.server import ThreadedMotoServer

    _mend_moto()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        endpoint = f"http://{host}:{bound}"
        account_id = f"{secrets.randbelow(9 * 10**11) + 10**11}"
        rotator, users = seed(endpoint, account_id)
        # what moto's set_initial_no_auth_action_count(0) sends in server mode
        request = urllib.request.Request(  # noqa: S310
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"content-type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()
        state = AccountState(endpoint, account_id, rotator, users, os.getpid())
        partial = state_file.with_name(state_file.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(state.to_json())
        partial.replace(state_file)
        print(f"CI account {account_id} at {endpoint}", flush=True)
        while not stop.wait(0.5):
            if os.getppid() != parent:
                break
    finally:
        server.stop()
        state_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.iam")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--dir", required=True, help="the sandbox folder (names the process)")
    args = parser.parse_args(argv)
    serve(Path(args.state_file), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
