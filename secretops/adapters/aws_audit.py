"""Who can read a secret in AWS (IAM) and who did (CloudTrail), for the access audit.

IAM: every role whose inline or attached policies allow ``secretsmanager:GetSecretValue`` on
the secret's ARN (action and resource wildcards as IAM reads them, an explicit ``Deny`` wins),
reported once per principal that its trust policy lets assume it. CloudTrail:
``LookupEvents`` for ``GetSecretValue`` since a time, kept when the event names the secret.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from secretops.adapters.aws import aws_error
from secretops.models import AccessEvent, AccessGrant

READ_ACTION = "secretsmanager:GetSecretValue"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _matches(patterns: Iterable[str], value: str, *, case_sensitive: bool) -> bool:
    for pattern in patterns:
        if case_sensitive and fnmatch.fnmatchcase(value, pattern):
            return True
        if not case_sensitive and fnmatch.fnmatchcase(value.lower(), pattern.lower()):
            return True
    return False


def statement_applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    """Whether one policy statement covers ``action`` on ``resource`` (Action/NotAction,
    Resource/NotResource, with ``*`` and ``?`` wildcards)."""
    if "Action" in statement:
        if not _matches(_as_list(statement["Action"]), action, case_sensitive=False):
            return False
    elif "NotAction" in statement:
        if _matches(_as_list(statement["NotAction"]), action, case_sensitive=False):
            return False
    else:
        return False
    if "Resource" in statement:
        return _matches(_as_list(statement["Resource"]), resource, case_sensitive=True)
    if "NotResource" in statement:
        return not _matches(_as_list(statement["NotResource"]), resource, case_sensitive=True)
    return False


def policy_decision(document: Any, action: str, resource: str) -> str | None:
    """``"Deny"``, ``"Allow"`` or None (not mentioned) for one policy document."""
    if isinstance(document, str):
        document = json.loads(document)
    allowed = False
    for statement in _as_list(document.get("Statement")):
        if not statement_applies(statement, action, resource):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        allowed = allowed or statement.get("Effect") == "Allow"
    return "Allow" if allowed else None


def trusted_principals(document: Any) -> list[str]:
    """The principals an assume-role (trust) policy allows, as ``Kind:value`` strings."""
    if isinstance(document, str):
        document = json.loads(document)
    found: list[str] = []
    for statement in _as_list(document.get("Statement") if document else None):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if principal == "*":
            found.append("AWS:*")
            continue
        if isinstance(principal, dict):
            for kind, values in principal.items():
                found.extend(f"{kind}:{value}" for value in _as_list(values))
    return found


class AwsAudit:
    """IAM and CloudTrail for one environment (implements ``AwsAccess``)."""

    def __init__(
        self, secretsmanager: Any, iam: Any, cloudtrail: Any, environment: str = "production"
    ) -> None:
        self._sm = secretsmanager
        self._iam = iam
        self._cloudtrail = cloudtrail
        self._environment = environment

    def _arn(self, secret_id: str) -> tuple[str, str]:
        try:
            described = self._sm.describe_secret(SecretId=secret_id)
        except ClientError as exc:
            raise aws_error("DescribeSecret", secret_id, exc) from None
        return str(described["ARN"]), str(described["Name"])

    def _role_policies(self, role_name: str) -> Iterator[tuple[str, Any]]:
        for page in self._iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for policy_name in page["PolicyNames"]:
                got = self._iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)
                yield f"inline policy {policy_name}", got["PolicyDocument"]
        paginator = self._iam.get_paginator("list_attached_role_policies")
        for page in paginator.paginate(RoleName=role_name):
            for attached in page["AttachedPolicies"]:
                arn = attached["PolicyArn"]
                policy = self._iam.get_policy(PolicyArn=arn)["Policy"]
                version = self._iam.get_policy_version(
                    PolicyArn=arn, VersionId=policy["DefaultVersionId"]
                )["PolicyVersion"]
                yield f"managed policy {attached['PolicyName']}", version["Document"]

    def secret_readers(self, secret_id: str) -> list[AccessGrant]:
        arn, _name = self._arn(secret_id)
        grants: list[AccessGrant] = []
        try:
            for page in self._iam.get_paginator("list_roles").paginate():
                for role in page["Roles"]:
                    grants.extend(self._role_grants(role, arn))
        except ClientError as exc:
            raise aws_error("ListRoles", secret_id, exc) from None
        return grants

    def _role_grants(self, role: dict[str, Any], arn: str) -> list[AccessGrant]:
        decisions = [
            (label, policy_decision(document, READ_ACTION, arn))
            for label, document in self._role_policies(role["RoleName"])
        ]
        if any(decision == "Deny" for _, decision in decisions):
            return []
        allowing = [label for label, decision in decisions if decision == "Allow"]
        if not allowing:
            return []
        via = f"IAM role {role['RoleName']} ({', '.join(allowing)})"
        principals = trusted_principals(role.get("AssumeRolePolicyDocument")) or [
            f"AWS:{role['Arn']}"
        ]
        return [
            AccessGrant(
                environment=self._environment,
                subject_kind="IAMPrincipal",
                subject=principal,
                via=via,
                verbs=(READ_ACTION,),
                resource_names=(arn,),
            )
            for principal in principals
        ]

    def secret_read_events(self, secret_id: str, since: datetime) -> list[AccessEvent]:
        arn, name = self._arn(secret_id)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        events: list[AccessEvent] = []
        paginator = self._cloudtrail.get_paginator("lookup_events")
        pages = paginator.paginate(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}],
            StartTime=since,
        )
        try:
            for page in pages:
                for event in page.get("Events", []):
                    found = self._event(event, arn, name)
                    if found is not None and found.time >= since:
                        events.append(found)
        except ClientError as exc:
            raise aws_error("LookupEvents", secret_id, exc) from None
        return sorted(events, key=lambda e: e.time)

    def _event(self, event: dict[str, Any], arn: str, name: str) -> AccessEvent | None:
        targets = {str(r.get("ResourceName", "")) for r in event.get("Resources", [])}
        detail: dict[str, Any] = {}
        try:
            detail = json.loads(event.get("CloudTrailEvent") or "{}")
        except ValueError:
            detail = {}
        parameters = detail.get("requestParameters") or {}
        targets.add(str(parameters.get("secretId", "")))
        if not targets & {arn, name}:
            return None
        identity = detail.get("userIdentity") or {}
        actor = str(identity.get("arn") or event.get("Username") or "unknown")
        time = event.get("EventTime")
        if not isinstance(time, datetime):
            time = datetime.fromisoformat(str(detail.get("eventTime")).replace("Z", "+00:00"))
        if time.tzinfo is None:
            time = time.replace(tzinfo=UTC)
        source_ip = detail.get("sourceIPAddress")
        return AccessEvent(
            source="cloudtrail",
            time=time,
            actor=actor,
            action="GetSecretValue",
            target=name,
            detail=f"from {source_ip}" if source_ip else "",
        )
