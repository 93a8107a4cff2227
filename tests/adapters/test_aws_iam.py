"""The AWS IAM provider on botocore against a CI account of its own (moto with IAM
authentication on, in its own process): keys created under the quota of two, named in user
tags, deactivated then refused, deleted; pairs checked by signing sts:GetCallerIdentity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.iam import AccountState, CiAccount
from secretops.adapters.aws_iam import AwsIamProvider
from secretops.adapters.providers import ProviderRefused
from secretops.models import Credential, KeyCheck, SecretValue

USER = "intelliprompt-ci-staging"


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountState]:
    ci = CiAccount(Path(tmp_path_factory.mktemp("ci-account")))
    try:
        yield ci.start()
    finally:
        ci.stop()


@pytest.fixture()
def provider(account: AccountState) -> Iterator[AwsIamProvider]:
    rotator = account.rotator
    with_keys = AwsIamProvider({"staging": USER}, "us-east-1", account.endpoint_url,
                               SecretValue(rotator.access_key_id),
                               SecretValue(rotator.secret_access_key))
    yield with_keys
    for key in with_keys.list_keys():  # leave the user its initial key only
        if key.id != account.users[USER].access_key_id:
            with_keys.revoke_key(key.id, final=True)
    with_keys.close()


def pair(account: AccountState, user: str) -> Credential:
    key = account.users[user]
    return Credential(SecretValue(key.secret_access_key), username=key.access_key_id)


def test_a_new_key_is_named_and_works_then_is_deactivated_refused_and_deleted(
        account: AccountState, provider: AwsIamProvider) -> None:
    assert provider.check_key(pair(account, USER)) is KeyCheck.WORKS
    new = provider.create_key("secretops-intelliprompt-staging-ci-aws-key-x", "staging")
    assert new.username == new.key.id and new.key.id.startswith("AKIA")
    listed = {key.id: key for key in provider.list_keys()}
    assert listed[new.key.id].name == "secretops-intelliprompt-staging-ci-aws-key-x"
    assert listed[account.users[USER].access_key_id].name == ""  # made by hand: no name
    credential = new.credential()
    assert provider.check_key(credential) is KeyCheck.WORKS
    assert provider.find_key(credential) is not None

    assert provider.revoke_key(new.key.id) is True
    assert provider.get_key(new.key.id) is not None
    assert provider.get_key(new.key.id).status == "inactive"  # type: ignore[union-attr]
    assert provider.check_key(credential) is KeyCheck.REFUSED  # AWS refuses inactive keys
    assert provider.revoke_key(new.key.id) is False

    assert provider.revoke_key(new.key.id, final=True) is True
    assert provider.get_key(new.key.id) is None
    assert provider.check_key(credential) is KeyCheck.REFUSED
    assert new.key.id not in {key.id for key in provider.list_keys()}


def test_the_quota_deletes_an_inactive_key_and_refuses_two_active(
        account: AccountState, provider: AwsIamProvider) -> None:
    assert provider.max_keys == 2
    spare = provider.create_key("spare", "staging")
    provider.revoke_key(spare.key.id)
    made = provider.create_key("next", "staging")  # room made: the inactive spare deleted
    ids = {key.id for key in provider.list_keys()}
    assert ids == {account.users[USER].access_key_id, made.key.id}
    with pytest.raises(ProviderRefused, match="already has 2 active access keys"):
        provider.create_key("one too many", "staging")


def test_a_wrong_secret_or_a_bare_value_is_not_a_working_pair(
        account: AccountState, provider: AwsIamProvider) -> None:
    good = pair(account, USER)
    wrong = Credential(SecretValue("x" * 40), username=good.username)
    assert provider.check_key(wrong) is KeyCheck.REFUSED
    with pytest.raises(ProviderRefused, match="access key id"):
        provider.check_key(good.secret)
    with pytest.raises(ProviderRefused, match="no IAM user for environment 'production'"):
        provider.create_key("elsewhere", "production")


def test_the_rotator_may_touch_only_the_ci_users(account: AccountState) -> None:
    """The rotator's policy names the CI users: another user's keys are refused to it."""
    rotator = account.rotator
    elsewhere = AwsIamProvider({"staging": "secretops-rotator"}, "us-east-1",
                               account.endpoint_url, SecretValue(rotator.access_key_id),
                               SecretValue(rotator.secret_access_key))
    with pytest.raises(ProviderRefused, match="AccessDenied"):
        elsewhere.list_keys()
    elsewhere.close()
