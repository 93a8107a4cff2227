"""An answer held to an official client's pydantic model, field for field.

The clients' models accept fields they do not declare (``extra="allow"``) and fill the
optional ones they do not find, so parsing alone proves little. :func:`exact` parses with the
model and then walks the parsed object and the JSON side by side: at every depth the JSON's
keys must be the model's declared fields (an optional field present, ``null`` when it has no
value), nothing more and nothing less. ``omissible`` names optional fields an API leaves out
(OpenAI's error ``misalignment``); ``extra`` names top-level fields the API sends that the
model does not declare (OpenAI's list ``object`` and ``first_id``, which its cursor page
model leaves undeclared)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def exact(model: type[M], data: Any, *, omissible: Iterable[str] = (),
          extra: Iterable[str] = ()) -> M:
    """``data`` parsed by ``model``; fails on any undeclared or missing field, at any depth."""
    parsed = model.model_validate(data)
    _walk(parsed, data, model.__name__, frozenset(omissible), frozenset(extra))
    return parsed


def _declared(parsed: BaseModel) -> dict[str, str]:
    """JSON name -> attribute name of every field the model declares."""
    return {(info.alias or name): name for name, info in type(parsed).model_fields.items()}


def _walk(parsed: BaseModel, raw: Any, where: str, omissible: frozenset[str],
          extra: frozenset[str] = frozenset()) -> None:
    assert isinstance(raw, dict), f"{where}: not an object: {raw!r}"
    fields = _declared(parsed)
    undeclared = set(raw) - set(fields) - extra
    assert not undeclared, f"{where}: fields {type(parsed).__name__} lacks: {sorted(undeclared)}"
    missing = set(fields) - set(raw) - omissible
    assert not missing, f"{where}: fields missing: {sorted(missing)}"
    assert not set(parsed.model_extra or {}) - extra, f"{where}: extras {parsed.model_extra}"
    for key, name in fields.items():
        if key in raw:
            _value(getattr(parsed, name), raw[key], f"{where}.{key}", omissible)


def _value(value: Any, raw: Any, where: str, omissible: frozenset[str]) -> None:
    if isinstance(value, BaseModel):
        _walk(value, raw, where, omissible)
    elif isinstance(value, list):
        assert isinstance(raw, list) and len(raw) == len(value), where
        for index, (item, item_raw) in enumerate(zip(value, raw, strict=True)):
            _value(item, item_raw, f"{where}[{index}]", omissible)


def body(raw: Any) -> Any:
    """The JSON of a ``with_raw_response`` answer, as sent."""
    return json.loads(raw.http_response.content)


def error_json(exc: Any) -> Any:
    """The JSON body of a client's ``APIStatusError``."""
    return exc.response.json()
