"""What every section of the inventory is built from, its providers' sections included."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$")]
ProviderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class StrictModel(BaseModel):
    """A section of the inventory: unknown fields are refused, naming the fields it knows."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    expected = ", ".join(cls.model_fields)
                    raise ValueError(f"unknown field {key!r} (expected one of: {expected})")
        return data


def keys_in_pairs(key_id_credential: str | None, secret_key_credential: str | None) -> None:
    """An AWS login is named by two credentials, or by none (botocore's default chain)."""
    if (key_id_credential is None) != (secret_key_credential is None):
        raise ValueError("access_key_id_credential and secret_access_key_credential go together")
