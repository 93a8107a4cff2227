"""How every runbook step is run: retried with backoff on the transient failures that no call
retried (``secretops.adapters.retry``: one layer per failure), never cached, never
persisted, and named in the runbook's words so the UI timeline reads as the checklist."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ParamSpec

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import SyncClientContext
from prefect.tasks import exponential_backoff

from secretops.adapters.retry import is_retried_by_step
from secretops.inventory import Inventory, load_inventory
from secretops.report import StepResult
from secretops.wiring import Wiring

P = ParamSpec("P")

RETRIES = 4


def transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Run the step again only for a transient failure that no call retried (a PostgreSQL
    connection lost, a key creation that failed); never for a system that stayed unavailable
    through a call's attempts, nor for a refusal (401 / 403 / 404, validation errors)."""
    try:
        state.result(raise_on_failure=True)
    except Exception as exc:
        return is_retried_by_step(exc)
    return False


def runbook_step(
    step: str, *, retries: int = RETRIES
) -> Callable[[Callable[P, list[str]]], Task[P, StepResult]]:
    """Make a task of one runbook step.

    The task is named after the function (``restart_pods``) and each run after the step as the
    runbook says it, with the environment (``3. Restart pods (staging)``), so the UI timeline
    reads as the checklist. The function returns its evidence (ids, counts, pod names: never a
    value); the task returns a :class:`StepResult` with its timing.
    """

    def decorate(fn: Callable[P, list[str]]) -> Task[P, StepResult]:
        has_environment = "environment" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> StepResult:
            started_at = datetime.now(UTC)
            begun = time.monotonic()
            evidence = fn(*args, **kwargs)
            return StepResult(step, started_at, time.monotonic() - begun, "ok", tuple(evidence))

        return task(
            name=fn.__name__,
            task_run_name=f"{step} ({{environment}})" if has_environment else step,
            retries=retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=0.5),
            retry_jitter_factor=0.5,
            retry_condition_fn=transient_only,
            persist_result=False,
            cache_policy=NO_CACHE,
            log_prints=False,
        )(timed)

    return decorate


def one_prefect_client() -> AbstractContextManager[SyncClientContext]:
    """One Prefect API client for the whole run, shared by its steps (the current one when
    there is one). The flows are async, so that a run returns as soon as it ends, and their
    steps are sync tasks: without a client around them each step would open one of its own,
    about 20 ms apiece."""
    return SyncClientContext.get_or_create()


@functools.lru_cache(maxsize=8)
def inventory_at(path: str) -> Inventory:
    return load_inventory(path)


@functools.lru_cache(maxsize=8)
def wiring_for(path: str) -> Wiring:
    """The adapters for an inventory, built once per process."""
    return Wiring(inventory_at(path))
