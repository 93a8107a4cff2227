"""Generated passwords that survive every place a password is pasted into.

A generated password goes into URLs and DSNs (``postgresql://user:PASSWORD@host/db``), YAML
plain scalars, unquoted shell words and ``.env`` files. Letters and digits are safe in all of
them; of the symbols only the URL-unreserved ones (``-`` ``_`` ``.`` ``~``) are, so those are
the only symbols allowed. A password never starts with a symbol: a leading ``-`` reads as a
command-line option, a leading ``~`` as a home directory, a leading ``.`` as YAML's ``.inf``.
"""

from __future__ import annotations

import secrets
import string

from pydantic import BaseModel, ConfigDict, field_validator

from secretops.models import SecretValue

SAFE_SYMBOLS = "-_.~"
MIN_LENGTH = 32
MAX_LENGTH = 256
DEFAULT_LENGTH = 40


class PasswordPolicy(BaseModel):
    """How a password is generated: its length and which of the safe symbols it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = DEFAULT_LENGTH
    symbols: str = SAFE_SYMBOLS

    @field_validator("length")
    @classmethod
    def _length_in_range(cls, value: int) -> int:
        if value < MIN_LENGTH:
            raise ValueError(f"password length {value} is below the minimum of {MIN_LENGTH}")
        if value > MAX_LENGTH:
            raise ValueError(f"password length {value} is above the maximum of {MAX_LENGTH}")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols_are_safe(cls, value: str) -> str:
        if not value:
            raise ValueError(f"at least one symbol is needed (choose from {SAFE_SYMBOLS})")
        unsafe = sorted({c for c in value if c not in SAFE_SYMBOLS})
        if unsafe:
            raise ValueError(
                f"unsafe symbols {''.join(unsafe)!r} (only {SAFE_SYMBOLS} are safe everywhere)"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"symbols {value!r} repeat a character")
        return value


def is_valid_password(password: str, policy: PasswordPolicy) -> bool:
    """True when ``password`` has the policy's length, only allowed characters, at least one
    lower-case letter, upper-case letter, digit and symbol, and starts with a letter or digit."""
    alphanumeric = string.ascii_letters + string.digits
    return (
        len(password) == policy.length
        and all(c in alphanumeric or c in policy.symbols for c in password)
        and password[0] in alphanumeric
        and any(c in string.ascii_lowercase for c in password)
        and any(c in string.ascii_uppercase for c in password)
        and any(c in string.digits for c in password)
        and any(c in policy.symbols for c in password)
    )


def generate_password(policy: PasswordPolicy | None = None) -> SecretValue:
    """A new random password from the ``secrets`` module that satisfies ``policy``.

    Candidates are drawn uniformly and redrawn until every character class is present, so no
    position is more predictable than another.
    """
    policy = policy or PasswordPolicy()
    first = string.ascii_letters + string.digits
    alphabet = first + policy.symbols
    while True:
        candidate = secrets.choice(first) + "".join(
            secrets.choice(alphabet) for _ in range(policy.length - 1)
        )
        if is_valid_password(candidate, policy):
            return SecretValue(candidate)
