"""Store kinds: where a secret's value is kept, registered through the ``secretops.stores``
entry point group.

A store kind is one module (``secretops/stores/dotenv.py``, ``docker_secret.py``,
``kubernetes_secret.py``, ``aws_secretsmanager.py``) whose :class:`StoreKind` says everything
the rest of secretops needs to know of it:

- ``name``: its ``type`` in a secret's ``stores:`` lists, with ``spec`` the model of one such
  entry (a :class:`StoreSpecModel` whose ``type`` field is ``Literal["<name>"]``);
- ``build``: its adapter (a :class:`~secretops.ports.SecretStore`), from its spec and a
  :class:`StoreContext`; the adapter's module is imported inside ``build``, so a run loads
  only the stores it uses;
- ``identity``: what makes two of its stores the same place (no two secrets share one);
- ``checks``: the inventory checks that only it knows (optional);
- ``local``: for a store kept in a local file, which only development has, the setting of
  the environment that locates its files (``dotenv``, ``secrets_dir``); None otherwise;
- ``resolve``: what the spec takes from its environment once the inventory's paths are
  absolute, such as the path of its file (optional).

A package adds a store kind with one module and one line of its ``pyproject.toml``::

    [project.entry-points."secretops.stores"]
    vault_kv = "mypackage.vault_kv:STORE"

The inventory's ``stores:`` model, its checks, the loader and the wiring take the store kinds
from this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Union, get_args, get_origin

from pydantic import Field, PrivateAttr

from secretops.errors import InventoryError
from secretops.schema import StrictModel

if TYPE_CHECKING:
    from secretops.adapters.kube import KubeCluster
    from secretops.inventory.model import EnvironmentSpec
    from secretops.inventory.root import Inventory
    from secretops.models import Environment
    from secretops.ports import SecretStore

GROUP = "secretops.stores"

Problem = tuple[str, str]


class StoreSpecModel(StrictModel):
    """One entry of a secret's ``stores:`` list; each kind's spec narrows ``type`` to its own
    name, which tells the kinds apart."""

    type: str


class LocalFileSpec(StoreSpecModel):
    """The spec of a store kept in a local file, whose path the loader sets (see
    :attr:`StoreKind.resolve`)."""

    _file: Path | None = PrivateAttr(default=None)

    @property
    def file(self) -> Path:
        """The absolute path of the file, set when the inventory is loaded."""
        if self._file is None:
            raise ValueError("the store's file is set when the inventory is loaded")
        return self._file

    def place(self, file: Path) -> None:
        """Set the absolute path of the file."""
        self._file = file


class StoreContext(Protocol):
    """What building a store of one environment needs (:mod:`secretops.wiring` gives it)."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def environment(self) -> Environment: ...

    def namespace(self) -> str:
        """The environment's Kubernetes namespace (InventoryError when it has none)."""
        ...

    def cluster(self) -> KubeCluster:
        """The cluster, through the inventory's context."""
        ...

    def aws_client(self, service: str) -> Any:
        """An AWS client (``secretsmanager``), kept for reuse."""
        ...


def _no_checks(inventory: Inventory, environment: Environment, spec: Any,
               path: str) -> Iterable[Problem]:
    return ()


def _nothing_to_resolve(spec: Any, environment: EnvironmentSpec) -> None:
    return None


@dataclass(frozen=True)
class StoreKind:
    """One kind of store: see the module doc."""

    name: str
    spec: type[StoreSpecModel]
    build: Callable[[Any, StoreContext], SecretStore]
    identity: Callable[[Inventory, Environment, Any], tuple[str, ...]]
    checks: Callable[[Inventory, Environment, Any, str], Iterable[Problem]] = field(
        default=_no_checks
    )
    local: str | None = None
    resolve: Callable[[Any, EnvironmentSpec], None] = field(default=_nothing_to_resolve)


def _spec_type(spec: type[StoreSpecModel]) -> str | None:
    """The one value the spec's ``type`` field allows (None when it is not one literal)."""
    annotation = spec.model_fields["type"].annotation
    values = get_args(annotation) if get_origin(annotation) is Literal else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def kinds_from(points: Iterable[EntryPoint]) -> dict[str, StoreKind]:
    """The store kinds that entry ``points`` name, by name, in name order; InventoryError
    naming the entry point that is not a store kind of its name."""
    found: dict[str, StoreKind] = {}
    for point in sorted(points, key=lambda p: p.name):
        where = f"entry point {point.name} = {point.value} of {GROUP}"
        try:
            kind = point.load()
        except (ImportError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise InventoryError(f"{where} cannot be loaded ({reason})") from None
        if not isinstance(kind, StoreKind) or kind.name != point.name:
            raise InventoryError(f"{where} is not a secretops StoreKind of type {point.name!r}")
        if not (isinstance(kind.spec, type) and issubclass(kind.spec, StoreSpecModel)
                and _spec_type(kind.spec) == point.name):
            raise InventoryError(f"{where}: its spec must be a StoreSpecModel whose field "
                                 f"type is Literal[{point.name!r}]")
        if point.name in found:
            raise InventoryError(f"{where}: store type {point.name!r} is registered twice")
        found[point.name] = kind
    if not found:
        raise InventoryError(f"no store kind is registered under the entry point group {GROUP}: "
                             "install secretops (pip install -e . in a checkout)")
    return found


@cache
def registry() -> Mapping[str, StoreKind]:
    """Every installed store kind, by name (its ``type`` in the inventory), in name order."""
    return kinds_from(entry_points(group=GROUP))


def types() -> list[str]:
    """Every store type the inventory may name."""
    return list(registry())


def kind_of(spec: StoreSpecModel) -> StoreKind:
    """The kind of store that ``spec`` describes."""
    kind = registry().get(spec.type)
    if kind is None:
        raise InventoryError(f"unknown store type {spec.type!r} "
                             f"(expected one of: {', '.join(types())})")
    return kind


def spec_union(kinds: Mapping[str, StoreKind]) -> Any:
    """The model of one entry of a ``stores:`` list: the kinds' specs, told apart by
    ``type``."""
    specs = tuple(kind.spec for kind in kinds.values())
    return Annotated[Union[specs], Field(discriminator="type")]  # noqa: UP007 - a tuple of specs
