"""IAM readers of a secret, resolved from real policies held by moto's IAM."""

from __future__ import annotations

import json
import uuid
from typing import Any

from secretops.adapters.aws import AwsConfig
from secretops.adapters.aws_audit import AwsAudit, policy_decision

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/devops"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _policy(action: Any, resource: Any, effect: str = "Allow") -> str:
    statement = {"Effect": effect, "Action": action, "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_readers_follow_wildcards_attachments_and_denies(aws_config: AwsConfig) -> None:
    sm = aws_config.secretsmanager()
    iam = aws_config.client("iam")
    tag = uuid.uuid4().hex[:8]
    secret = sm.create_secret(Name=f"prod/{tag}/openai", SecretString="sk-audit-value-01")
    arn = secret["ARN"]

    reader = f"reader-{tag}"
    iam.create_role(RoleName=reader, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(
        RoleName=reader,
        PolicyName="read",
        PolicyDocument=_policy(
            "secretsmanager:Get*", f"arn:aws:secretsmanager:*:*:secret:prod/{tag}/*"
        ),
    )
    managed = f"managed-{tag}"
    iam.create_role(RoleName=managed, AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    policy = iam.create_policy(PolicyName=f"all-{tag}", PolicyDocument=_policy("*", "*"))
    iam.attach_role_policy(RoleName=managed, PolicyArn=policy["Policy"]["Arn"])
    denied = f"denied-{tag}"
    iam.create_role(RoleName=denied, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName=denied, PolicyName="all", PolicyDocument=_policy("*", "*"))
    iam.put_role_policy(
        RoleName=denied, PolicyName="deny", PolicyDocument=_policy("secretsmanager:*", arn, "Deny")
    )
    other = f"other-{tag}"
    iam.create_role(RoleName=other, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(
        RoleName=other,
        PolicyName="list",
        PolicyDocument=_policy(["secretsmanager:ListSecrets"], "*"),
    )

    audit = AwsAudit(sm, iam, aws_config.client("cloudtrail"), "production")
    grants = [g for g in audit.secret_readers(f"prod/{tag}/openai") if tag in g.via]
    by_role = {g.via.split()[2]: g for g in grants}
    assert set(by_role) == {reader, managed}
    assert by_role[reader].subject == "AWS:arn:aws:iam::123456789012:role/devops"
    assert "inline policy read" in by_role[reader].via
    assert by_role[managed].subject.endswith(f":role/{managed}")
    assert by_role[managed].resource_names == (arn,)


def test_policy_decision_rules() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:1:secret:prod/x-AbCdEf"
    assert (
        policy_decision(
            _policy("secretsmanager:getsecretvalue", arn), "secretsmanager:GetSecretValue", arn
        )
        == "Allow"
    )
    assert policy_decision(_policy("s3:*", "*"), "secretsmanager:GetSecretValue", arn) is None
    not_action = json.dumps(
        {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    )
    assert policy_decision(not_action, "secretsmanager:GetSecretValue", arn) == "Allow"
    assert (
        policy_decision(
            _policy("*", "arn:aws:secretsmanager:*:*:secret:dev/*"),
            "secretsmanager:GetSecretValue",
            arn,
        )
        is None
    )


def test_cloudtrail_reads_of_one_secret(aws_config: AwsConfig) -> None:
    from datetime import UTC, datetime, timedelta

    from sandbox.aws import CONTRACTOR_ACCESS_KEY_ID
    from sandbox.aws import client as sandbox_client

    sm = aws_config.secretsmanager()
    tag = uuid.uuid4().hex[:8]
    sm.create_secret(Name=f"prod/{tag}/openai", SecretString="sk-trail-value-01")
    sm.create_secret(Name=f"prod/{tag}/other", SecretString="sk-trail-value-02")
    since = datetime.now(UTC) - timedelta(seconds=5)
    contractor = sandbox_client(
        str(aws_config.endpoint_url), "secretsmanager", access_key_id=CONTRACTOR_ACCESS_KEY_ID
    )
    contractor.get_secret_value(SecretId=f"prod/{tag}/openai")
    contractor.get_secret_value(SecretId=f"prod/{tag}/other")

    audit = AwsAudit(sm, aws_config.client("iam"), aws_config.client("cloudtrail"))
    events = audit.secret_read_events(f"prod/{tag}/openai", since)
    assert len(events) == 1
    assert events[0].source == "cloudtrail"
    assert events[0].action == "GetSecretValue"
    assert events[0].target == f"prod/{tag}/openai"
    assert "contractor" in events[0].actor
    assert audit.secret_read_events(f"prod/{tag}/openai", datetime.now(UTC) + timedelta(1)) == []
