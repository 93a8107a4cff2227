"""AWS for the sandbox: moto (Secrets Manager, IAM, STS) behind a proxy that keeps CloudTrail.

moto runs in server mode in a thread of this process, on 127.0.0.1 and an ephemeral port.
:func:`proxy_app` forwards every request to it unchanged and, for the Secrets Manager calls
an access audit cares about (``GetSecretValue``, ``DescribeSecret``, ``PutSecretValue``,
``UpdateSecretVersionStage``), writes a CloudTrail record: who called (the IAM identity of
the SigV4 access key id, from a configurable map), when, from where, with which user agent,
on which secret. The proxy answers CloudTrail's ``LookupEvents`` itself from those records,
so boto3's ``cloudtrail`` client pointed at the proxy works unchanged. A record never holds
a secret value: request parameters are taken from an allow-list and of the response only
the secret's ARN is kept.

moto keeps its state in process-wide globals. Each :class:`AwsSandbox` therefore works in
its own AWS account (the proxy names it to moto in the ``x-moto-account-id`` header), a
fresh random one at every start unless one is given: several sandboxes, or a sandbox and
other moto users, can share a process without seeing each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from moto.server import ThreadedMotoServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.cloudtrail import CloudTrailLog, lookup_events

ACCOUNT_ID = "123456789012"  # moto's default; AwsSandbox(account_id=ACCOUNT_ID) to use it
REGION = "us-east-1"
CLOUDTRAIL_TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
RECORDED = {
    "GetSecretValue": True,
    "DescribeSecret": True,
    "PutSecretValue": False,
    "UpdateSecretVersionStage": False,
}
_PARAMETERS = {
    "SecretId": "secretId",
    "VersionId": "versionId",
    "VersionStage": "versionStage",
    "VersionStages": "versionStages",
    "ClientRequestToken": "clientRequestToken",
    "MoveToVersionId": "moveToVersionId",
    "RemoveFromVersionId": "removeFromVersionId",
}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}

def _keep_current_in_step() -> None:
    """Mend moto's Secrets Manager where it parts from AWS: ``UpdateSecretVersionStage``
    moving AWSCURRENT leaves moto's notion of the current version behind, so a later
    ``PutSecretValue`` (an edit in the console, say) demotes an older version to AWSPREVIOUS
    and leaves two versions labelled AWSCURRENT. AWS moves the label from whichever version
    holds it (API_PutSecretValue); so must the sandbox. ``tests/sandbox/test_aws.py`` holds
    it to that."""
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

    moved = SecretsManagerBackend.update_secret_version_stage
    if getattr(moved, "keeps_current_in_step", False):
        return

    def update_secret_version_stage(self: SecretsManagerBackend, secret_id: str,
                                    version_stage: str, remove_from_version_id: str,
                                    move_to_version_id: str) -> tuple[str, str]:
        answer = moved(self, secret_id, version_stage, remove_from_version_id,
                       move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            secret = self.secrets[secret_id]
            # a ReplicaSecret's default_version_id is read-only; the sandbox makes no replicas
            assert isinstance(secret, FakeSecret)
            secret.default_version_id = move_to_version_id
        return answer

    update_secret_version_stage.keeps_current_in_step = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = (  # type: ignore[method-assign]
        update_secret_version_stage)


_keep_current_in_step()


ADMIN_ACCESS_KEY_ID = "AKIASECRETOPSADMIN01"
ESO_ACCESS_KEY_ID = "ASIAEXTERNALSECRETS1"
CONTRACTOR_ACCESS_KEY_ID = "AKIACONTRACTORLAPTOP"
SECRET_ACCESS_KEY = "sandbox-secret-access-key"


def default_identities(account_id: str) -> dict[str, str]:
    """Who the sandbox's access keys belong to: secretops itself, External Secrets Operator
    (through the reader role) and the contractor's laptop that should not read anything."""
    return {
        ADMIN_ACCESS_KEY_ID: f"arn:aws:iam::{account_id}:user/secretops",
        ESO_ACCESS_KEY_ID: (
            f"arn:aws:sts::{account_id}:assumed-role/intelliprompt-secrets-reader/external-secrets"
        ),
        CONTRACTOR_ACCESS_KEY_ID: f"arn:aws:iam::{account_id}:user/contractor-laptop",
    }


