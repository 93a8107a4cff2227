"""Store kinds register through the ``secretops.stores`` entry point group: the registry lists
the installed kinds, refuses an entry point that is not a store kind, and the inventory's
``stores:`` entries are validated against the installed kinds, with one clear line for an
unknown type."""

from __future__ import annotations

import copy
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import TypeAdapter

from secretops.errors import InventoryError
from secretops.inventory import (
    AwsSecretStoreSpec,
    DockerSecretStoreSpec,
    DotenvStoreSpec,
    Inventory,
    KubernetesSecretStoreSpec,
    StoreSpec,
    parse_inventory,
)
from secretops.models import Environment, SecretValue, Stage
from secretops.ports import SecretStore
from secretops.stores import (
    GROUP,
    StoreContext,
    StoreKind,
    StoreSpecModel,
    kind_of,
    kinds_from,
    registry,
    spec_union,
)
from secretops.wiring import Wiring

VALID = Path(__file__).parent.parent / "inventories" / "valid.yaml"
BUILT_IN = ["aws_secretsmanager", "docker_secret", "dotenv", "kubernetes_secret"]


class VaultSpec(StoreSpecModel):
    type: Literal["vault"]
    path: str


class UntypedSpec(StoreSpecModel):
    path: str


def _build(spec: Any, context: StoreContext) -> SecretStore:
    raise NotImplementedError


def _identity(inventory: Inventory, environment: Environment, spec: Any) -> tuple[str, ...]:
    return (spec.path,)


VAULT = StoreKind(name="vault", spec=VaultSpec, build=_build, identity=_identity)
UNTYPED = StoreKind(name="untyped", spec=UntypedSpec, build=_build, identity=_identity)
NOT_A_KIND = object()


def _point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def _valid() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(VALID.read_text())
    return data


def _refusal(data: dict[str, Any]) -> list[str]:
    path = Path("inventory.yaml")
    with pytest.raises(InventoryError) as caught:
        parse_inventory(data, path)
    return [line.removeprefix(f"{path}: ") for line in str(caught.value).splitlines()]


def test_the_registry_lists_the_built_in_kinds_from_the_entry_points() -> None:
    assert sorted(p.name for p in entry_points(group=GROUP)) == BUILT_IN
    kinds = registry()
    assert list(kinds) == BUILT_IN
    assert {name: kind.spec for name, kind in kinds.items()} == {
        "aws_secretsmanager": AwsSecretStoreSpec,
        "docker_secret": DockerSecretStoreSpec,
        "dotenv": DotenvStoreSpec,
        "kubernetes_secret": KubernetesSecretStoreSpec,
    }
    assert [name for name, kind in kinds.items() if kind.local] == ["docker_secret", "dotenv"]


@pytest.mark.parametrize("first", ["secretops.stores.dotenv", "secretops.stores.fields",
                                   "secretops.names", "secretops.inventory.checks",
                                   "secretops.inventory"])
def test_any_module_may_be_imported_first(first: str) -> None:
    # the inventory's model is built from the kinds, whose modules may be loaded first
    code = (f"import {first}\n"
            "from secretops.inventory import load_inventory\n"
            f"print(load_inventory({str(VALID)!r}).stores('openai', 'staging')[0].type)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "kubernetes_secret\n"), result.stderr


def test_a_package_kind_joins_the_built_in_ones() -> None:
    points = [*entry_points(group=GROUP), _point("vault", f"{__name__}:VAULT")]
    kinds = kinds_from(points)
    assert list(kinds) == sorted([*BUILT_IN, "vault"])
    spec = TypeAdapter(spec_union(kinds)).validate_python({"type": "vault", "path": "kv/app"})
    assert isinstance(spec, VaultSpec) and spec.path == "kv/app"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"{__name__}:NOT_A_KIND", "is not a secretops StoreKind of type 'vault'"),
        ("secretops.stores.dotenv:STORE", "is not a secretops StoreKind of type 'vault'"),
        ("tests.stores.no_such_module:STORE", r"cannot be loaded \(ModuleNotFoundError: "),
        (f"{__name__}:NO_SUCH_NAME", r"cannot be loaded \(AttributeError: "),
    ],
    ids=["not-a-kind", "another-name", "no-module", "no-attribute"],
)
def test_a_wrong_entry_point_is_refused_naming_it(value: str, message: str) -> None:
    with pytest.raises(InventoryError, match=f"^entry point vault = {value} of {GROUP} {message}"):
        kinds_from([_point("vault", value)])


