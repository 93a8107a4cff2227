"""Reading ``inventory.yaml``: YAML, validation, and errors an operator can act on.

Every problem becomes one line ``FILE: FIELD.PATH: what is wrong`` (YAML errors name the line
instead of a field), gathered in one :class:`~secretops.errors.InventoryError`; pydantic's own
report never reaches the operator. Relative paths in the inventory are resolved against the
folder of the inventory file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from secretops import stores
from secretops.errors import InventoryError
from secretops.inventory import checks
from secretops.inventory.root import Inventory

DEFAULT_FILE = "inventory.yaml"
MAX_BYTES = 1_000_000  # an inventory of thousands of secrets is a few hundred kB
MAX_DEPTH = 64  # levels of nesting: an inventory needs under ten
MAX_NODES = 200_000  # values once aliases are expanded: bounds the time validation takes
ENV_VAR = "SECRETOPS_INVENTORY"

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NOUNS = {"environments": "environment", "stores": "environment", "access_policy": "environment"}
_TYPE_WORDS = {
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def inventory_path(explicit: str | None = None) -> Path:
    """The inventory to use: ``explicit``, else ``$SECRETOPS_INVENTORY``, else
    ``inventory.yaml`` in the current folder."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_FILE)


class _NoDuplicateKeys:
    """Refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc,no-any-return]


class _Loader(_NoDuplicateKeys, yaml.SafeLoader):
    """The safe loader whose errors an operator reads (PyYAML's words and positions)."""


class _FastLoader(_NoDuplicateKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same with libyaml's parser, where PyYAML has it: a fleet's inventory of hundreds
    of secrets parses in a sixth of the time. A file it refuses is read again by
    :class:`_Loader`, so that the error is worded the same on every machine."""


def _load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - raises, in PyYAML's words


def _parse_yaml(path: Path, text: str) -> Any:
    if len(text) > MAX_BYTES:
        raise InventoryError(f"{path}: {len(text)} characters: an inventory is at most "
                             f"{MAX_BYTES} (is this the right file?)")
    try:
        data = _load(text)
    except RecursionError:
        raise InventoryError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InventoryError(f"{path}: {where}invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: invalid YAML: {exc}") from None
    size, depth = _shape(data, MAX_NODES)
    if size > MAX_NODES:
        raise InventoryError(f"{path}: the document expands to more than {MAX_NODES} values "
                             "(anchors and aliases that repeat each other?)")
    if depth > MAX_DEPTH:
        raise InventoryError(f"{path}: invalid YAML: nested too deeply (more than "
                             f"{MAX_DEPTH} levels)")
    return data


def _shape(data: Any, budget: int) -> tuple[int, int]:
    """How many values ``data`` holds with every alias expanded, counted up to just past
    ``budget`` (an alias of an alias of ... grows exponentially; counting stops early), and
    how deeply its values nest."""
    count, deepest, stack = 0, 0, [(data, 1)]
    while stack and count <= budget:
        item, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
    return count, deepest


def _found(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    return _shown(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _loc_path(loc: Sequence[int | str]) -> str:
    """``('secrets', 2, 'stores', 'production', 0, 'dotenv', 'key')`` as
    ``secrets[2].stores.production[0].key`` (the union tag is not a field)."""
    text = ""
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            text += f"[{item}]"
        elif item == "[key]" or (item in stores.registry() and isinstance(previous, int)):
            pass
        elif not _PLAIN_NAME.fullmatch(item):  # a key as written could break the line
            text += f"[{_shown(item)}]"
        else:
            text += f".{item}" if text else item
        previous = item
    return text


def _expected(ctx: dict[str, Any], key: str) -> str:
    return ", ".join(sorted(re.findall(r"'([^']*)'", str(ctx.get(key, "")))))


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """The field path and message of one pydantic error."""
    loc = list(error["loc"])
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return _loc_path(loc), message
    if kind == "missing":
        return _loc_path(loc[:-1]), f"missing required field {loc[-1]!r}"
    if kind == "extra_forbidden":
        return _loc_path(loc[:-1]), f"unknown field {loc[-1]!r}"
    if kind == "enum":
        if loc[-1] == "[key]":
            loc = loc[:-1]
            names = [str(item) for item in loc[:-1] if isinstance(item, str)]
        else:
            names = [item for item in loc if isinstance(item, str)]
        noun = _NOUNS.get(names[-1], names[-1]) if names else "value"
        return _loc_path(loc), f"unknown {noun} {_shown(value)} (expected one of: " + (
            _expected(ctx, "expected") + ")"
        )
    if kind == "union_tag_invalid":
        tags = _expected(ctx, "expected_tags")
        return _loc_path(loc), f"unknown store type {ctx.get('tag')!r} (expected one of: {tags})"
    if kind == "union_tag_not_found":
        return _loc_path(loc), f"missing 'type' (expected one of: {', '.join(stores.types())})"
    if kind == "literal_error":
        return _loc_path(loc), f"expected {ctx.get('expected')}, found {_shown(value)}"
    if kind == "string_pattern_mismatch":
        return _loc_path(loc), f"{_shown(value)} is not valid (must match {ctx.get('pattern')})"
    if kind in _TYPE_WORDS:
        return _loc_path(loc), f"must be {_TYPE_WORDS[kind]} (found {_found(value)})"
    message = error["msg"].replace("Input should be", "must be")
    return _loc_path(loc), message


def _raise(path: Path, problems: list[tuple[str, str]]) -> None:
    lines: list[str] = []
    for field, message in problems:
        message = message.replace("\r", "\\r").replace("\n", "\\n")  # one line each
        line = f"{path}: {field}: {message}" if field else f"{path}: {message}"
        if line not in lines:
            lines.append(line)
    raise InventoryError("\n".join(lines))


def _absolute(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


def _resolve_paths(inv: Inventory, base: Path) -> None:
    """Make every path of the inventory absolute and give file stores their file."""
    for ref in inv.credentials.values():
        ref.file = _absolute(base, ref.file)
    inv.kubernetes.kubeconfig = _absolute(base, inv.kubernetes.kubeconfig)
    inv.kubernetes.audit_log = _absolute(base, inv.kubernetes.audit_log)
    for env in inv.environments.values():
        env.dotenv = _absolute(base, env.dotenv)
        env.dotenv_example = _absolute(base, env.dotenv_example)
        env.secrets_dir = _absolute(base, env.secrets_dir)
    for secret in inv.secrets:
        for env_name, specs in secret.stores.items():
            env = inv.environments[env_name]
            for store in specs:
                stores.kind_of(store).resolve(store, env)


def parse_inventory(data: Any, path: Path, base: Path | None = None) -> Inventory:
    """Validate already-parsed YAML ``data``; ``path`` names it in errors, relative paths
    resolve against ``base`` (default: the folder of ``path``)."""
    if data is None:
        raise InventoryError(f"{path}: the inventory is empty")
    if not isinstance(data, dict):
        raise InventoryError(
            f"{path}: the inventory must be a mapping of sections (found {_found(data)})"
        )
    try:
        inv = Inventory.model_validate(data)
    except ValidationError as exc:
        _raise(path, [_describe(error) for error in exc.errors()])
        raise
    found = checks.problems(inv)
    if found:
        _raise(path, found)
    _resolve_paths(inv, (base or path.parent).absolute())
    inv._source = path.absolute()
    return inv


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate the inventory at ``path``.

    Raises :class:`~secretops.errors.InventoryError` naming the file, the field path and what
    is wrong for every problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InventoryError(f"{path}: cannot read the inventory ({reason})") from None
    return parse_inventory(_parse_yaml(path, text), path)
