"""The bad-input corpus (``corpus.yaml``): flow parameters, inventories, credentials,
provider answers and Secret contents that are wrong. Each case must fail with a clear error
(the expected pattern, in the exception's type and message) and leave the world as it was:
every store's versions, every provider key, every Deployment's pods.

Every case must leave the world as it found it, so one snapshot taken before the corpus is
the "before" of every case; the session's scan of all of Prefect at its end (the ``world``
fixture's) looks for every value any store held or any case planted. A bad inventory fails in
``load_inventory`` before a flow does anything, and a parameter of the wrong type fails in
Prefect's own validation of the flow's parameters: those cases call that function directly
instead of starting a flow run each (the ``parameters`` cases that reach the flow body, and
an inventory path that does not exist, still run the flow)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.exceptions import ParameterTypeError

from flows.rotate_all import rotate_all
from flows.rotate_api_key import rotate_api_key
from flows.rotate_db_password import rotate_db_password
from secretops.inventory import load_inventory
from secretops.models import Credential, SecretValue, Stage
from tests.flows.api_key_world import faults
from tests.flows.conftest import World

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CORPUS = yaml.safe_load((HERE / "corpus.yaml").read_text())
FLOWS: dict[str, Any] = {"rotate_api_key": rotate_api_key,
                         "rotate_db_password": rotate_db_password, "rotate_all": rotate_all}
CASES = [pytest.param(category, case, id=case["id"])
         for category, cases in CORPUS.items() for case in cases]


def snapshot(world: World) -> dict[str, Any]:
    """What no failed run may change."""
    stores = {store.name: [(v.stage.value, v.fingerprint, v.username) if v else None
                           for v in (store.version(stage) for stage in Stage)]
              for sid in world.inventory.secret_ids()
              for env in world.inventory.environments_of(sid)
              for store in world.wiring.stores(sid, env)}
    keys = {name: sorted((k.id, k.status) for k in world.wiring.provider(name).list_keys())
            for name in ("openai", "anthropic")}
    cluster = world.wiring.cluster()
    restarts = {}
    for env in ("staging", "production"):
        namespace = world.inventory.namespace(env)
        assert namespace is not None
        pods = cluster.pods_started_since(namespace, "backend", since=_epoch())
        restarts[env] = sorted(p.pod for p in pods)
    return {"stores": stores, "keys": keys, "pods": restarts}


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def _inventory_with_credential(world: World, case: dict[str, Any]) -> str:
    """The sandbox inventory with one credential read from a file holding ``content``."""
    directory = Path(world.info["dir"])
    secret_file = directory / f"badinput-{case['id']}.credential"
    secret_file.write_text(case["content"])
    secret_file.chmod(0o600)
    data = yaml.safe_load(Path(world.path).read_text())
    data["credentials"][case["credential"]] = {"file": secret_file.name}
    path = directory / f"badinput-{case['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _revoked_key(world: World) -> SecretValue:
    """An OpenAI key minted through the admin API and deleted at once."""
    provider = world.wiring.provider("openai")
    new = provider.create_key("badinput-revoked")
    provider.revoke_key(new.key.id)
    return new.value


def _expected_inventory_line(file: Path) -> str:
    first = file.read_text().splitlines()[0]
    return first.removeprefix("# expect: ")


@pytest.fixture(scope="module")
def before(world: World) -> dict[str, Any]:
    """The world before the corpus: every case must leave it so."""
    return snapshot(world)


def _fails_before_any_run(category: str, case: dict[str, Any], flow: Any,
                          params: dict[str, Any]) -> BaseException | None:
    """The error of a case that fails before a flow run could change anything (a bad
    inventory file, a parameter of the wrong type), found without starting a run; None for
    a case that needs the run."""
    if category == "inventories":
        with pytest.raises(Exception) as failure:
            load_inventory(params["inventory"])
        return failure.value
    if str(case.get("expect", "")).startswith("ParameterTypeError"):
        with pytest.raises(ParameterTypeError) as failure:
            flow.validate_parameters(params)
        return failure.value
    return None


@pytest.mark.parametrize(("category", "case"), CASES)
def test_bad_input_fails_clearly_and_changes_nothing(world: World, before: dict[str, Any],
                                                     category: str,
                                                     case: dict[str, Any]) -> None:
    params = dict(case.get("params") or {})
    flow = FLOWS[case.get("flow", "rotate_api_key")]
    expect = case.get("expect")
    if category == "inventories":
        file = ROOT / case["file"]
        params = {"secret": "openai", "environment": "staging", "inventory": str(file)}
        expect = re.escape(_expected_inventory_line(file))
    elif category == "credentials":
        params["inventory"] = _inventory_with_credential(world, case)
    params.setdefault("inventory", world.path)
    error = _fails_before_any_run(category, case, flow, params)
    if error is not None:
        said = f"{type(error).__name__}: {error}"
        assert re.search(expect, said, re.DOTALL), said
        return
    if category == "secret_contents":
        value = (_revoked_key(world) if case["pending"] == "revoked-openai-key"
                 else SecretValue(case["pending"]))
        world.seen.append(value)
        secret = params["secret"]
        for store in world.wiring.stores(secret, params["environment"]):
            store.stage_pending(Credential(value))
    knobs = ({case["fault"]: {"error_rate": 1.0, "codes": [case["code"]]}}
             if category == "provider_answers" else {})
    with faults(world, **knobs), pytest.raises(Exception) as failure:
        asyncio.run(flow(**params))
    said = f"{type(failure.value).__name__}: {failure.value}"
    assert re.search(expect, said, re.DOTALL), said
    assert len(said) < 4000 and "Traceback" not in str(failure.value)
    assert not case.get("content") or case["content"] not in said
    after = snapshot(world)
    if case.get("rollback_restarts"):  # a rollback restarts the pods: same credentials
        before["pods"] = after["pods"]
    assert after == before
