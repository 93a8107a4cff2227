"""The fault matrix uses the flow tests' fixtures: the sandbox's world, the scan after each
test, the load generator."""

from tests.flows.conftest import clean_prefect, load, world

__all__ = ["clean_prefect", "load", "world"]
