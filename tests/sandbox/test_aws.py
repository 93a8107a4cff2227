"""AWS behind the recording proxy: moto for Secrets Manager and IAM, CloudTrail from the proxy,
all through boto3 pointed at the proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.aws import (
    CONTRACTOR_ACCESS_KEY_ID,
    ESO_ACCESS_KEY_ID,
    AwsSandbox,
    SeedValues,
    client,
    seed,
)
from tests.sandbox.asgi_server import serve

VALUES = SeedValues(
    api_keys={"openai": "sk-svcacct-seeded-openai-value-0001",
              "anthropic": "sk-ant-api03-seeded-anthropic-value-AA"},
    db_username="intelliprompt",
    db_password="seeded-db-password-0001",
)


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[AwsSandbox, str, dict[str, str]]]:
    sandbox = AwsSandbox()
    sandbox.start()
    try:
        with serve(sandbox.app) as url:
            arns = seed(url, VALUES)
            yield sandbox, url, arns
    finally:
        sandbox.stop()


def lookup(url: str, **kwargs: Any) -> list[dict[str, Any]]:
    trail = client(url, "cloudtrail")
    events: list[dict[str, Any]] = []
    for page in trail.get_paginator("lookup_events").paginate(**kwargs):
        events += page["Events"]
    return events


def test_seeded_world(aws: tuple[AwsSandbox, str, dict[str, str]]) -> None:
    _, url, arns = aws
    secrets = client(url, "secretsmanager")
    db = json.loads(secrets.get_secret_value(SecretId="prod/intelliprompt/db")["SecretString"])
    assert db == {"username": "intelliprompt", "password": VALUES.db_password}
    openai = secrets.get_secret_value(SecretId="prod/intelliprompt/openai")
    assert openai["SecretString"] == VALUES.api_keys["openai"]
    assert "AWSCURRENT" in openai["VersionStages"]
    iam = client(url, "iam")
    role = iam.get_role(RoleName="intelliprompt-secrets-reader")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"]["Federated"] == arns["oidc_provider"]
    assert "system:serviceaccount:external-secrets:external-secrets" in json.dumps(trust)
    policy = iam.get_role_policy(
        RoleName="intelliprompt-secrets-reader", PolicyName="read-intelliprompt-secrets"
    )["PolicyDocument"]
    assert "secretsmanager:GetSecretValue" in policy["Statement"][0]["Action"]
    assert policy["Statement"][0]["Resource"].endswith(":secret:prod/intelliprompt/*")


def test_planted_and_new_reads_in_cloudtrail(aws: tuple[AwsSandbox, str, dict[str, str]]) -> None:
    sandbox, url, arns = aws
    started = datetime.now(UTC) - timedelta(seconds=1)
    eso = client(url, "secretsmanager", ESO_ACCESS_KEY_ID)
    eso.get_secret_value(SecretId="prod/intelliprompt/openai")
    events = lookup(
        url,
        LookupAttributes=[
            {"AttributeKey": "ResourceName", "AttributeValue": "prod/intelliprompt/openai"}
        ],
    )
    reads = [event for event in events if event["EventName"] == "GetSecretValue"]
    by_user = {event["Username"]: event for event in reads}
    assert {"contractor-laptop", "external-secrets"} <= set(by_user)
    planted = by_user["contractor-laptop"]
    assert planted["EventSource"] == "secretsmanager.amazonaws.com"
    assert planted["Resources"] == [
        {
            "ResourceType": "AWS::SecretsManager::Secret",
            "ResourceName": arns["prod/intelliprompt/openai"],
        }
    ]
    record = json.loads(planted["CloudTrailEvent"])
    assert record["userIdentity"] == {
        "type": "IAMUser",
        "principalId": "AIDACONTRACTOR-LAPTOP",
        "arn": f"arn:aws:iam::{sandbox.account_id}:user/contractor-laptop",
        "accountId": sandbox.account_id,
        "accessKeyId": CONTRACTOR_ACCESS_KEY_ID,
        "userName": "contractor-laptop",
    }
    assert record["userAgent"].startswith("aws-cli/2.15.30")
    assert record["sourceIPAddress"] == "127.0.0.1"
    assert record["requestParameters"] == {"secretId": "prod/intelliprompt/openai"}
    assert record["responseElements"] is None and record["readOnly"] is True
    assert record["eventCategory"] == "Management" and record["awsRegion"] == "us-east-1"
    mine = json.loads(by_user["external-secrets"]["CloudTrailEvent"])
    assert mine["userIdentity"]["type"] == "AssumedRole"
    assert mine["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] == (
        "intelliprompt-secrets-reader"
    )
    assert by_user["external-secrets"]["EventTime"] >= started
    assert reads[0]["Username"] == "external-secrets"  # newest first
    every = json.dumps([event.record for event in sandbox.trail.events()])
    for value in (VALUES.api_keys["openai"], VALUES.api_keys["anthropic"], VALUES.db_password):
        assert value not in every


def test_writes_and_lookup_filters(aws: tuple[AwsSandbox, str, dict[str, str]]) -> None:
    _, url, _ = aws
    secrets = client(url, "secretsmanager")
    put = secrets.put_secret_value(
        SecretId="prod/intelliprompt/anthropic",
        SecretString="sk-ant-api03-next-value-AA",
        VersionStages=["AWSPENDING"],
    )
    current = secrets.describe_secret(SecretId="prod/intelliprompt/anthropic")
    old = next(v for v, stages in current["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    secrets.update_secret_version_stage(
        SecretId="prod/intelliprompt/anthropic",
        VersionStage="AWSCURRENT",
        MoveToVersionId=put["VersionId"],
        RemoveFromVersionId=old,
    )
    with pytest.raises(ClientError):
        secrets.get_secret_value(SecretId="prod/intelliprompt/missing")

    names = [
        e["EventName"]
        for e in lookup(
            url, LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "secretops"}]
        )
    ]
    assert names[:4] == [
        "GetSecretValue",
        "UpdateSecretVersionStage",
        "DescribeSecret",
        "PutSecretValue",
    ]
    stage = lookup(
        url,
        LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "UpdateSecretVersionStage"}
        ],
    )[0]
    record = json.loads(stage["CloudTrailEvent"])
    assert record["readOnly"] is False
    assert record["requestParameters"] == {
        "secretId": "prod/intelliprompt/anthropic",
        "versionStage": "AWSCURRENT",
        "moveToVersionId": put["VersionId"],
        "removeFromVersionId": old,
    }
    failed = lookup(
        url,
        LookupAttributes=[
            {"AttributeKey": "ResourceName", "AttributeValue": "prod/intelliprompt/missing"}
        ],
    )
    assert json.loads(failed[0]["CloudTrailEvent"])["errorCode"] == "ResourceNotFoundException"
    assert "sk-ant-api03-next-value-AA" not in json.dumps(lookup(url), default=str)

    future = datetime.now(UTC) + timedelta(hours=1)
    assert lookup(url, StartTime=future, EndTime=future + timedelta(hours=1)) == []
    trail = client(url, "cloudtrail")
    before = [event["EventId"] for event in lookup(url)]
    first = trail.lookup_events(MaxResults=2)
    secrets.describe_secret(SecretId="prod/intelliprompt/db")  # a new event between pages
    second = trail.lookup_events(MaxResults=2, NextToken=first["NextToken"])
    paged = [event["EventId"] for event in first["Events"] + second["Events"]]
    assert paged == before[:4]
    with pytest.raises(ClientError, match="InvalidNextToken"):
        trail.lookup_events(NextToken="bm90LWEtdG9rZW4=")
    with pytest.raises(ClientError, match="InvalidLookupAttributes"):
        trail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"},
                {"AttributeKey": "Username", "AttributeValue": "secretops"},
            ]
        )


def test_two_sandboxes_in_one_process_are_apart(
    aws: tuple[AwsSandbox, str, dict[str, str]],
) -> None:
    first, first_url, _ = aws
    second = AwsSandbox()
    second.start()
    try:
        with serve(second.app) as url:
            assert second.account_id != first.account_id
            other = client(url, "secretsmanager")
            other.create_secret(Name="prod/intelliprompt/openai", SecretString="other-world-01")
            assert (
                other.get_secret_value(SecretId="prod/intelliprompt/openai")["SecretString"]
                == "other-world-01"
            )
            mine = client(first_url, "secretsmanager")
            assert (
                mine.get_secret_value(SecretId="prod/intelliprompt/openai")["SecretString"]
                == VALUES.api_keys["openai"]
            )
            assert len(second.trail) == 1
    finally:
        second.stop()


def test_an_edit_after_a_rotation_moves_awscurrent_as_aws_does(
    aws: tuple[AwsSandbox, str, dict[str, str]],
) -> None:
    """A rotation stages AWSPENDING and moves AWSCURRENT to it (UpdateSecretVersionStage);
    a later PutSecretValue without stages (an edit in the console) takes AWSCURRENT from the
    rotated version, which becomes AWSPREVIOUS: one version per label, as in AWS."""
    _, url, _ = aws
    secrets = client(url, "secretsmanager")
    name = "test/edited-after-rotation"
    first = secrets.create_secret(Name=name, SecretString="first-value-0001")["VersionId"]
    rotated = secrets.put_secret_value(SecretId=name, SecretString="rotated-value-0002",
                                       VersionStages=["AWSPENDING"])["VersionId"]
    secrets.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT",
                                        MoveToVersionId=rotated, RemoveFromVersionId=first)
    edited = secrets.put_secret_value(SecretId=name, SecretString="edited-value-0003")
    stages = secrets.describe_secret(SecretId=name)["VersionIdsToStages"]
    holders = {label: [v for v, labels in stages.items() if label in labels]
               for label in ("AWSCURRENT", "AWSPREVIOUS")}
    assert holders == {"AWSCURRENT": [edited["VersionId"]], "AWSPREVIOUS": [rotated]}
    for read in (secrets.get_secret_value(SecretId=name),
                 secrets.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")):
        assert read["SecretString"] == "edited-value-0003"
