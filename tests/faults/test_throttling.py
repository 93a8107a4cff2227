"""The provider adapters' own retries: a throttled or busy provider is asked again, waiting
at least what its ``Retry-After`` asks (with jitter, within a bound); a refusal is final."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from secretops.adapters.providers import ATTEMPTS, ProviderRefused, ProviderUnavailable
from secretops.adapters.retry import MAX_WAIT_SECONDS, backoff_seconds, retry_after_seconds
from tests.flows.api_key_world import faults
from tests.flows.conftest import World


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_is_jittered_bounded_and_honours_the_server() -> None:
    waits = [backoff_seconds(3) for _ in range(200)]
    assert len(set(waits)) > 150 and all(0 <= w <= 1.0 for w in waits)
    assert backoff_seconds(1, asked=2.0) == 2.0
    assert backoff_seconds(30) <= MAX_WAIT_SECONDS
    assert backoff_seconds(1, asked=600) == MAX_WAIT_SECONDS


def test_throttled_calls_are_retried_with_the_asked_wait(world: World) -> None:
    provider = world.wiring.provider("openai")
    with faults(world, openai={"error_rate": 1.0, "codes": [429], "retry_after_ms": 300}):
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="list keys failed: HTTP 429"):
            provider.list_keys()
        waited = time.monotonic() - began
    assert waited >= (ATTEMPTS - 1) * 0.3


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_refusals_are_not_retried(world: World, code: int) -> None:
    provider = world.wiring.provider("openai")
    # a retry would first wait the asked 6 s; one slow request on a loaded machine does not
    with faults(world, openai={"error_rate": 1.0, "codes": [code], "retry_after_ms": 6000}):
        began = time.monotonic()
        with pytest.raises(ProviderRefused, match=f"HTTP {code}"):
            provider.list_keys()
        assert time.monotonic() - began < 5.0
