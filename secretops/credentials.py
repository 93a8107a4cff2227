"""The values of the credentials secretops itself uses, looked up where the inventory says.

A credential is a Prefect Secret block, an environment variable or a file. Errors name the
credential and where it was looked for, never the value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

from secretops.errors import SecretopsError
from secretops.inventory.root import Inventory
from secretops.models import SecretValue


class CredentialError(SecretopsError):
    """A credential named in the inventory could not be read."""


def resolve_credential(inv: Inventory, name: str) -> SecretValue:
    """The value of credential ``name``.

    A file must be readable by its owner only (mode 0600 or stricter); one trailing newline is
    ignored. A Prefect block is loaded through the Prefect API of the current settings.
    """
    ref = inv.credential(name)
    where = f"credential {name!r} ({ref.source})"
    if ref.env is not None:
        value = os.environ.get(ref.env, "")
        if not value:
            raise CredentialError(f"{where}: the variable is not set or empty")
    elif ref.file is not None:
        try:
            mode = ref.file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise CredentialError(
                    f"{where}: group or others may access it (mode {stat.S_IMODE(mode):04o}); "
                    "chmod 600 it"
                )
            value = ref.file.read_text(encoding="utf-8").removesuffix("\n")
        except FileNotFoundError:
            raise CredentialError(f"{where}: the file does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CredentialError(f"{where}: cannot read the file ({reason})") from None
        if not value:
            raise CredentialError(f"{where}: the file is empty")
    else:
        value = _block_value(where, str(ref.block))
    return SecretValue(value)


def _block_value(where: str, block: str) -> str:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    load: Callable[..., Any] = Secret.load
    try:
        loaded = load(block, _sync=True)
    except (ValueError, ObjectNotFound):
        raise CredentialError(f"{where}: no such block") from None
    value = loaded.get()
    if not isinstance(value, str) or not value:
        raise CredentialError(f"{where}: the block does not hold a non-empty string")
    return value
