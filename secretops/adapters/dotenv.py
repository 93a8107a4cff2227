"""``.env`` files, edited the way a careful person would: one value changes, nothing else does.

Comments, blank lines, order, ``export`` prefixes, spacing around ``=``, quoting style, trailing
comments and lines this parser does not understand are kept byte for byte; only the entries
that are set are written again. Values are read as python-dotenv and Docker Compose read them:
single quotes are literal, double quotes take backslash escapes, an unquoted value ends at
`` #``. Variables (``${NAME}``) are not expanded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_ENTRY = re.compile(
    r"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.]*)(?P<eq>[ \t]*=[ \t]*)"
    r"(?P<rest>.*)$"
)
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_.~+/=:@%,?-]*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


@dataclass
class Entry:
    """One ``KEY=VALUE`` line: ``head`` is everything before the value (indent, ``export``,
    key, ``=``), ``tail`` everything after it (closing spaces, comment), ``quote`` the quote
    character used (empty when unquoted)."""

    key: str
    value: str
    head: str
    quote: str
    tail: str
    newline: str
    raw: str

    def render(self) -> str:
        return self.raw


def _split_line(line: str) -> tuple[str, str]:
    for newline in ("\r\n", "\n", "\r"):
        if line.endswith(newline):
            return line[: -len(newline)], newline
    return line, ""


def _parse_rest(rest: str) -> tuple[str, str, str] | None:
    """``(value, quote, tail)`` of the text after ``=``, or None when it spans lines."""
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            return None
        return rest[1:end], "'", rest[end + 1 :]
    if rest.startswith('"'):
        value: list[str] = []
        i = 1
        while i < len(rest):
            char = rest[i]
            if char == "\\" and i + 1 < len(rest):
                value.append(_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
                i += 2
                continue
            if char == '"':
                return "".join(value), '"', rest[i + 1 :]
            value.append(char)
            i += 1
        return None
    comment = re.search(r"[ \t]+#", rest)
    body = rest[: comment.start()] if comment else rest
    stripped = body.rstrip(" \t")
    return stripped, "", rest[len(stripped) :]


def _encode(value: str, quote_char: str) -> tuple[str, str]:
    """``(text, quote)`` for writing ``value``: the line's quoting style when it is safe for
    the value, else single quotes, else double quotes with escapes."""
    if quote_char == "" and _PLAIN_SAFE.match(value):
        return value, ""
    if quote_char in ("", "'") and "'" not in value and "\n" not in value:
        return f"'{value}'", "'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"', '"'


class DotenvFile:
    """A parsed ``.env`` file that renders back to its exact text, plus the changes made."""

    def __init__(self, text: str = "") -> None:
        self.lines: list[str | Entry] = []
        for line in text.splitlines(keepends=True):
            body, newline = _split_line(line)
            match = _ENTRY.match(body)
            parsed = _parse_rest(match["rest"]) if match else None
            if match is None or parsed is None:
                self.lines.append(line)
                continue
            value, quote_char, tail = parsed
            head = match["lead"] + match["key"] + match["eq"]
            self.lines.append(Entry(match["key"], value, head, quote_char, tail, newline, line))

    def entries(self) -> list[Entry]:
        return [line for line in self.lines if isinstance(line, Entry)]

    def keys(self) -> list[str]:
        return [entry.key for entry in self.entries()]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str) -> str | None:
        """The value of ``key`` (the last one when it is given twice, as loaders read it)."""
        found = [entry.value for entry in self.entries() if entry.key == key]
        return found[-1] if found else None

    def set(self, key: str, value: str) -> None:
        """Give every ``key`` line the value ``value``, or add ``KEY=value`` at the end."""
        found = False
        for entry in self.entries():
            if entry.key == key:
                found = True
                if entry.value != value:
                    text, entry.quote = _encode(value, entry.quote)
                    entry.value = value
                    entry.raw = entry.head + text + entry.tail + entry.newline
        if not found:
            if self.lines and not self.render().endswith(("\n", "\r")):
                self.lines.append("\n")
            text, quote_char = _encode(value, "")
            raw = f"{key}={text}\n"
            self.lines.append(Entry(key, value, f"{key}=", quote_char, "", "\n", raw))

    def remove(self, key: str) -> None:
        self.lines = [
            line for line in self.lines if not (isinstance(line, Entry) and line.key == key)
        ]

    def render(self) -> str:
        return "".join(line if isinstance(line, str) else line.render() for line in self.lines)


def url_with_credentials(url: str, password: str, username: str | None = None) -> str:
    """``url`` with its password (and user, when ``username`` is given) replaced, URL-quoted.

    Only the user-info part changes; the rest of the URL is kept as written. Raises
    ``ValueError`` when ``url`` has no ``scheme://``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError("not a URL with scheme://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, path = rest[:end], rest[end:]
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        hostport = netloc
    user = userinfo.split(":", 1)[0]
    if username is not None:
        user = quote(username, safe="")
    return f"{scheme}://{user}:{quote(password, safe='')}@{hostport}{path}"
