"""The per-secret locks against a real Prefect server: one holder at a time, waiting while
another holds the lock, released on failure, and a clear error for a lock never created."""

from __future__ import annotations

import contextvars
import secrets
import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from secretops import locks
from tests.fixtures_prefect import PrefectServer


def _limit() -> str:
    name = f"secretops-secret-lock-test-{secrets.token_hex(3)}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=1, active=True))
    return name


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(name).active_slots)


def test_a_second_holder_waits_until_the_first_lets_go(prefect_server: PrefectServer) -> None:
    name = _limit()
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with locks.hold([name]):
            order.append("first in")
            first_holds.set()
            time.sleep(1.5)
            order.append("first out")

    # a thread of its own, with this one's Prefect settings (as Prefect's task runner does)
    thread = threading.Thread(target=contextvars.copy_context().run, args=(first,))
    thread.start()
    assert first_holds.wait(20)
    assert _active_slots(name) == 1
    began = time.monotonic()
    with locks.hold([name]):
        order.append("second in")
        waited = time.monotonic() - began
    thread.join(20)
    assert order == ["first in", "first out", "second in"]
    assert waited > 0.5
    assert _active_slots(name) == 0


def test_the_lock_is_released_when_the_block_fails(prefect_server: PrefectServer) -> None:
    name = _limit()
    with pytest.raises(RuntimeError, match="step failed"), locks.hold([name]):
        assert _active_slots(name) == 1
        raise RuntimeError("step failed")
    assert _active_slots(name) == 0


def test_all_or_none_of_several_locks(prefect_server: PrefectServer) -> None:
    one, two = _limit(), _limit()
    with locks.hold([one, two]):
        assert (_active_slots(one), _active_slots(two)) == (1, 1)
    assert (_active_slots(one), _active_slots(two)) == (0, 0)


def test_a_lock_never_created_is_an_error(prefect_server: PrefectServer) -> None:
    existing = _limit()
    with pytest.raises(locks.LockMissing, match="secretops setup"), \
            locks.hold([existing, "secretops-secret-never-made"]):
        pass
    assert _active_slots(existing) == 0


def test_hold_if_free_takes_all_at_once_or_nothing_without_waiting(
        prefect_server: PrefectServer) -> None:
    one, two = _limit(), _limit()
    with locks.hold_if_free([one, two]) as held:
        assert held
        assert (_active_slots(one), _active_slots(two)) == (1, 1)
    assert (_active_slots(one), _active_slots(two)) == (0, 0)

    # The slot of `two` is held by this very thread: a call that waited would wait for the
    # lease to run out (LEASE_SECONDS), so returning well before that is "without waiting",
    # however slow a loaded machine makes the one request.
    with locks.hold([two]):
        began = time.monotonic()
        with locks.hold_if_free([one, two]) as held:
            waited = time.monotonic() - began
            assert not held
            assert (_active_slots(one), _active_slots(two)) == (0, 1)
        assert waited < locks.LEASE_SECONDS / 10
    assert (_active_slots(one), _active_slots(two)) == (0, 0)
