"""The real control plane's binaries, and the gitleaks scanner: find them, or build them from
Go modules.

Where a binary is looked for, in order:
1. the envtest variables: ``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_ETCD`` (and, beside them,
   ``TEST_ASSET_KUBE_CONTROLLER_MANAGER``, ``TEST_ASSET_EXTERNAL_SECRETS``), then a folder
   ``KUBEBUILDER_ASSETS`` holding ``kube-apiserver``, ``etcd``, ... (what ``setup-envtest``
   installs; add ``kube-controller-manager`` and ``external-secrets`` to it);
2. the cache, ``${XDG_CACHE_HOME:-~/.cache}/secretops/kube/<name>-<version>/<name>``, where
   ``secretops sandbox build-binaries`` puts what it builds.

The scanners (:data:`SCANNERS`: gitleaks) are built into the same cache but are not part of the
control plane: :func:`missing` and :func:`find_all` (what ``--kubernetes real`` requires) leave
them out. A scanner is looked for on the ``PATH`` first, then named by its own variable
(``SECRETOPS_GITLEAKS``), then in the cache; :func:`find_scanner` answers None when none has it
(the leak drill then says it was not found).

A build writes a small wrapper Go module per source module into the cache
(``build/<module>-<version>/``: ``go.mod`` requiring the module and repeating its ``replace``
lines with published versions, a ``tools.go`` importing the commands), runs ``go mod tidy``
and ``nice go build``, and moves each binary to its versioned folder. Nothing is written in
the repository; the Go toolchain fetches the modules from its module proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from secretops.errors import SecretopsError

KUBERNETES = "v1.36.3"
ETCD = "v3.6.16"
EXTERNAL_SECRETS = "v0.16.2"
GITLEAKS = "v8.30.1"


@dataclass(frozen=True)
class Binary:
    name: str
    module: str
    version: str
    package: str
    envtest_variable: str
    """The variable naming the binary directly (for a scanner: its own, not envtest's)."""


BINARIES = {
    b.name: b for b in (
        Binary("etcd", "go.etcd.io/etcd/server/v3", ETCD, "go.etcd.io/etcd/server/v3",
               "TEST_ASSET_ETCD"),
        Binary("kube-apiserver", "k8s.io/kubernetes", KUBERNETES,
               "k8s.io/kubernetes/cmd/kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
        Binary("kube-controller-manager", "k8s.io/kubernetes", KUBERNETES,
               "k8s.io/kubernetes/cmd/kube-controller-manager",
               "TEST_ASSET_KUBE_CONTROLLER_MANAGER"),
        Binary("external-secrets", "github.com/external-secrets/external-secrets",
               EXTERNAL_SECRETS, "github.com/external-secrets/external-secrets",
               "TEST_ASSET_EXTERNAL_SECRETS"),
    )
}
"""The control plane (what ``--kubernetes real`` requires)."""

SCANNERS = {
    b.name: b for b in (
        Binary("gitleaks", "github.com/zricethezav/gitleaks/v8", GITLEAKS,
               "github.com/zricethezav/gitleaks/v8", "SECRETOPS_GITLEAKS"),
    )
}
"""Secret scanners the leak drill runs; built beside the control plane, never required by
it."""

EVERYTHING = {**BINARIES, **SCANNERS}


class MissingBinary(SecretopsError):
    """A binary of the real control plane is nowhere to be found (one line)."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "secretops" / "kube"


def cached_path(binary: Binary) -> Path:
    return cache_root() / f"{binary.name}-{binary.version}" / binary.name


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locations(binary: Binary) -> list[Path]:
    """Where ``binary`` is looked for, in order."""
    found: list[Path] = []
    explicit = os.environ.get(binary.envtest_variable)
    if explicit:
        found.append(Path(explicit))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and binary.name in BINARIES:
        found.append(Path(assets) / binary.name)
    found.append(cached_path(binary))
    return found


def find(name: str) -> Path:
    """The path of binary ``name`` (of the control plane or a scanner), or
    :class:`MissingBinary` saying where it looked."""
    binary = EVERYTHING[name]
    if name in SCANNERS and (on_path := shutil.which(name)) is not None:
        return Path(on_path)
    looked = locations(binary)
    for path in looked:
        if _usable(path):
            return path
    if name in SCANNERS:
        raise MissingBinary(
            f"{name} {binary.version} not found (looked in {', '.join(map(str, looked))} and "
            f"on PATH); build it with `secretops sandbox build-binaries --only {name}` (Go "
            f"1.24+) or set {binary.envtest_variable}")
    raise MissingBinary(
        f"{name} {binary.version} not found (looked in {', '.join(map(str, looked))}); "
        f"build it with `secretops sandbox build-binaries` (Go 1.24+, about 10 minutes cold) "
        f"or set {binary.envtest_variable} / KUBEBUILDER_ASSETS")


def find_scanner(name: str) -> Path | None:
    """Where :func:`find` finds scanner ``name`` (the ``PATH`` first); None if nowhere."""
    try:
        return find(name)
    except MissingBinary:
        return None


def find_all() -> dict[str, Path]:
    return {name: find(name) for name in BINARIES}


def missing(names: list[str] | None = None) -> list[str]:
    """The binaries ``names`` (default: the control plane's, no scanner) that :func:`find`
    cannot find."""
    absent = []
    for name in (list(BINARIES) if names is None else names):
        try:
            find(name)
        except MissingBinary:
            absent.append(name)
    return absent


def _go() -> str:
    go = shutil.which("go") or next(
        (str(p) for p in (Path("/usr/local/go/bin/go"), Path.home() / "go" / "bin" / "go")
         if p.exists()), None)
    if go is None:
        raise MissingBinary("the Go toolchain (`go`) is not on PATH; install Go 1.24 or newer "
                            "(https://go.dev/dl or the distribution's golang package) to build "
                            "the control plane's binaries")
    return go


def _run(command: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                check=False)
    if result.returncode != 0:
        raise SecretopsError(f"`{' '.join(command[:3])} ...` failed (exit {result.returncode}) "
                             f"in {cwd}; see {log}")


def _sibling_version(module: str, version: str) -> str:
    """The release of the modules a module's relative ``replace`` lines name: Kubernetes'
    staging modules are published as v0.X.Y beside k8s.io/kubernetes v1.X.Y; etcd's siblings
    carry the same version."""
    if module == "k8s.io/kubernetes" and version.startswith("v1."):
        return "v0." + version.removeprefix("v1.")
    return version


def _ldflags(module: str, version: str) -> list[str]:
    """Kubernetes' version stamp (what ``/version`` answers), as its release build sets it;
    gitleaks' (what ``gitleaks version`` prints), as its Makefile sets it."""
    if module == SCANNERS["gitleaks"].module:
        return ["-ldflags", f"-s -w -X={module}/version.Version={version}"]
    if module != "k8s.io/kubernetes":
        return []
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"
    flags = [f"-X {stamp}.gitVersion={version}", f"-X {stamp}.gitMajor={major}",
             f"-X {stamp}.gitMinor={minor}", f"-X {stamp}.gitTreeState=clean"]
    return ["-ldflags", " ".join(flags)]


def _module_replaces(go: str, module: str, version: str, work: Path, log: Path) -> list[str]:
    """``replace`` lines for the wrapper: the module's own, with relative targets turned into
    the published sibling release."""
    download = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], cwd=work,
                              capture_output=True, text=True, check=False)
    if download.returncode != 0:
        log.write_text(download.stdout + download.stderr)
        raise SecretopsError(f"`go mod download {module}@{version}` failed; see {log}")
    gomod = json.loads(download.stdout)["GoMod"]
    edit = subprocess.run([go, "mod", "edit", "-json", gomod], cwd=work, capture_output=True,
                          text=True, check=True)
    lines = []
    for replace in json.loads(edit.stdout).get("Replace") or []:
        old, new = replace["Old"]["Path"], replace["New"]
        if new["Path"].startswith("."):
            if "FORBIDDEN" in new["Path"]:
                continue
            lines.append(f"\t{old} => {old} {_sibling_version(module, version)}")
        else:
            lines.append(f"\t{old} => {new['Path']} {new.get('Version', '')}".rstrip())
    return lines


def _wrapper(go: str, module: str, version: str, packages: list[str], log: Path) -> Path:
    work = cache_root() / "build" / f"{module.replace('/', '_')}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "go.mod").exists():
        (work / "go.mod").write_text("module secretops.local/build\n\ngo 1.24\n")
    replaces = _module_replaces(go, module, version, work, log)
    text = (f"module secretops.local/build\n\ngo 1.24\n\nrequire {module} {version}\n")
    if replaces:
        text += "\nreplace (\n" + "\n".join(replaces) + "\n)\n"
    (work / "go.mod").write_text(text)
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    (work / "tools.go").write_text(
        f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    return work


def build(names: list[str] | None = None, force: bool = False,
          progress: Callable[[str], None] = lambda _: None) -> dict[str, Path]:
    """Build the binaries ``names`` (default: the control plane's and the scanners', each one
    not found) into the cache."""
    wanted = [EVERYTHING[n] for n in (names or list(EVERYTHING))]
    if not force:
        absent = missing([b.name for b in wanted])
        wanted = [b for b in wanted if b.name in absent]
    built: dict[str, Path] = {}
    by_module: dict[tuple[str, str], list[Binary]] = {}
    for binary in wanted:
        by_module.setdefault((binary.module, binary.version), []).append(binary)
    go = _go() if by_module else ""
    for (module, version), group in by_module.items():
        started = time.monotonic()
        log = cache_root() / "build" / f"{module.replace('/', '_')}-{version}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        progress(f"building {', '.join(b.name for b in group)} from {module}@{version} "
                 f"(log: {log})")
        work = _wrapper(go, module, version, [b.package for b in group], log)
        _run([go, "mod", "tidy"], work, log)
        out = work / "bin"
        out.mkdir(exist_ok=True)
        nice = [shutil.which("nice") or "nice", "-n", "10"] if shutil.which("nice") else []
        _run([*nice, go, "build", *_ldflags(module, version), "-o", f"{out}/",
              *[b.package for b in group]], work, log)
        for binary in group:
            produced = out / _exec_name(binary.package)
            target = cached_path(binary)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(produced), target)
            built[binary.name] = target
        if any(b.name == "external-secrets" for b in group):
            _copy_crds(go, module, version, work)
        seconds = time.monotonic() - started
        for binary in group:
            (cached_path(binary).parent / "build.json").write_text(json.dumps(
                {"module": module, "version": version, "seconds": round(seconds, 1)}))
        progress(f"built {', '.join(b.name for b in group)} in {seconds / 60:.1f} min")
    return built


