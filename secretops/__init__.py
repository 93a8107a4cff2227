"""secretops: the secrets runbook as Prefect flows (library side: no flows or tasks here)."""

__version__ = "0.1.0"
