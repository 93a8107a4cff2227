"""The sandbox's provider emulators, registered through the ``secretops.sandbox.emulators``
entry point group: the sandbox's side of "a new provider is one module plus its emulator and
its entry points".

An emulator is one module (``sandbox/emulators/openai.py``, ``anthropic.py``, ``aws_iam.py``)
whose :class:`Emulator` bundles all that the sandbox's world needs of one provider's outside
world. Its ``name`` is the provider's, as in the ``secretops.providers`` registry:

- ``start``: its part of a world being built (a :class:`Running`, given the world as a
  :class:`Host`): its processes and HTTP apps, the first keys it seeds into the stores, the
  ``providers.<name>`` section, credentials, secrets and consumers it adds to the sandbox's
  inventory (:class:`InventoryPart`), what it adds to ``sandbox.json``, the Kubernetes
  objects of its own consumer, how it revokes a leaked key, and how it stops;
- ``check``: how a pod's start-up check (and the Service's per-request check) asks it
  whether a key, or key pair, works (:class:`KeyCheck`); ``endpoint`` says where to ask,
  from ``sandbox.json``, so that anyone outside the world can ask the same;
- ``backend`` or ``application``: the consumer of its keys: IntelliPrompt's backend (the key
  in Secret ``api-keys``, the variables of the backend's pods: :class:`BackendKey`) or an
  application of its own (:class:`Application`: its Deployment, its log lines);
- ``fault_knobs`` (the knobs of :mod:`sandbox.faults` its apps serve behind),
  ``processes`` (the ``python -m`` modules of its own processes, which ``sandbox down``
  ends), ``describe`` (its lines of ``sandbox status``) and ``rank`` (where it comes among
  the emulators: in the pods' checks, the inventory, ``sandbox.json``; lower first).

A package adds one with one module and one line of the sandbox's ``pyproject.toml``::

    [project.entry-points."secretops.sandbox.emulators"]
    vault_token = "mypackage.vault_emulator:EMULATOR"

Where the entry points are read from: the installed metadata
(``importlib.metadata.entry_points(group="secretops.sandbox.emulators")``: an installed
``secretops-sandbox``, or the root's editable install, whose build backend copies the
sandbox's entry points); when that group is empty, the
``[project.entry-points."secretops.sandbox.emulators"]`` table of the ``pyproject.toml`` next
to this package (a checkout run straight from its source tree, or one whose editable metadata
predates the group).

This module imports none of the emulators: :func:`registry` loads them when first asked.
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from secretops.errors import SecretopsError

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp

    from sandbox.faults import Faults

GROUP = "secretops.sandbox.emulators"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
Obj = dict[str, Any]
Env = Mapping[str, str]


class EmulatorError(SecretopsError):
    """An entry point of the group that is not a sandbox emulator, or none at all."""


@dataclass(frozen=True)
class Check:
    """The outcome of one check. ``transient`` failures are worth a retry; ``reason`` is
    for the pod's log and never holds a credential."""

    ok: bool
    reason: str = ""
    transient: bool = False


@dataclass(frozen=True)
class Probe:
    """Where to ask and which key: what a pod's environment (or anyone holding
    ``sandbox.json``) gives a key check. ``key_id`` is a key's public part (an AWS access
    key id)."""

    endpoint: str
    value: str = field(repr=False)
    key_id: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class KeyCheck:
    """How a pod asks the emulator whether its key works.

    ``holds``: whether a pod with this environment holds a key of the provider (its
    application then runs this check); ``probe``: the endpoint and key from that
    environment, None when a variable it needs is missing (the check is skipped);
    ``ask``: the check itself; ``label``: the log says ``<label> ok`` when it passes."""

    label: str
    holds: Callable[[Env], bool]
    probe: Callable[[Env], Probe | None]
    ask: Callable[[httpx.AsyncClient, Probe], Awaitable[Check]]


@dataclass(frozen=True)
class BackendKey:
    """A key IntelliPrompt's backend holds: in Secret ``api-keys`` (and the production
    secret ``prod/intelliprompt/<name>``, and the development ``.env``) under the emulator's
    name, in the backend pods' ``variable``, with the emulator's base URL in
    ``url_variable``."""

    variable: str
    url_variable: str

    def holds(self, env: Env) -> bool:
        """Whether a pod with this environment holds the key (:attr:`KeyCheck.holds`)."""
        return self.variable in env

    def probe(self, env: Env) -> Probe | None:
        """The base URL and key from a pod's environment (:attr:`KeyCheck.probe`)."""
        if self.variable not in env or self.url_variable not in env:
            return None
        return Probe(env[self.url_variable], env[self.variable])


def provider_endpoint(name: str) -> Callable[[Mapping[str, Any]], str]:
    """``Emulator.endpoint`` for an emulator whose URL ``sandbox.json`` keeps under
    ``providers.<name>``."""
    return lambda info: str(info["providers"][name])


@dataclass(frozen=True)
class Application:
    """An application of its own that holds the emulator's keys: Deployment ``deployment``
    (the world waits for it to roll out), whose pods log ``starting``, then ``<label> ok``
    and ``ready`` once their key works."""

    deployment: str
    starting: str
    ready: str


@dataclass(frozen=True)
class InventoryPart:
    """What one emulator adds to the sandbox's inventory: its ``providers.<name>`` section
    (``settings``), its credentials (name to file under the sandbox folder), its secrets,
    and the consumers and production ExternalSecrets of its own application (the backend's
    are the world's)."""

    settings: dict[str, Any]
    credentials: dict[str, str] = field(default_factory=dict)
    secrets: list[Obj] = field(default_factory=list)
    consumers: dict[str, Obj] = field(default_factory=dict)
    external_secrets: dict[str, Obj] = field(default_factory=dict)