def _exec_name(package: str) -> str:
    """What ``go build -o dir/`` names a package's binary: its last element, or the one before
    a major version suffix (``go.etcd.io/etcd/server/v3`` builds as ``server``,
    ``github.com/zricethezav/gitleaks/v8`` as ``gitleaks``)."""
    parts = package.split("/")
    last = parts[-1]
    if len(parts) > 1 and last[:1] == "v" and last[1:].isdigit() and int(last[1:]) >= 2:
        return parts[-2]
    return last


def _copy_crds(go: str, module: str, version: str, work: Path) -> None:
    download = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], cwd=work,
                              capture_output=True, text=True, check=True)
    source = Path(json.loads(download.stdout)["Dir"]) / "config" / "crds" / "bases"
    target = eso_crds_dir(required=False)
    target.mkdir(parents=True, exist_ok=True)
    for crd in source.glob("*.io_*.yaml"):
        shutil.copyfile(crd, target / crd.name)


def eso_crds_dir(required: bool = True) -> Path:
    """External Secrets Operator's CRDs: ``crds/`` beside its binary (the build copies them
    there from the module), or ``$KUBEBUILDER_ASSETS/external-secrets-crds``."""
    binary = BINARIES["external-secrets"]
    candidates = [cached_path(binary).parent / "crds"]
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        candidates.insert(0, Path(assets) / "external-secrets-crds")
    if not required:
        return candidates[-1]
    for folder in candidates:
        if any(folder.glob("*.yaml")):
            return folder
    raise MissingBinary(
        f"External Secrets Operator's CRDs not found (looked in "
        f"{', '.join(map(str, candidates))}); run `secretops sandbox build-binaries "
        f"--only external-secrets --force`")
