import pytest
from tests.flows.test_rotate_api_key_faults import assert_converged, faults, rotate, remember_all

@pytest.mark.parametrize("n", range(5))
def test_repeat(world, n):
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    knobs = {"error_rate": 0.3, "codes": [429, 500, 503], "retry_after_ms": 50}
    with faults(world, openai=knobs, kubernetes=knobs):
        rotate(world, secret, environment)
    remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) != old