class Host(Protocol):
    """What the world being built offers an emulator."""

    dir: Path
    faults: Faults
    urls: dict[str, str]

    async def serve(self, name: str, app: ASGIApp, knob: str | None = None) -> str:
        """Serve ``app`` on loopback (behind the fault knobs ``knob``); its URL, also kept
        in ``urls[name]``."""
        ...


class Running:
    """One emulator's part of a world being built. The world calls, in this order:
    :meth:`launch` (first of all), :meth:`serve`, :meth:`ready` (awaited once every
    emulator serves), :meth:`first_keys` and :meth:`seed`, :meth:`cluster_objects`, then
    :meth:`credentials`, :meth:`inventory` and :meth:`info` for the files, and :meth:`stop`
    last. Every method but :meth:`inventory` has a default that does nothing."""

    def launch(self) -> None:
        """Start its own processes, without waiting for them."""

    async def serve(self) -> None:
        """Serve its HTTP apps on the host."""

    async def ready(self) -> str | None:
        """Wait for what :meth:`launch` started; the start-up phase to print, if any."""
        return None

    def first_keys(self, environments: Sequence[str]) -> dict[str, str]:
        """For a backend emulator: the key the backend starts with in each environment
        (the world stores them: Secret ``api-keys``, Secrets Manager, the ``.env``)."""
        return {}

    async def seed(self) -> None:
        """Write the first keys of its own application into the stores it knows (the
        world's Secrets Manager is at the host's ``urls["aws"]``); runs beside the world's
        other seeding."""

    def cluster_objects(self, namespaces: Mapping[str, str],
                        progress_deadline_seconds: int) -> list[Obj]:
        """The Kubernetes objects of its own application: Secrets, Deployment,
        production's ExternalSecret."""
        return []

    def credentials(self) -> dict[str, str]:
        """Files under ``DIR/credentials/`` (name to value): the keys the flows use."""
        return {}

    def inventory(self) -> InventoryPart:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What it adds to ``sandbox.json`` (merged one level deep: ``{"providers":
        {"openai": url}}`` adds to ``providers``)."""
        return {}

    def pids(self) -> dict[str, int]:
        """Its processes, for ``sandbox.json``'s ``pids``."""
        return {}

    def revoke_leaked(self, value: str) -> bool:
        """GitHub's partner program: revoke the key whose value was pushed; whether it
        was one of its keys."""
        return False

    async def stop(self) -> None:
        """Stop what it started."""


def _no_lines(info: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Emulator:
    """One provider's emulator: see the module doc."""

    name: str
    start: Callable[[Host], Running]
    check: KeyCheck
    endpoint: Callable[[Mapping[str, Any]], str]
    backend: BackendKey | None = None
    application: Application | None = None
    fault_knobs: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    describe: Callable[[Mapping[str, Any]], list[str]] = field(default=_no_lines)
    rank: int = 100

    def __post_init__(self) -> None:
        if (self.backend is None) == (self.application is None):
            raise EmulatorError(f"emulator {self.name!r}: its keys are either the backend's "
                                "(backend) or an application's of its own (application)")

    async def key_works(self, client: httpx.AsyncClient, info: Mapping[str, Any], value: str,
                        key_id: str | None = None) -> Check:
        """Ask it, at the endpoint ``sandbox.json`` (``info``) names, whether a key works."""
        return await self.check.ask(client, Probe(self.endpoint(info), value, key_id))


def declared() -> list[EntryPoint]:
    """The group's entry points: the installed metadata's, else the sandbox's
    ``pyproject.toml`` table (see the module doc)."""
    points = list(entry_points(group=GROUP))
    if points or not PYPROJECT.is_file():
        return points
    with open(PYPROJECT, "rb") as file:
        table = tomllib.load(file).get("project", {}).get("entry-points", {}).get(GROUP, {})
    return [EntryPoint(name, value, GROUP) for name, value in table.items()]


def load(points: Iterable[EntryPoint]) -> dict[str, Emulator]:
    """The emulators of ``points`` by name, in rank order, each checked: an
    :class:`Emulator` named as its entry point, for an installed secretops provider."""
    from secretops.providers import registry as providers

    found: list[Emulator] = []
    for point in points:
        where = f"entry point {point.name} = {point.value} of {GROUP}"
        try:
            emulator = point.load()
        except (ImportError, AttributeError) as exc:
            raise EmulatorError(f"{where} cannot be loaded: {exc}") from exc
        if not isinstance(emulator, Emulator) or emulator.name != point.name:
            raise EmulatorError(f"{where} is not a sandbox Emulator named {point.name!r}")
        if emulator.name not in providers():
            raise EmulatorError(f"{where}: no secretops provider is named {point.name!r} "
                                f"(installed: {', '.join(providers())})")
        found.append(emulator)
    if not found:
        raise EmulatorError(f"no emulator is registered under the entry point group {GROUP}: "
                            "install secretops-sandbox (pip install -e . in a checkout)")
    return {e.name: e for e in sorted(found, key=lambda e: (e.rank, e.name))}


@cache
def registry() -> Mapping[str, Emulator]:
    """Every registered emulator, by name, in rank order."""
    return load(declared())


def backend_emulators() -> list[Emulator]:
    """The emulators whose keys IntelliPrompt's backend holds, in rank order."""
    return [e for e in registry().values() if e.backend is not None]


def fault_knobs() -> tuple[str, ...]:
    """The fault knobs the emulators serve behind, in rank order."""
    return tuple(knob for e in registry().values() for knob in e.fault_knobs)
