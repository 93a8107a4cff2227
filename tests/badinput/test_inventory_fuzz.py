"""Generated inventories: the valid one with one value anywhere in it replaced (wrong types,
unknown names, huge or odd text, deep nesting), raw generated text, and documents whose
aliases expand far. Each loads, or is refused with an ``InventoryError`` whose every line
names the file (and the field or line), within a bounded time; never another exception.

A longer run: ``SECRETOPS_FUZZ_EXAMPLES=20000 python -m pytest -n 0 -p no:randomly
tests/badinput/test_inventory_fuzz.py``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretops.errors import InventoryError
from secretops.inventory import load_inventory

VALID = Path(__file__).parents[1] / "inventories" / "valid.yaml"
BASE = yaml.safe_load(VALID.read_text())
EXAMPLES = int(os.environ.get("SECRETOPS_FUZZ_EXAMPLES", "60"))
SECONDS = 5.0

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["", "moon", "PRODUCTION", "staging ", "0 3 * *",
                                           "a" * 300_000, "../../etc", "$(id)", "Ω", "\x85"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


PATHS = paths(BASE)


def replaced(path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = yaml.safe_load(yaml.safe_dump(BASE))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def assert_loads_or_is_refused_clearly(tmp: Path, text: str) -> None:
    tmp.write_text(text, encoding="utf-8")
    began = time.monotonic()
    try:
        load_inventory(tmp)
    except InventoryError as refused:
        lines = str(refused).split("\n")
        assert lines and all(line.startswith(str(tmp)) or line.startswith("  ")
                             for line in lines), str(refused)[:500]
    assert time.monotonic() - began < SECONDS


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=values)
def test_one_value_replaced_anywhere(tmp_path: Path, path: tuple[Any, ...], value: Any) -> None:
    text = yaml.safe_dump(replaced(path, value), allow_unicode=True)
    assert_loads_or_is_refused_clearly(tmp_path / "inventory.yaml", text)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                    max_size=300))
def test_raw_text(tmp_path: Path, text: str) -> None:
    assert_loads_or_is_refused_clearly(tmp_path / "inventory.yaml", text)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(width=st.integers(2, 12), depth=st.integers(2, 12),
       field=st.sampled_from(["secrets", "credentials", "environments", "consumers"]))
def test_aliases_that_expand_far(tmp_path: Path, width: int, depth: int, field: str) -> None:
    lines = ["version: 1", "x0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
              for i in range(1, depth)]
    lines.append(f"{field}: *a{depth - 1}")
    assert_loads_or_is_refused_clearly(tmp_path / "inventory.yaml", "\n".join(lines) + "\n")


def test_deep_nesting_is_refused_with_a_line(tmp_path: Path) -> None:
    target = tmp_path / "inventory.yaml"
    target.write_text("version: 1\nsecrets: " + "[" * 20_000 + "]" * 20_000 + "\n")
    try:
        load_inventory(target)
    except InventoryError as refused:
        assert "nested too deeply" in str(refused)
    else:
        raise AssertionError("a 20000-deep document loaded")
