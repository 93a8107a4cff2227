"""Benchmark 3: a fleet of API-key secrets rotated by the ``rotate-all`` flow with bounded
concurrency: wall time and per-secret cost for 10, 50 and 200 secrets (and 1, the unit),
with a plot of how the cost grows.

Each scenario is a pod start time and a concurrency. With the sandbox's 0.3 s pod start a
rotation is almost all CPU, and on a small machine every process of the sandbox (the
Kubernetes API server and its controllers, the providers, the Prefect server and its
PostgreSQL) shares the cores with secretops: the fleet is CPU-bound. With a start time like
a real cluster's (seconds), a rotation is mostly waiting, as it is in production, and the
fleet's concurrency is what counts.

The fleet is synthetic: OpenAI keys minted through the sandbox's admin API, one Secret and
one single-replica Deployment (whose pods check the key at start) per secret, spread over two
namespaces (the inventory's staging and production), created through the Kubernetes API with
the Python client; its inventory is generated YAML beside the sandbox's own."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import RESULTS, Bench, table
from sandbox.kube.pods import START_SECONDS

NAMESPACES = {"staging": "fleet-staging", "production": "fleet-production"}


def _kube(bench: Bench) -> tuple[Any, Any]:
    from kubernetes import client, config

    api = config.new_client_from_config(bench.info["kubeconfig"], context="sandbox")
    return client.CoreV1Api(api), client.AppsV1Api(api)


def _deployment(namespace: str, name: str, openai_url: str, pod_start: float
                ) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1, "progressDeadlineSeconds": 30, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels,
                                      "annotations": {START_SECONDS: str(pod_start)}},
                         "spec": {"containers": [{
                "name": "app", "image": "fleet/app:1",
                "env": [{"name": "OPENAI_API_KEY",
                         "valueFrom": {"secretKeyRef": {"name": name, "key": "openai"}}},
                        {"name": "OPENAI_BASE_URL", "value": openai_url}]}]}},
        },
    }


def build(bench: Bench, size: int, pod_start: float = 0.3, tag: str = ""
          ) -> tuple[str, list[tuple[str, str]]]:
    """Create a fleet of ``size`` keys (``size / 2`` secret ids, each with a key of its own in
    staging and in production; one key in staging for a fleet of one) whose pods take
    ``pod_start`` seconds to start; returns its inventory path and (namespace, name) of every
    Deployment. ``tag`` tells apart the fleets of one size in one sandbox."""
    tag = tag or _tag(pod_start)
    core, apps = _kube(bench)
    for env, namespace in NAMESPACES.items():
        try:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": namespace,
                                                "labels": {"environment": env}}})
        except Exception as exc:  # already there from a smaller fleet
            if getattr(exc, "status", None) != 409:
                raise
    openai = bench.info["providers"]["openai"]
    admin = (Path(bench.info["dir"]) / "credentials" / "openai-admin-key").read_text().strip()
    base = f"{openai}/v1/organization/projects/proj_intelliprompt/service_accounts"
    base_inventory = yaml.safe_load(Path(bench.info["inventory"]).read_text())
    environments = ["staging"] if size == 1 else list(NAMESPACES)
    secrets, consumers, deployments = [], {}, []
    with httpx.Client(headers={"Authorization": f"Bearer {admin}"}, timeout=30) as http:
        for i in range(size // len(environments)):
            name = f"fleet{size}-{tag}-{i:03d}"
            for env in environments:
                namespace = NAMESPACES[env]
                created = http.post(base, json={"name": f"intelliprompt-{env}-{name}"})
                created.raise_for_status()
                core.create_namespaced_secret(namespace, {
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "namespace": namespace},
                    "stringData": {"openai": created.json()["api_key"]["value"]}})
                apps.create_namespaced_deployment(namespace,
                                                  _deployment(namespace, name, openai,
                                                              pod_start))
                deployments.append((namespace, name))
            consumers[name] = {"deployment": name, "verify_log": "API initialized",
                               "rollout_timeout_seconds": 60}
            secrets.append({"id": name, "kind": "openai_api_key",
                            "schedule": {"cron": "0 3 1 * *", "timezone": "UTC"},
                            "consumers": [name],
                            "stores": {env: [{"type": "kubernetes_secret", "name": name,
                                              "key": "openai"}] for env in environments}})
    # the provider's per-environment settings, for the environments this fleet has
    provider = dict(base_inventory["providers"]["openai"])
    if provider.get("service_accounts"):
        provider["service_accounts"] = {env: account for env, account
                                        in provider["service_accounts"].items()
                                        if env in environments}
    inventory = {
        "version": 1, "application": "intelliprompt",
        "credentials": {k: v for k, v in base_inventory["credentials"].items()
                        if k == "openai-admin"},
        "providers": {"openai": provider},
        "kubernetes": base_inventory["kubernetes"],
        "environments": {env: {"namespace": NAMESPACES[env]} for env in environments},
        "consumers": consumers, "secrets": secrets,
    }
    path = Path(bench.info["dir"]) / f"fleet-{size}-{tag}.yaml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    _wait_ready(apps, deployments)
    return str(path), deployments


def _tag(pod_start: float) -> str:
    """``0p3s`` for 0.3 s: a name part for the fleet of one pod start time."""
    return f"{pod_start:g}s".replace(".", "p")


def _wait_ready(apps: Any, deployments: list[tuple[str, str]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for namespace, name in deployments:
        while (apps.read_namespaced_deployment(name, namespace).status.ready_replicas or 0) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"deployment {namespace}/{name} is not ready")
            time.sleep(0.1)


def rotate(path: str, concurrency: int) -> tuple[float, float, dict[str, int]]:
    """One forced ``rotate-all`` run: seconds until the call returned, seconds until Prefect
    recorded it Completed, and its counts."""
    from flows.common import run_in_process
    from flows.rotate_all import rotate_all
    from secretops.inventory import load_inventory
    from secretops.prefect_setup import ensure_concurrency_limits

    ensure_concurrency_limits(load_inventory(path))
    began, wall = time.monotonic(), time.time()
    state = run_in_process(rotate_all(inventory=path, force=True,
                                      max_concurrency=concurrency, return_state=True))
    seconds = time.monotonic() - began
    done = state.timestamp.timestamp() - wall
    if not state.is_completed():
        raise RuntimeError(f"rotate-all did not complete: {state.message}")
    found = re.search(r"(\d+) rotated, (\d+) failed.*?(\d+) waiting", str(state.message))
    if found is None:
        raise RuntimeError(f"unexpected rotate-all outcome: {state.message}")
    counts = dict(zip(("rotated", "failed", "waiting"), map(int, found.groups()), strict=True))
    return seconds, done, counts


def plot(scenarios: list[dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for scenario in scenarios:
        points = scenario["points"]
        sizes = [p["size"] for p in points]
        label = f"pods start in {scenario['pod_start_s']:g} s, concurrency " \
                f"{scenario['concurrency']}"
        line, = left.plot(sizes, [p["done_s"] for p in points], "o-", label=label)
        left.plot(sizes, [points[0]["done_s"] * 10] * len(sizes), "--", color=line.get_color(),
                  alpha=0.5)
        right.plot(sizes, [p["done_s"] / p["size"] for p in points], "o-", label=label)
    left.set(xlabel="secrets", ylabel="seconds until done", title="rotate-all (dashed: 10x one)")
    right.set(xlabel="secrets", ylabel="seconds per secret", title="per-secret cost")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fleet.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def scenario(bench: Bench, sizes: list[int], concurrency: int, pod_start: float
             ) -> dict[str, Any]:
    """Every size (and 1, the unit) at one pod start time and concurrency."""
    points = []
    for size in sorted(set([1, *sizes])):
        built = time.monotonic()
        path, _ = build(bench, size, pod_start, f"{_tag(pod_start)}-c{concurrency}")
        setup = time.monotonic() - built
        cpu_before = bench.cpu_seconds()
        seconds, done, counts = rotate(path, concurrency)
        cpu = {who: round(used - cpu_before[who], 1)
               for who, used in bench.cpu_seconds().items()}
        if size == 1:  # the unit every size is compared with: the median of three runs
            more = [rotate(path, concurrency) for _ in range(2)]
            seconds = statistics.median([seconds, *(run[0] for run in more)])
            done = statistics.median([done, *(run[1] for run in more)])
        points.append({"size": size, "wall_s": round(seconds, 2), "done_s": round(done, 2),
                       "per_secret_s": round(seconds / size, 3), "setup_s": round(setup, 1),
                       "cpu_s": cpu, **counts})
        print(f"fleet of {size} (pods start in {pod_start:g} s): {seconds:.1f} s ({counts})",
              flush=True)
    one, one_done = points[0]["wall_s"], points[0]["done_s"]
    rows = [[p["size"], p["wall_s"], p["per_secret_s"], round(p["wall_s"] / one, 1),
             p["done_s"], round(p["done_s"] / one_done, 1),
             p["rotated"], p["failed"], *p["cpu_s"].values(),
             round(sum(p["cpu_s"].values()) / p["wall_s"], 2)] for p in points]
    print(table(f"rotate-all over a fleet of OpenAI keys (pods start in {pod_start:g} s, max "
                f"concurrency {concurrency})",
                ["secrets", "wall s", "s per secret", "x one secret", "done s", "x one (done)",
                 "rotated", "failed",
                 *(f"CPU s {who}" for who in points[0]["cpu_s"]), "cores busy"], rows))
    return {"pod_start_s": pod_start, "concurrency": concurrency, "points": points}


def run(bench: Bench, sizes: list[int], scenarios: list[tuple[float, int]]) -> dict[str, Any]:
    """Each (pod start seconds, concurrency) of ``scenarios`` over every size."""
    results = [scenario(bench, sizes, concurrency, pod_start)
               for pod_start, concurrency in scenarios]
    try:
        image: Path | None = plot(results)
    except ModuleNotFoundError:  # matplotlib comes with the dev extra
        image = None
        print("\nno plot drawn: matplotlib is not installed (pip install -e '.[dev]'); the "
              f"figures are in the tables above and in {RESULTS}")
    else:
        print(f"\nplot: {image}")
    return {"scenarios": results, "plot": str(image) if image else None}