def test_a_kind_whose_spec_has_no_type_literal_is_refused() -> None:
    with pytest.raises(InventoryError, match=r"its spec must be a StoreSpecModel whose field "
                                             r"type is Literal\['untyped'\]"):
        kinds_from([_point("untyped", f"{__name__}:UNTYPED")])


def test_no_registered_kind_is_refused() -> None:
    with pytest.raises(InventoryError, match=f"no store kind is registered under the entry "
                                             f"point group {GROUP}"):
        kinds_from([])


@pytest.mark.parametrize(
    ("entry", "spec_class"),
    [
        ({"type": "dotenv", "key": "OPENAI_API_KEY", "url_keys": ["DATABASE_URL"]},
         DotenvStoreSpec),
        ({"type": "docker_secret", "path": "db_password.txt"}, DockerSecretStoreSpec),
        ({"type": "kubernetes_secret", "name": "api-keys", "key": "openai"},
         KubernetesSecretStoreSpec),
        ({"type": "aws_secretsmanager", "secret_id": "prod/openai", "json_key": "key"},
         AwsSecretStoreSpec),
    ],
    ids=lambda value: value["type"] if isinstance(value, dict) else "",
)
def test_the_inventory_accepts_each_kind(entry: dict[str, Any], spec_class: type) -> None:
    spec = TypeAdapter(StoreSpec).validate_python(entry)
    assert type(spec) is spec_class
    assert kind_of(spec).name == entry["type"]
    assert spec.model_dump(exclude_defaults=True) == entry


def test_an_unknown_store_type_is_one_line_naming_the_known_types() -> None:
    data = _valid()
    data["secrets"][0]["stores"]["staging"] = [{"type": "vault", "path": "kv/openai"}]
    assert _refusal(data) == [
        "secrets[0].stores.staging[0]: unknown store type 'vault' (expected one of: "
        "aws_secretsmanager, docker_secret, dotenv, kubernetes_secret)",
    ]


def test_a_store_without_type_is_one_line_naming_the_known_types() -> None:
    data = _valid()
    data["secrets"][0]["stores"]["staging"] = [{"name": "api-keys", "key": "openai"}]
    assert _refusal(data) == [
        "secrets[0].stores.staging[0]: missing 'type' (expected one of: "
        "aws_secretsmanager, docker_secret, dotenv, kubernetes_secret)",
    ]


def test_a_bad_field_of_a_kind_names_the_field_without_the_type() -> None:
    data = _valid()
    data["secrets"][0]["stores"]["production"][0]["secret_id"] = "prod openai"
    (line,) = _refusal(data)
    assert line.startswith("secrets[0].stores.production[0].secret_id: 'prod openai' is not "
                           "valid")


def test_two_secrets_in_one_store_of_a_kind_are_refused() -> None:
    data = _valid()
    shared = copy.deepcopy(data["secrets"][0]["stores"]["staging"])
    data["secrets"][1]["stores"]["staging"] = shared
    assert _refusal(data) == [
        "secrets[1].stores.staging[0]: this store already holds secret 'openai' (secrets[0])",
    ]


def test_the_wiring_builds_each_local_kind_on_its_resolved_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / ".env").write_text("DB_PASSWORD=from-the-dotenv-file\n"
                                   "DATABASE_URL=postgresql://app:old@localhost/app\n")
    (tmp_path / "secrets" / "db_password.txt").write_text("from-the-docker-secret\n")
    inventory = parse_inventory(_valid(), tmp_path / "inventory.yaml")
    with Wiring(inventory) as wiring:
        dotenv, docker = wiring.stores("db-password", "development")
    values = [store.read(Stage.current) for store in (dotenv, docker)]
    assert [v.secret for v in values if v is not None] == [
        SecretValue("from-the-dotenv-file"), SecretValue("from-the-docker-secret")]
