"""What the command line needs installed beside the product, and the one line it says when
that is missing."""

from __future__ import annotations

from importlib.util import find_spec

SANDBOX_MISSING = ("the sandbox is not installed: pip install secretops-sandbox (or, in a "
                   "checkout of secretops, pip install -e .)")


def require_sandbox() -> None:
    """The sandbox is its own distribution (secretops-sandbox), which a product-only install
    lacks: the commands that start it or use it say so in one line (exit code 1)."""
    from secretops.errors import SecretopsError

    if find_spec("sandbox") is None:
        raise SecretopsError(SANDBOX_MISSING)