@dataclass(frozen=True)
class Identity:
    """The caller of an AWS request, in CloudTrail's ``userIdentity`` words."""

    arn: str
    access_key_id: str

    @property
    def kind(self) -> str:
        return "AssumedRole" if ":assumed-role/" in self.arn else "IAMUser"

    @property
    def username(self) -> str:
        """What LookupEvents shows as ``Username``: the user name or the role session."""
        return self.arn.rsplit("/", 1)[-1]

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": self.kind,
            "principalId": f"AIDA{self.username.upper()}",
            "arn": self.arn,
            "accountId": self.arn.split(":")[4],
            "accessKeyId": self.access_key_id,
        }
        if self.kind == "AssumedRole":
            role = self.arn.split("/")[1]
            record["principalId"] = f"AROA{role.upper()}:{self.username}"
            record["sessionContext"] = {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{record['accountId']}:role/{role}",
                    "accountId": record["accountId"],
                    "userName": role,
                }
            }
        else:
            record["userName"] = self.username
        return record


class AwsSandbox:
    """moto in a thread, the recording proxy app in front of it, and the CloudTrail log."""

    def __init__(
        self, identities: dict[str, str] | None = None, account_id: str | None = None
    ) -> None:
        self._given_account = account_id
        self._given_identities = identities
        self.account_id = account_id or ACCOUNT_ID
        self.identities: dict[str, str] = {}
        self.trail = CloudTrailLog()
        self._moto: ThreadedMotoServer | None = None
        self.moto_url = ""
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.app = proxy_app(self)

    def start(self) -> str:
        """Start moto and open a new, empty account; returns moto's URL (clients use the
        proxy). Unless an ``account_id`` was given, every start uses a fresh random account:
        moto keeps its state in process-wide globals, and a fresh account is what keeps this
        world apart from an earlier one, or from another moto user in the same process."""
        if self._moto is None:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            self.moto_url = f"http://{host}:{port}"
        self.account_id = self._given_account or f"{secrets.randbelow(9 * 10**11) + 10**11}"
        given = self._given_identities
        self.identities = dict(default_identities(self.account_id) if given is None else given)
        self.trail.clear()
        return self.moto_url

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._clients.clear()

    def upstream(self) -> httpx.AsyncClient:
        """The client to moto for the running event loop (one per loop, kept for reuse)."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = httpx.AsyncClient(timeout=60)
        return self._clients[loop]

    def add_identity(self, access_key_id: str, arn: str) -> None:
        self.identities[access_key_id] = arn

    def identity(self, authorization: str) -> tuple[Identity, str]:
        """The caller and region of a SigV4 ``Authorization`` header."""
        match = _CREDENTIAL.search(authorization)
        if match is None:
            return Identity(f"arn:aws:iam::{self.account_id}:user/anonymous", ""), REGION
        key_id, region = match.groups()
        arn = self.identities.get(key_id, f"arn:aws:iam::{self.account_id}:user/unknown")
        return Identity(arn, key_id), region

    def record(
        self,
        request: Request,
        event_name: str,
        params: dict[str, Any],
        status: int,
        body: bytes,
    ) -> None:
        """Write the CloudTrail record of one Secrets Manager call."""
        identity, region = self.identity(request.headers.get("authorization", ""))
        answer = _json(body)
        requested = {_PARAMETERS[k]: v for k, v in params.items() if k in _PARAMETERS}
        event_id = str(uuid.uuid4())
        moment = datetime.now(UTC)
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity.to_record(),
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": request.client.host if request.client else "127.0.0.1",
            "userAgent": request.headers.get("user-agent", ""),
            "requestParameters": requested,
            "responseElements": None,
            "requestID": str(uuid.uuid4()),
            "eventID": event_id,
            "readOnly": RECORDED[event_name],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": self.account_id,
            "eventCategory": "Management",
        }
        if status >= 400:
            record["errorCode"] = str(answer.get("__type", "UnknownError")).split("#")[-1]
            record["errorMessage"] = str(answer.get("message", answer.get("Message", "")))
        arn = answer.get("ARN")
        resources = (
            [{"accountId": self.account_id, "type": "AWS::SecretsManager::Secret", "ARN": arn}]
            if isinstance(arn, str)
            else []
        )
        if resources:
            record["resources"] = resources
        self.trail.add(record, moment.timestamp(), identity.username, resources)


def _json(body: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(body or b"{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def proxy_app(aws: AwsSandbox) -> Starlette:
    """Forward every request to moto; keep CloudTrail; answer ``LookupEvents`` here."""

    async def forward(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        body = await request.body()
        if target == CLOUDTRAIL_TARGET + "LookupEvents":
            status, answer = lookup_events(aws.trail, _json(body))
            return Response(
                json.dumps(answer),
                status_code=status,
                media_type="application/x-amz-json-1.1",
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-moto-account-id"] = aws.account_id
        url = aws.moto_url + request.url.path
        upstream = await aws.upstream().request(
            request.method, url, params=request.url.query, headers=headers, content=body
        )
        service, _, event_name = target.partition(".")
        if service == "secretsmanager" and event_name in RECORDED:
            aws.record(request, event_name, _json(body), upstream.status_code, upstream.content)
        answer_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, upstream.status_code, headers=answer_headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


@dataclass(frozen=True)
class SeedValues:
    """The values IntelliPrompt's production secrets start with (kept out of ``repr``):
    ``api_keys``, the backend's keys by provider name (``prod/intelliprompt/<name>``)."""

    api_keys: Mapping[str, str] = field(repr=False)
    db_username: str
    db_password: str = field(repr=False)


