"""Errors that the CLI prints as one clear line (never a traceback) and flows report as state.

Messages never contain a secret value: they name stores, ids and versions.
"""

from __future__ import annotations


class SecretopsError(Exception):
    """Base class: an error with a message written for the operator."""


class InventoryError(SecretopsError):
    """The inventory file is not valid. The message names the file, the field path and what is
    wrong."""


class PendingConflict(SecretopsError):
    """A different pending version is already staged in a store."""


class NotRetryable(SecretopsError):
    """A failure that a retry cannot fix (401, 403, 404, validation)."""


class Retryable(SecretopsError):
    """A transient failure that no call retried (a PostgreSQL connection refused or cut):
    the step is run again, with backoff (Prefect's retries of the runbook step)."""


class Unavailable(SecretopsError):
    """A system stayed throttled, failing or unreachable through every attempt of one call
    (``secretops.adapters.retry.CALL_ATTEMPTS``, paced by the system's official client): the
    step fails at once, since running it again would only repeat those attempts."""


class VerificationFailed(SecretopsError):
    """The new credential did not pass verification: the rotation rolls back."""
