"""Run every benchmark against one fresh sandbox and Prefect server, print the tables and
write ``bench/results/<name>.json`` (and ``fleet.png``).

    python -m bench                          everything, default sizes
    python -m bench --only rotation,revoke   some of them
    python -m bench --only revoke,alerts     the CLI's revoke beside alert to refused
    python -m bench --smoke                  the smallest sizes, one repeat (a quick check)
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime
from typing import Any

from bench import common

NAMES = ("overhead", "rotation", "revoke", "alerts", "fleet")


def main(argv: list[str] | None = None) -> int:
    summary, examples = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="python -m bench", description=summary,
                                     epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(NAMES),
                        help=f"comma-separated subset of {', '.join(NAMES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,200", help="fleet sizes")
    parser.add_argument("--pod-start", default="0.3,3",
                        help="fleet: seconds a pod takes to start, one scenario each "
                             "(0.3 is the sandbox's own)")
    parser.add_argument("--concurrency", default="32,64",
                        help="fleet: rotate-all concurrency, one per --pod-start (or one for all)")
    parser.add_argument("--smoke", action="store_true",
                        help="one repeat, a fleet of 2: checks that the benchmarks run")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    repeats = 1 if args.smoke else args.repeats
    sizes = [2] if args.smoke else [int(s) for s in args.sizes.split(",")]
    starts = [float(s) for s in args.pod_start.split(",")]
    concurrency = [int(c) for c in args.concurrency.split(",")]
    if len(concurrency) == 1:
        concurrency *= len(starts)
    if len(concurrency) != len(starts):
        parser.error("give one --concurrency, or one per --pod-start")
    scenarios = list(zip(starts, concurrency, strict=True))
    began = time.monotonic()
    summary: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": f"{platform.machine()}, {_cores()} cores, "
                                          f"Python {platform.python_version()}"}
    with common.world() as bench:
        if "overhead" in chosen:
            summary["overhead"] = _run("overhead", bench, lambda: __import__(
                "bench.overhead").overhead.run(bench, repeats))
        if "rotation" in chosen:
            summary["rotation"] = _run("rotation", bench, lambda: __import__(
                "bench.rotation").rotation.run(bench, repeats))
        if "revoke" in chosen:
            start = summary.get("overhead", {}).get("run_start_s")
            summary["revoke"] = _run("revoke", bench, lambda: __import__(
                "bench.revoke").revoke.run(bench, repeats, start))
        if "alerts" in chosen:
            summary["alerts"] = _run("alerts", bench, lambda: __import__(
                "bench.alerts").alerts.run(bench, repeats))
        if "fleet" in chosen:
            summary["fleet"] = _run("fleet", bench, lambda: __import__(
                "bench.fleet").fleet.run(bench, sizes, scenarios))
    summary["total_s"] = round(time.monotonic() - began, 1)
    path = common.save("latest" if not args.smoke else "smoke", summary)
    print(f"\nall figures in {path} ({summary['total_s']} s)")
    return 0


def _run(name: str, bench: common.Bench, call: Any) -> dict[str, Any]:
    print(f"\n== {name} ==", flush=True)
    print(f"(the sandbox and the Prefect server idle after {bench.settle():.1f} s)", flush=True)
    began = time.monotonic()
    data: dict[str, Any] = call()
    data["bench_s"] = round(time.monotonic() - began, 1)
    common.save(name, data)
    return data


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
