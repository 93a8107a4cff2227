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
    """A transient failure (429, 5xx, 409, timeout): retry with backoff."""


class VerificationFailed(SecretopsError):
    """The new credential did not pass verification: the rotation rolls back."""