OIDC_ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/SANDBOXINTELLIPROMPT"
ESO_SERVICE_ACCOUNT = "system:serviceaccount:external-secrets:external-secrets"
READER_ROLE = "intelliprompt-secrets-reader"
CONTRACTOR_READ = "prod/intelliprompt/openai"
CONTRACTOR_USER_AGENT = (
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off "
    "command/secretsmanager.get-secret-value"
)


def client(
    endpoint_url: str,
    service: str,
    access_key_id: str = ADMIN_ACCESS_KEY_ID,
    region: str = REGION,
    user_agent: str | None = None,
) -> Any:
    """A boto3 client for ``service`` through the proxy, signed with ``access_key_id``."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(user_agent=user_agent, retries={"mode": "standard", "max_attempts": 3}),
    )


def seed(endpoint_url: str, values: SeedValues, region: str = REGION) -> dict[str, str]:
    """Create IntelliPrompt's production world through the proxy at ``endpoint_url``:
    the backend's secrets (its keys', the database login's), the OIDC provider and the ESO
    reader role with its policies, and a read of ``prod/intelliprompt/openai`` (the first
    key's, when there is no OpenAI key) by ``contractor-laptop`` that CloudTrail records.
    Returns the ARNs by name (secret names, ``role``, ``oidc_provider``)."""
    secretsmanager = client(endpoint_url, "secretsmanager", region=region)
    arns: dict[str, str] = {}
    for name, value in (
        *((f"prod/intelliprompt/{key}", key_value) for key, key_value in values.api_keys.items()),
        (
            "prod/intelliprompt/db",
            json.dumps({"username": values.db_username, "password": values.db_password}),
        ),
    ):
        created = secretsmanager.create_secret(Name=name, SecretString=value)
        arns[name] = created["ARN"]
    account_id = arns["prod/intelliprompt/db"].split(":")[4]
    read = CONTRACTOR_READ if CONTRACTOR_READ in arns else next(iter(arns))
    iam = client(endpoint_url, "iam", region=region)
    provider = iam.create_open_id_connect_provider(
        Url=f"https://{OIDC_ISSUER}",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
    )
    arns["oidc_provider"] = provider["OpenIDConnectProviderArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": arns["oidc_provider"]},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_ISSUER}:sub": ESO_SERVICE_ACCOUNT,
                        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    role = iam.create_role(
        RoleName=READER_ROLE,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="External Secrets Operator reads IntelliPrompt's production secrets",
    )
    arns["role"] = role["Role"]["Arn"]
    prefix = f"arn:aws:secretsmanager:{region}:{account_id}:secret:prod/intelliprompt/"
    permissions = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": f"{prefix}*",
            }
        ],
    }
    iam.put_role_policy(
        RoleName=READER_ROLE,
        PolicyName="read-intelliprompt-secrets",
        PolicyDocument=json.dumps(permissions),
    )
    contractor = client(
        endpoint_url,
        "secretsmanager",
        CONTRACTOR_ACCESS_KEY_ID,
        region,
        user_agent=CONTRACTOR_USER_AGENT,
    )
    contractor.get_secret_value(SecretId=read)
    return arns
