"""Label selectors and field selectors, with the grammar of the real API server.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``,
joined by commas. Field selectors: ``path=value``, ``path==value``, ``path!=value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


class SelectorError(ValueError):
    """A selector that does not parse; the API server answers 400."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _label_requirement(term: str) -> Callable[[Mapping[str, str]], bool]:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    st = _SET_RE.match(term)
    if not st:
        raise SelectorError(f"unable to parse requirement: {term!r}")
    neg, key, op, values = st.groups()
    if op:
        if neg:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if neg:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_matcher(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate on a label map from a label selector string (empty matches everything)."""
    if not selector:
        return lambda labels: True
    reqs = [_label_requirement(t) for t in _split(selector)]
    return lambda labels: all(r(labels) for r in reqs)


def match_labels(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Match a ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        present = key in labels
        ok = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def selector_string(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` object as a selector string (for ``status.selector``)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    return ",".join(parts)


def _field(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def field_matcher(selector: str | None) -> Predicate:
    """A predicate on an object from a field selector string."""
    if not selector:
        return lambda obj: True
    reqs: list[tuple[str, bool, str]] = []
    for term in _split(selector):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise SelectorError(f"invalid field selector: {term!r}")
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return lambda obj: all((_field(obj, p) == v) == eq for p, eq, v in reqs)
