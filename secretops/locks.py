"""The per-secret locks, held: one slot of each named global concurrency limit (created by
``secretops setup``, see :mod:`secretops.prefect_setup`), all or none, under a lease.

Prefect's own ``concurrency()`` helper does the same with far more machinery per use (a
service and an API client per set of names, a watcher thread, a renewal thread, events):
about 0.1 s of CPU per lock, which a fleet of 200 secrets pays 200 times. Here the slots are
taken through the API directly, with one client per process:

- ``POST /v2/concurrency_limits/increment-with-lease``; while another run holds a slot the
  server answers 423 with ``Retry-After``, and the request is repeated after that pause;
- the lease is renewed every third of its duration by a thread that stops at once on exit;
- the slots are released on exit, failure included. A holder that dies (SIGKILL, a lost
  machine) holds them until its lease expires (``LEASE_SECONDS``) or ``secretops unlock``.

The holder (the flow or task run) is recorded with the lease, so the UI shows who holds a
secret's lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from secretops.errors import NotRetryable

LEASE_SECONDS = 300.0
_log = logging.getLogger(__name__)


class LockMissing(NotRetryable):
    """The global concurrency limit of a secret does not exist: ``secretops setup`` makes it."""


@functools.lru_cache(maxsize=4)
def _client(api_url: str | None) -> Any:
    """One synchronous Prefect client per API (its HTTP connections are shared by threads)."""
    from prefect.client.orchestration import get_client

    client = get_client(sync_client=True)
    client.__enter__()
    return client


def _current_client() -> Any:
    from prefect.settings import get_current_settings

    return _client(get_current_settings().api.url)


def _holder() -> Any:
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import FlowRunContext, TaskRunContext

    task_run = TaskRunContext.get()
    if task_run is not None:
        return ConcurrencyLeaseHolder(type="task_run", id=task_run.task_run.id)
    flow_run = FlowRunContext.get()
    if flow_run is not None and flow_run.flow_run is not None:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.flow_run.id)
    return None


def _acquire(client: Any, names: list[str], lease_seconds: float, wait: bool = True) -> Any:
    """The lease id of one slot of every limit in ``names``; without ``wait``, None when
    another run holds one of them."""
    from prefect.exceptions import PrefectHTTPStatusError

    holder = _holder()
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=names, slots=1, mode="concurrency", lease_duration=lease_seconds,
                holder=holder)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            if not wait:
                return None
            time.sleep(float(exc.response.headers.get("Retry-After") or 1.0))
            continue
        answer = response.json()
        found = {limit["name"] for limit in answer.get("limits") or []}
        missing = sorted(set(names) - found)
        if missing:
            if answer.get("lease_id"):
                client.release_concurrency_slots_with_lease(lease_id=answer["lease_id"])
            raise LockMissing(f"no global concurrency limit {', '.join(missing)}: run "
                              "`secretops setup` (or `secretops rotate`, which makes it)")
        return answer["lease_id"]


@contextlib.contextmanager
def hold(names: list[str], lease_seconds: float = LEASE_SECONDS) -> Iterator[None]:
    """Hold one slot of every limit in ``names`` for the duration of the block, waiting
    while another run holds one."""
    if not names:
        yield
        return
    client = _current_client()
    with _leased(client, _acquire(client, sorted(set(names)), lease_seconds), names,
                 lease_seconds):
        yield


@contextlib.contextmanager
def hold_if_free(names: list[str], lease_seconds: float = LEASE_SECONDS) -> Iterator[bool]:
    """Hold one slot of every limit in ``names`` for the duration of the block if none is
    held by another run now (True), without waiting; else hold nothing (False). Taking many
    locks in one request costs the Prefect server about as much as taking one (some 9 ms of
    CPU for a take and its release)."""
    if not names:
        yield True
        return
    client = _current_client()
    lease_id = _acquire(client, sorted(set(names)), lease_seconds, wait=False)
    if lease_id is None:
        yield False
        return
    with _leased(client, lease_id, names, lease_seconds):
        yield True


@contextlib.contextmanager
def _leased(client: Any, lease_id: Any, names: list[str], lease_seconds: float
            ) -> Iterator[None]:
    """Keep the lease renewed for the duration of the block, and release it at the end."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_seconds / 3):
            try:
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=lease_seconds)
            except Exception as exc:  # the next renewal may succeed; the lease has time left
                _log.warning("could not renew the lock lease on %s: %s", ", ".join(names),
                             type(exc).__name__)

    renewer = threading.Thread(target=renew, name="secretops-lock-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        client.release_concurrency_slots_with_lease(lease_id=lease_id)
