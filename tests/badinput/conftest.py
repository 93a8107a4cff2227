"""Bad-input cases use the flow tests' fixtures: the sandbox's world and the scan after each
test."""

from tests.flows.conftest import clean_prefect, world

__all__ = ["clean_prefect", "world"]
