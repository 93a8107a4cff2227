"""The CI's AWS account (sandbox/iam.py): a moto server in its own process with IAM
authentication on, so a key pair either authenticates or is refused, as in AWS; and the
world's CI credential: Secrets Manager, the Secrets, the ExternalSecret, and ci-runner
pods that check their pair at start."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from botocore.exceptions import ClientError

from sandbox import aws as main_aws
from sandbox.iam import CI_USERS, AccountState, CiAccount, KeyPair, client

CI = CI_USERS["production"]
NAMESPACES = {"production": "intelliprompt", "staging": "intelliprompt-staging"}


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountState]:
    ci = CiAccount(tmp_path_factory.mktemp("ci-account"))
    state = ci.start()
    try:
        yield state
    finally:
        ci.stop()


def refusal(call: Callable[[], Any]) -> tuple[str, int]:
    """The error code and HTTP status of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def identity(account: AccountState, key: KeyPair) -> str:
    return str(client(account.endpoint_url, "sts", key).get_caller_identity()["Arn"])


def test_ci_users_authenticate_with_their_initial_pairs(account: AccountState) -> None:
    for user, key in account.users.items():
        assert identity(account, key) == f"arn:aws:iam::{account.account_id}:user/{user}"
    assert set(account.users) == set(CI_USERS.values())


