"""The build backend of the repository's root: setuptools, plus the sandbox in editable installs.

The repository holds two distributions: ``secretops`` (``pyproject.toml``: the packages
secretops, cli, flows, tasks and deployments) and ``secretops-sandbox``
(``sandbox/pyproject.toml``: the package sandbox and the dependencies only it needs). Wheels
and sdists of the root are setuptools' own, the product alone. An editable install of the
root (``pip install -e .``, a checkout) is for working on both, so its build also maps the
``sandbox`` package to ``sandbox/``, requires what ``sandbox/pyproject.toml`` lists (the one
place that list lives), less the sandbox's requirement of secretops itself, and carries the
sandbox's entry points (its emulators' group, ``secretops.sandbox.emulators``), read from the
same file.

How: while an editable hook runs, setuptools' reading of the root's ``pyproject.toml``
(``setuptools.config.pyprojecttoml.read_configuration``) returns that configuration with the
sandbox's packages, requirements and entry points added. The result is what the
configuration would say if it listed them: setuptools' editable finder maps the packages and
the metadata lists the requirements and the entry points. Where there is no
``sandbox/pyproject.toml`` (an unpacked sdist), an editable install is the product's alone.
"""

from __future__ import annotations

import contextlib
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools import find_packages
from setuptools.config import pyprojecttoml

# The root's own builds, unchanged: the product's wheel and sdist.
build_sdist = _setuptools.build_sdist
get_requires_for_build_wheel = _setuptools.get_requires_for_build_wheel
get_requires_for_build_sdist = _setuptools.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = _setuptools.prepare_metadata_for_build_wheel
get_requires_for_build_editable = _setuptools.get_requires_for_build_editable

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = ROOT / "sandbox"
PRODUCT = "secretops"


def _name(requirement: str) -> str:
    """The normalized project name a requirement string starts with."""
    name = requirement.strip()
    for stop in "[<>=!~;@ (":
        name = name.split(stop, 1)[0]
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _sandbox_project() -> dict[str, Any]:
    with open(SANDBOX / "pyproject.toml", "rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def sandbox_requirements() -> list[str]:
    """What ``sandbox/pyproject.toml`` requires, except secretops itself."""
    return [r for r in _sandbox_project().get("dependencies", []) if _name(r) != PRODUCT]


def sandbox_entry_points() -> dict[str, dict[str, str]]:
    """The entry points ``sandbox/pyproject.toml`` declares, by group."""
    return {group: dict(points)
            for group, points in _sandbox_project().get("entry-points", {}).items()}


def _with_sandbox(config: dict[str, Any]) -> dict[str, Any]:
    config["project"]["dependencies"] = [*config["project"].get("dependencies", []),
                                         *sandbox_requirements()]
    groups = config["project"].setdefault("entry-points", {})
    for group, points in sandbox_entry_points().items():
        clash = set(groups.get(group, {})) & set(points)
        if clash:
            raise RuntimeError(f"entry points {sorted(clash)} of {group} are declared by both "
                               "pyproject.toml and sandbox/pyproject.toml")
        groups[group] = {**groups.get(group, {}), **points}
    options = config.setdefault("tool", {}).setdefault("setuptools", {})
    packages = options.get("packages", [])
    if isinstance(packages, dict):  # not expanded yet: {"find": {"include": [...]}}
        find = packages.setdefault("find", {})
        find["include"] = [*find.get("include", []), "sandbox", "sandbox.*"]
    else:
        options["packages"] = [*packages,
                               *find_packages(str(ROOT), include=["sandbox", "sandbox.*"])]
    return config


@contextlib.contextmanager
def _sandbox_included() -> Iterator[None]:
    if not (SANDBOX / "pyproject.toml").is_file():
        yield
        return
    read = pyprojecttoml.read_configuration

    def read_with_sandbox(filepath: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: dict[str, Any] = read(filepath, *args, **kwargs)
        if Path(filepath).resolve() == ROOT / "pyproject.toml":
            config = _with_sandbox(config)
        return config

    pyprojecttoml.read_configuration = read_with_sandbox
    try:
        yield
    finally:
        pyprojecttoml.read_configuration = read


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    """setuptools' wheel, refused if it holds the sandbox: setuptools packs all of
    ``build/lib``, where a build made before the sandbox had its own distribution left it."""
    name: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    wheel = Path(wheel_directory, name)
    with zipfile.ZipFile(wheel) as archive:
        stale = any(entry.startswith("sandbox/") for entry in archive.namelist())
    if stale:
        wheel.unlink()
        raise RuntimeError(f"the wheel would hold the sandbox, left in {ROOT / 'build'} by an "
                           "older build: remove that folder and build again")
    return name


def prepare_metadata_for_build_editable(metadata_directory: str,
                                        config_settings: dict[str, Any] | None = None) -> str:
    with _sandbox_included():
        name: str = _setuptools.prepare_metadata_for_build_editable(metadata_directory,
                                                                    config_settings)
    return name


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    with _sandbox_included():
        name: str = _setuptools.build_editable(wheel_directory, config_settings,
                                               metadata_directory)
    return name
