"""Benchmark 1: rotation, secretops against the runbook by hand, on the same sandbox under
the same load (the staging service endpoint under a steady request loop): wall time and
failed requests, for the OpenAI key and the database password (single and alternating)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.baseline import by_hand, eso_undoes_a_direct_patch
from bench.common import ROOT, Bench, median, table
from sandbox.load import Load

ENV = "staging"


def _completed_at(state: Any) -> float:
    """When Prefect recorded the run Completed (epoch seconds): the rotation is done then;
    the call returns a little later, once the engine has closed the run."""
    if not state.is_completed():
        raise RuntimeError(f"the flow run did not complete: {state.message}")
    return float(state.timestamp.timestamp())


def _flow_api_key(bench: Bench) -> float:
    from flows.common import run_in_process
    from flows.rotate_api_key import rotate_api_key

    return _completed_at(run_in_process(rotate_api_key(
        secret="openai", environment=ENV, inventory=bench.info["inventory"], return_state=True)))


def _flow_db(strategy: str) -> Callable[[Bench], float]:
    def run(bench: Bench) -> float:
        from flows.common import run_in_process
        from flows.rotate_db_password import rotate_db_password

        return _completed_at(run_in_process(rotate_db_password(
            environment=ENV, strategy=strategy, inventory=bench.info["inventory"],
            return_state=True)))

    return run


def _cli(*args: str) -> Callable[[Bench], None]:
    def run(bench: Bench) -> None:
        subprocess.run([sys.executable, "-m", "cli", "rotate", *args, "--env", ENV,
                        "--inventory", bench.info["inventory"]], cwd=ROOT, check=True,
                       capture_output=True, timeout=300)

    return run


def _by_hand(what: str) -> Callable[[Bench], float | None]:
    return lambda bench: by_hand(bench.info, what) and None


CASES: list[tuple[str, str, Callable[[Bench], float | None]]] = [
    ("api key", "by hand (runbook script)", _by_hand("api-key")),
    ("api key", "secretops flow", _flow_api_key),
    ("api key", "secretops CLI (cold start)", _cli("api-key", "openai")),
    ("db password", "by hand (runbook script, single user)", _by_hand("db-password")),
    ("db password", "secretops flow, single", _flow_db("single")),
    ("db password", "secretops CLI, single (cold start)", _cli("db-password", "--strategy",
                                                               "single")),
]
LAST: list[tuple[str, str, Callable[[Bench], float | None]]] = [
    ("db password", "secretops flow, alternating", _flow_db("alternating")),
]


def measure(bench: Bench, run: Callable[[Bench], float | None]) -> dict[str, Any]:
    """One rotation under load: ``seconds`` until the rotation is done (for a flow: Prefect
    marks its run Completed), ``returned_s`` until the call returned."""
    with Load(bench.info["services"][ENV]) as load:
        time.sleep(0.3)
        began, wall = time.monotonic(), time.time()
        completed_at = run(bench)
        returned = time.monotonic() - began
        time.sleep(0.5)
    seconds = returned if completed_at is None else completed_at - wall
    return {"seconds": seconds, "returned_s": returned, "sent": load.sent,
            "failed": load.failed, "errors": dict(load.errors)}


def run(bench: Bench, repeats: int) -> dict[str, Any]:
    """Each case ``repeats`` times, interleaved; alternating last (it moves the Secret to the
    ``_a``/``_b`` login roles, which the by-hand script then follows)."""
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cases in (CASES, LAST):
        for _ in range(repeats):
            for secret, how, runner in cases:
                samples.setdefault((secret, how), []).append(measure(bench, runner))
    rows, data = [], []
    for (secret, how), runs in samples.items():
        entry: dict[str, Any] = {"secret": secret, "how": how, "runs": runs,
                 "median_s": median([r["seconds"] for r in runs]),
                 "returned_median_s": median([r["returned_s"] for r in runs]),
                 "failed_requests": [r["failed"] for r in runs],
                 "sent_requests": [r["sent"] for r in runs]}
        data.append(entry)
        rows.append([secret, how, entry["median_s"], entry["returned_median_s"],
                     "/".join(str(f) for f in entry["failed_requests"]),
                     "/".join(str(s) for s in entry["sent_requests"])])
    baseline = {e["secret"]: e["median_s"] for e in data if e["how"].startswith("by hand")}
    for entry, row in zip(data, rows, strict=True):
        entry["x_baseline"] = round(entry["median_s"] / baseline[entry["secret"]], 2)
        entry["x_baseline_returned"] = round(
            entry["returned_median_s"] / baseline[entry["secret"]], 2)
        row += [entry["x_baseline"], entry["x_baseline_returned"]]
    eso = eso_undoes_a_direct_patch(bench.info)
    print(table(f"Rotation in {ENV} under load (median of {repeats})",
                ["secret", "how", "done s", "returned s", "failed requests", "sent",
                 "x by hand (done)", "x by hand (returned)"], rows))
    print("\ndone: the script exits, or Prefect marks the flow run Completed; returned: the "
          "call returns.")
    verdict = (f"is undone by External Secrets Operator {eso['undone_after_s']} s after a sync "
               "is forced" if eso["undone_by_eso"] else "survived a forced sync")
    print(f"\nThe runbook's production path: `kubectl edit secret api-keys` in production "
          f"{verdict} (the Secret is owned by an ExternalSecret fed from AWS Secrets Manager).")
    return {"environment": ENV, "repeats": repeats, "cases": data, "eso_direct_patch": eso}