def test_rotator_rotates_the_ci_users_keys(account: AccountState) -> None:
    iam = client(account.endpoint_url, "iam", account.rotator)
    user = CI_USERS["staging"]
    initial = account.users[user]
    listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [initial.access_key_id]
    made = iam.create_access_key(UserName=user)["AccessKey"]
    new = KeyPair(made["AccessKeyId"], made["SecretAccessKey"])
    iam.tag_user(UserName=user, Tags=[{"Key": "secretops:pending", "Value": new.access_key_id}])
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}
    assert tags["secretops:pending"] == new.access_key_id
    iam.untag_user(UserName=user, TagKeys=["secretops:pending"])
    assert identity(account, new).endswith(f":user/{user}")
    used = iam.get_access_key_last_used(AccessKeyId=new.access_key_id)
    assert used["UserName"] == user and "LastUsedDate" in used["AccessKeyLastUsed"]
    assert iam.get_user(UserName=user)["User"]["UserName"] == user

    # the old pair: refused once inactive (as in AWS), accepted again once reactivated
    iam.update_access_key(UserName=user, AccessKeyId=initial.access_key_id, Status="Inactive")
    assert refusal(lambda: identity(account, initial)) == ("InvalidClientTokenId", 403)
    statuses = {k["AccessKeyId"]: k["Status"]
                for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert statuses == {initial.access_key_id: "Inactive", new.access_key_id: "Active"}
    iam.update_access_key(UserName=user, AccessKeyId=initial.access_key_id, Status="Active")
    assert identity(account, initial).endswith(f":user/{user}")

    # the new pair, deactivated then deleted: refused either way
    iam.update_access_key(UserName=user, AccessKeyId=new.access_key_id, Status="Inactive")
    assert refusal(lambda: identity(account, new)) == ("InvalidClientTokenId", 403)
    iam.delete_access_key(UserName=user, AccessKeyId=new.access_key_id)
    assert refusal(lambda: identity(account, new)) == ("InvalidClientTokenId", 403)
    listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [initial.access_key_id]


def test_an_inactive_key_cannot_call_anything(account: AccountState) -> None:
    """moto lets an inactive key through (sandbox/iam.py mends it): not on STS, not on IAM."""
    iam = client(account.endpoint_url, "iam", account.rotator)
    made = iam.create_access_key(UserName=CI)["AccessKey"]
    key = KeyPair(made["AccessKeyId"], made["SecretAccessKey"])
    try:
        iam.update_access_key(UserName=CI, AccessKeyId=key.access_key_id, Status="Inactive")
        as_ci = client(account.endpoint_url, "iam", key)
        assert refusal(lambda: as_ci.list_access_keys(UserName=CI)) == (
            "InvalidClientTokenId", 403)
        assert refusal(lambda: identity(account, key)) == ("InvalidClientTokenId", 403)
    finally:
        iam.delete_access_key(UserName=CI, AccessKeyId=key.access_key_id)


def test_rotator_may_touch_only_the_ci_users(account: AccountState) -> None:
    iam = client(account.endpoint_url, "iam", account.rotator)
    for call in (lambda: iam.list_access_keys(UserName="secretops-rotator"),
                 lambda: iam.create_access_key(UserName="secretops-rotator"),
                 lambda: iam.list_access_keys(),  # its own keys: not on intelliprompt-ci*
                 lambda: iam.create_user(UserName="intelliprompt-ci-extra"),
                 lambda: iam.list_users()):
        assert refusal(call) == ("AccessDenied", 403)
    # a CI user's key may do nothing in IAM (only authenticate)
    as_ci = client(account.endpoint_url, "iam", account.users[CI])
    assert refusal(lambda: as_ci.list_access_keys(UserName=CI)) == ("AccessDenied", 403)


def test_bad_signatures_and_unknown_keys_are_refused(account: AccountState) -> None:
    key = account.users[CI]
    wrong = KeyPair(key.access_key_id, key.secret_access_key[:-1] + "x")
    assert refusal(lambda: identity(account, wrong)) == ("SignatureDoesNotMatch", 403)
    unknown = KeyPair("AKIAUNKNOWNSANDBOX00", key.secret_access_key)
    assert refusal(lambda: identity(account, unknown)) == ("InvalidClientTokenId", 403)


def test_state_file_and_process(tmp_path: Path) -> None:
    ci = CiAccount(tmp_path)
    state = ci.start()
    pid = ci.pid
    assert pid is not None and state.pid == pid
    assert ci.state_file.stat().st_mode & 0o777 == 0o600
    written = json.loads(ci.state_file.read_text())
    assert written["rotator"]["access_key_id"] == state.rotator.access_key_id
    cmdline = psutil.Process(pid).cmdline()
    assert "sandbox.iam" in cmdline and str(tmp_path) in cmdline  # how `down` finds it
    ci.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not ci.state_file.exists()


# --- the world -----------------------------------------------------------------------------

def _json(kubectl: Any, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def _secret(kubectl: Any, namespace: str, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    obj = _json(kubectl, "get", "secret", name, "-n", namespace)
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}, obj


@pytest.mark.usefixtures("ci_key_alone")
def test_world_ci_runner_is_ready_with_a_working_key(sandbox: dict[str, Any],
                                                     kubectl: Any) -> None:
    """The runner is ready on a pair its user's (the initial one, or a rotated one: the flows'
    tests rotate it in this world)."""
    iam = sandbox["iam"]
    for environment, namespace in NAMESPACES.items():
        pods = _json(kubectl, "get", "pods", "-n", namespace, "-l", "app=ci-runner")["items"]
        ready = [p for p in pods if {c["type"]: c["status"] for c in
                                     p["status"].get("conditions", [])}.get("Ready") == "True"]
        assert len(ready) == 1
        log = kubectl("logs", ready[0]["metadata"]["name"], "-n", namespace).stdout
        assert log.splitlines() == ["Starting CI runner", "AWS credentials ok", "CI runner ready"]
        values, _ = _secret(kubectl, namespace, "ci-aws-key")
        assert set(values) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert values["AWS_SECRET_ACCESS_KEY"] not in log
        user = iam["users"][environment]
        key = KeyPair(values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"])
        sts = client(iam["endpoint_url"], "sts", key)
        assert sts.get_caller_identity()["Arn"] == user["arn"]
        env = {e["name"]: e for e in _json(kubectl, "get", "deployment", "ci-runner", "-n",
                                            namespace)["spec"]["template"]["spec"]
               ["containers"][0]["env"]}
        assert env["AWS_ENDPOINT_URL"]["value"] == iam["endpoint_url"]
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "ci-aws-key", "key": "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.usefixtures("ci_key_alone")
def test_world_stores_hold_the_ci_users_keys(sandbox: dict[str, Any], kubectl: Any) -> None:
    iam = sandbox["iam"]
    secretsmanager = main_aws.client(sandbox["aws"]["endpoint_url"], "secretsmanager")
    for environment, prefix in (("production", "prod"), ("staging", "staging")):
        stored = json.loads(secretsmanager.get_secret_value(
            SecretId=f"{prefix}/intelliprompt/ci-aws-key")["SecretString"])
        assert set(stored) == {"access_key_id", "secret_access_key"}
        sts = client(iam["endpoint_url"], "sts", KeyPair(stored["access_key_id"],
                                                         stored["secret_access_key"]))
        assert sts.get_caller_identity()["Arn"] == iam["users"][environment]["arn"]
        values, _ = _secret(kubectl, NAMESPACES[environment], "ci-aws-key")
        assert values["AWS_SECRET_ACCESS_KEY"] == stored["secret_access_key"]
        assert values["AWS_ACCESS_KEY_ID"] == stored["access_key_id"]
    es = _json(kubectl, "get", "externalsecret", "intelliprompt-ci", "-n", "intelliprompt")
    assert es["spec"]["target"]["name"] == "ci-aws-key"
    assert {d["remoteRef"]["property"] for d in es["spec"]["data"]} == {
        "access_key_id", "secret_access_key"}
    _, obj = _secret(kubectl, "intelliprompt", "ci-aws-key")
    owners = obj["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"]) for o in owners] == [("ExternalSecret", "intelliprompt-ci")]
    assert kubectl("get", "externalsecret", "intelliprompt-ci", "-n",
                   "intelliprompt-staging", check=False).returncode != 0


def test_world_rotator_credentials_and_inventory(sandbox: dict[str, Any]) -> None:
    folder = Path(sandbox["dir"])
    rotator = KeyPair((folder / "credentials/iam-rotator-access-key-id").read_text(),
                      (folder / "credentials/iam-rotator-secret-access-key").read_text())
    iam = client(sandbox["iam"]["endpoint_url"], "iam", rotator)
    for user in CI_USERS.values():
        assert len(iam.list_access_keys(UserName=user)["AccessKeyMetadata"]) == 1
    inventory = yaml.safe_load(Path(sandbox["inventory"]).read_text())
    provider = inventory["providers"]["aws_iam"]
    assert provider["endpoint_url"] == sandbox["iam"]["endpoint_url"]
    assert provider["users"] == {"staging": CI_USERS["staging"],
                                 "production": CI_USERS["production"]}
    assert [s["id"] for s in inventory["secrets"]][-1] == "ci-aws-key"
    assert sandbox["pids"]["iam"] in {c.pid for c in psutil.Process(
        sandbox["pids"]["supervisor"]).children()}


def _apply(kubectl_bin: str, sandbox: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    subprocess.run([kubectl_bin, "--kubeconfig", sandbox["kubeconfig"], "apply", "-f", "-"],
                   input=yaml.safe_dump_all(objects), text=True, check=True,
                   capture_output=True, timeout=60)


def _probe_pod(kubectl: Any, namespace: str, name: str, line: str,
               older: str = "") -> tuple[dict[str, Any], str]:
    """A pod of the probe Deployment other than ``older``, once its log has ``line``."""
    deadline = time.monotonic() + 30
    while True:
        pods = _json(kubectl, "get", "pods", "-n", namespace, "-l", f"app={name}")["items"]
        for pod in pods:
            if pod["metadata"]["name"] == older:
                continue
            log = kubectl("logs", pod["metadata"]["name"], "-n", namespace,
                          check=False).stdout
            if line in log:
                return pod, log
        assert time.monotonic() < deadline, f"no {name} pod logged {line!r}"
        time.sleep(0.2)


@pytest.mark.usefixtures("ci_key_alone")
def test_world_ci_runner_refuses_a_deactivated_key(sandbox: dict[str, Any], kubectl: Any,
                                                   kubectl_bin: str) -> None:
    """A pair the rotator deactivated is fatal to a ci-runner pod that starts with it (a
    probe Deployment beside the world's, removed afterwards)."""
    from sandbox import ci as ci_world

    namespace, user, probe = NAMESPACES["staging"], CI_USERS["staging"], "ci-runner-probe"
    folder = Path(sandbox["dir"])
    rotator = KeyPair((folder / "credentials/iam-rotator-access-key-id").read_text(),
                      (folder / "credentials/iam-rotator-secret-access-key").read_text())
    iam = client(sandbox["iam"]["endpoint_url"], "iam", rotator)
    made = iam.create_access_key(UserName=user)["AccessKey"]
    secret = ci_world.aws_key_secret(namespace, made["AccessKeyId"], made["SecretAccessKey"])
    secret["metadata"]["name"] = probe
    deployment = ci_world.runner_deployment(
        namespace, endpoint_url=sandbox["iam"]["endpoint_url"], region="us-east-1")
    deployment["metadata"]["name"] = probe
    deployment["spec"]["selector"]["matchLabels"] = {"app": probe}
    deployment["spec"]["template"]["metadata"]["labels"] = {"app": probe}
    for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "valueFrom" in var:
            var["valueFrom"]["secretKeyRef"]["name"] = probe
    try:
        _apply(kubectl_bin, sandbox, [secret, deployment])
        pod, _ = _probe_pod(kubectl, namespace, probe, "CI runner ready")
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
        iam.update_access_key(UserName=user, AccessKeyId=made["AccessKeyId"], Status="Inactive")
        kubectl("rollout", "restart", f"deployment/{probe}", "-n", namespace)
        pod, log = _probe_pod(kubectl, namespace, probe, "FATAL", older=pod["metadata"]["name"])
        assert "FATAL: AWS access key refused (403 InvalidClientTokenId)" in log
        assert "CI runner ready" not in log and made["SecretAccessKey"] not in log
        time.sleep(1)
        pod = _json(kubectl, "get", "pod", pod["metadata"]["name"], "-n", namespace)
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    finally:
        kubectl("delete", "deployment", probe, "-n", namespace, check=False)
        kubectl("delete", "secret", probe, "-n", namespace, check=False)
        iam.delete_access_key(UserName=user, AccessKeyId=made["AccessKeyId"])
