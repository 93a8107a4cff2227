"""The two Kubernetes worlds side by side, in one run: ``python -m bench.worlds``.

For each world (the sandbox's own API server, then the real control plane: etcd,
kube-apiserver, kube-controller-manager, External Secrets Operator), a fresh sandbox and
Prefect server; the time to boot it; then ``rotate api-key openai --env production`` as a
flow, ``--repeats`` times, under a steady load on production's service endpoint: the time
until Prefect marks the run Completed, and the failed requests. Writes
``bench/results/worlds.json``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import Bench, median, save, table, world
from sandbox.load import Load

ENV = "production"


def _rotate(bench: Bench) -> dict[str, Any]:
    from flows.common import run_in_process
    from flows.rotate_api_key import rotate_api_key

    with Load(bench.info["services"][ENV]) as load:
        time.sleep(0.3)
        began, wall = time.monotonic(), time.time()
        state: Any = run_in_process(rotate_api_key(
            secret="openai", environment=ENV, inventory=bench.info["inventory"],
            return_state=True))
        returned = time.monotonic() - began
        time.sleep(0.5)
    if not state.is_completed():
        raise RuntimeError(f"the flow run did not complete: {state.message}")
    return {"seconds": float(state.timestamp.timestamp()) - wall, "returned_s": returned,
            "sent": load.sent, "failed": load.failed, "errors": dict(load.errors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worlds",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worlds", default="sandbox,real")
    args = parser.parse_args(argv)
    rows, data = [], []
    for kind in args.worlds.split(","):
        began = time.monotonic()
        with world(kubernetes=kind) as bench:
            boot = time.monotonic() - began
            bench.settle()
            runs = [_rotate(bench) for _ in range(args.repeats)]
            version = bench.info["kubernetes"].get("gitVersion", "sandbox")
        entry = {"world": kind, "server": version, "boot_s": round(boot, 1), "runs": runs,
                 "median_s": median([r["seconds"] for r in runs]),
                 "failed_requests": [r["failed"] for r in runs],
                 "sent_requests": [r["sent"] for r in runs]}
        data.append(entry)
        rows.append([kind, version, entry["boot_s"], entry["median_s"],
                     "/".join(str(f) for f in entry["failed_requests"]),
                     "/".join(str(s) for s in entry["sent_requests"])])
    print(table(f"rotate api-key openai --env {ENV} under load, both worlds "
                f"(median of {args.repeats})",
                ["kubernetes", "server", "boot s (with Prefect)", "done s", "failed requests",
                 "sent"], rows))
    path = save("worlds", {"environment": ENV, "repeats": args.repeats, "worlds": data})
    print(f"\nfigures in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
