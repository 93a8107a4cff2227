"""Run a flow in this process and SIGKILL the process at one step boundary.

    python -m tests.flows.kill_driver flows.rotate_api_key:rotate_api_key AFTER \\
        --params '{"secret": "openai", "environment": "staging", "inventory": "..."}'

``AFTER`` is where the process dies:

- the name of a task the flow module uses, or the rotate flows' shared sequences in
  ``tasks.rotation`` do (``update_secret``, ``restart_pods``...), or ``module:task`` for a task
  the flow reaches through another module (``tasks.leak:record_replacement``): a Prefect
  ``on_completion`` hook on that task kills the process once the step has completed;
- ``pending-stored``: right after a store has saved the pending version (inside the first
  step, before the step reports back);
- ``key-created``: right after the provider created the new key, before any store holds it
  (the key is then known only to the provider: an orphan for the next run to revoke);
- ``step:NAME``: right after a rotate-all lane has run the runbook step ``NAME``
  (``step:update_secret``); a lane runs its steps as plain calls, not task runs.

Before dying the driver prints ``FLOW_RUN_ID <uuid>`` so the test can mark the run Crashed,
as the zombie automation would. If the flow finishes without reaching the kill point the
driver exits 3. The two in-step points wrap an adapter method in this process only; nothing
is changed in the process that runs the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from prefect import Task

IN_STEP = ("pending-stored", "key-created")
FLEET_STEP = "step:"


_DYING = threading.Lock()


def die() -> None:
    """Say which flow run is dying, then SIGKILL this process (no cleanup, no hooks). Steps
    running side by side (one per environment) may reach the point together: the first one
    kills, the others wait for it, so the line is written once and whole."""
    from prefect.runtime import flow_run

    _DYING.acquire()
    os.write(sys.stdout.fileno(), f"FLOW_RUN_ID {flow_run.id}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after_task(task: Task[..., Any]) -> None:
    def hook(task: object, task_run: object, state: object) -> None:
        die()

    task.on_completion(hook)


def killing(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        method(*args, **kwargs)
        die()

    return wrapper


def kill_in_step(point: str, inventory: str) -> None:
    """Make the adapter that does the step's last write die right after it."""
    from secretops.adapters.aws import AwsSecretStore
    from secretops.adapters.files import DockerSecretStore, DotenvStore
    from secretops.adapters.kube_store import KubernetesSecretStore
    from tasks.common import wiring_for

    if point == "pending-stored":
        for store_class in (AwsSecretStore, KubernetesSecretStore, DotenvStore,
                            DockerSecretStore):
            store_class.stage_pending = killing(store_class.stage_pending)  # type: ignore[method-assign]
        return
    provider: Any = wiring_for(inventory).provider("openai")
    provider.create_key = killing(provider.create_key)


def kill_after_fleet_step(name: str) -> None:
    """Make a rotate-all lane die right after it has run the step ``name``."""
    import tasks.rotation as rotation

    run_step = rotation.run_step

    def wrapper(step: Task[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = run_step(step, *args, **kwargs)
        if step.name == name:
            die()
        return result

    rotation.run_step = wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow", help="module:function of the flow")
    parser.add_argument("after", help="task name, or one of " + ", ".join(IN_STEP))
    parser.add_argument("--params", default="{}", help="flow parameters as JSON")
    args = parser.parse_args(argv)
    module_name, _, flow_name = args.flow.partition(":")
    module = importlib.import_module(module_name)
    params = json.loads(args.params)
    if args.after in IN_STEP:
        from flows.common import inventory_path

        kill_in_step(args.after, inventory_path(params.get("inventory")))
    elif args.after.startswith(FLEET_STEP):
        kill_after_fleet_step(args.after.removeprefix(FLEET_STEP))
    else:
        task_module, _, task_name = args.after.rpartition(":")
        owners = ([importlib.import_module(task_module)] if task_module
                  else [module, importlib.import_module("tasks.rotation")])
        task = next((found for owner in owners
                     if isinstance(found := getattr(owner, task_name, None), Task)), None)
        if task is None:
            parser.error(f"{task_module or module_name} has no task named {task_name!r}")
        kill_after_task(task)
    try:
        asyncio.run(getattr(module, flow_name)(**params))
    except Exception as exc:
        print(f"the flow failed before the kill point: {type(exc).__name__}", flush=True)
        return 2
    print("the flow finished without reaching the kill point", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
