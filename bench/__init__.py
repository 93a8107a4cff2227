"""Benchmarks that print figures: secretops against the runbook by hand, time to revoke a
leaked key, fleet scaling, and start-up and Prefect overhead. ``python -m bench``."""
